/**
 * A storage that times every call it passes on and tells an observer (the platform's metrics): how long
 * the backend takes, operation by operation, and how often it fails. It goes directly around the driver,
 * under the read cache (createStorage's `wrapDriver`), so it measures the backend, not cache hits.
 */

import type { StorageObserver, StorageOperation } from '../core/observers.ts';
import type { Storage } from './types.ts';

/** Returns `storage` with each call timed and reported to `observer`; behaviour is unchanged. */
export function meterStorage(storage: Storage, observer: StorageObserver): Storage {
  // The calls under way, so close() resolves only once every promise handed out has settled (the
  // storage contract), not merely the driver's own.
  const inFlight = new Set<Promise<unknown>>();

  async function measure<T>(operation: StorageOperation, call: () => Promise<T>): Promise<T> {
    const started = performance.now();
    let failed = true;
    try {
      const result = await call();
      failed = false;
      return result;
    } finally {
      observer.operationCompleted(operation, (performance.now() - started) / 1000, failed);
    }
  }

  function timed<T>(operation: StorageOperation, call: () => Promise<T>): Promise<T> {
    const promise = measure(operation, call);
    inFlight.add(promise);
    const settled = () => void inFlight.delete(promise);
    promise.then(settled, settled);
    return promise;
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
      await Promise.allSettled([...inFlight]);
    },
  };
}
