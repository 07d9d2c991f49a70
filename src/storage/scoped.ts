/**
 * A view of a storage confined to one root folder: what a module's context hands it. The module's keys are
 * relative to its root and it has no way to name a key outside it — `..`, absolute keys and backslashes
 * are rejected before the root is prepended.
 */

import { StorageUnavailableError } from '../core/errors.ts';
import { assertValidKey, assertValidPrefix } from './keys.ts';
import { readFrom } from './read-from.ts';
import type { Storage } from './types.ts';

/**
 * Returns a storage that sees only the keys under `root/` of `storage`: `read('a.json')` reads
 * `root/a.json`, and `list` returns keys relative to the root. Closing the view waits for the operations
 * it started and refuses new ones, but leaves `storage` open: other views share it, and whoever created it
 * closes it.
 */
export function scopeStorage(storage: Storage, root: string): Storage {
  const folder = root.endsWith('/') ? root.slice(0, -1) : root;
  assertValidKey(folder);
  const base = `${folder}/`;
  const inFlight = new Set<Promise<unknown>>();
  let closed = false;

  // async, so a rejected key arrives as a rejection like every other storage error.
  async function run<T>(key: string, operation: (fullKey: string) => Promise<T>): Promise<T> {
    assertValidKey(key);
    if (closed) throw new StorageUnavailableError(`the storage view of "${folder}" is closed`);
    const promise = operation(base + key);
    inFlight.add(promise);
    try {
      return await promise;
    } finally {
      inFlight.delete(promise);
    }
  }

  return {
    read: (key) => run(key, (fullKey) => storage.read(fullKey)),
    readFrom: (key, offset) => run(key, (fullKey) => readFrom(storage, fullKey, offset)),
    write: (key, data) => run(key, (fullKey) => storage.write(fullKey, data)),
    delete: (key) => run(key, (fullKey) => storage.delete(fullKey)),
    exists: (key) => run(key, (fullKey) => storage.exists(fullKey)),
    append: (key, data) => run(key, (fullKey) => storage.append(fullKey, data)),
    async list(prefix) {
      assertValidPrefix(prefix);
      if (closed) throw new StorageUnavailableError(`the storage view of "${folder}" is closed`);
      const keys = await storage.list(base + prefix);
      return keys.map((key) => key.slice(base.length));
    },
    async close() {
      closed = true;
      await Promise.allSettled([...inFlight]);
    },
  };
}
