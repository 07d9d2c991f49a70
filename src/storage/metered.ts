/**
 * A storage that times every call it passes on and tells an observer (the platform's metrics): how long
 * the backend takes, operation by operation, and how often it fails. It goes directly around the driver,
 * under the read cache (createStorage's `wrapDriver`), so it measures the backend, not cache hits.
 */

import type { StorageObserver, StorageOperation } from '../core/observers.ts';
import { promiseOf } from './promise-of.ts';
import type { Storage } from './types.ts';

/** Returns `storage` with each call timed and reported to `observer`; behaviour is unchanged. */
export function meterStorage(storage: Storage, observer: StorageObserver): Storage {
  // The calls under way, so close() resolves only once every promise handed out has settled (the
  // storage contract), not merely the driver's own: counted, with a waiter made only when close() waits.
  let running = 0;
  let allSettled: PromiseWithResolvers<void> | undefined;

  /**
   * `call()`, timed: one promise a call (a `then` that reports it), not an async layer and a tracking
   * set: a chat turn makes several storage calls, and their promises add up.
   */
  function timed<T>(operation: StorageOperation, call: () => Promise<T>): Promise<T> {
    const started = performance.now();
    const settled = (failed: boolean) => {
      observer.operationCompleted(operation, (performance.now() - started) / 1000, failed);
      running -= 1;
      if (running === 0) allSettled?.resolve();
    };
    running += 1;
    return promiseOf(call).then(
      (value) => {
        settled(false);
        return value;
      },
      (error: unknown) => {
        settled(true);
        throw error;
      },
    );
  }

  const readFrom = storage.readFrom?.bind(storage);
  const size = storage.size?.bind(storage);
  return {
    read: (key) => timed('read', () => storage.read(key)),
    // Only a driver with its own readFrom has one here: callers fall back to read otherwise (read-from.ts).
    ...(readFrom === undefined
      ? {}
      : { readFrom: (key: string, offset: number) => timed('readFrom', () => readFrom(key, offset)) }),
    ...(size === undefined ? {} : { size: (key: string) => timed('size', () => size(key)) }),
    write: (key, data, options) => timed('write', () => storage.write(key, data, options)),
    append: (key, data) => timed('append', () => storage.append(key, data)),
    delete: (key) => timed('delete', () => storage.delete(key)),
    exists: (key) => timed('exists', () => storage.exists(key)),
    list: (prefix) => timed('list', () => storage.list(prefix)),
    async close() {
      await storage.close();
      if (running === 0) return;
      allSettled ??= Promise.withResolvers<void>();
      await allSettled.promise;
    },
  };
}
