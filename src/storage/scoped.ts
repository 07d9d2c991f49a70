/**
 * A view of a storage confined to one root folder: what a module's context hands it. The module's keys are
 * relative to its root and it has no way to name a key outside it — `..`, absolute keys and backslashes
 * are rejected before the root is prepended.
 */

import { assertValidKey, assertValidPrefix } from './keys.ts';
import type { Storage } from './types.ts';

/**
 * Returns a storage that sees only the keys under `root/` of `storage`: `read('a.json')` reads
 * `root/a.json`, and `list` returns keys relative to the root. Closing the view does not close `storage`,
 * which other views share; whoever created `storage` closes it.
 */
export function scopeStorage(storage: Storage, root: string): Storage {
  const folder = root.endsWith('/') ? root.slice(0, -1) : root;
  assertValidKey(folder);
  const base = `${folder}/`;

  function inside(key: string): string {
    assertValidKey(key);
    return base + key;
  }

  return {
    // async, so a rejected key arrives as a rejection like every other storage error.
    async read(key) {
      return storage.read(inside(key));
    },
    async write(key, data) {
      return storage.write(inside(key), data);
    },
    async delete(key) {
      return storage.delete(inside(key));
    },
    async exists(key) {
      return storage.exists(inside(key));
    },
    async append(key, data) {
      return storage.append(inside(key), data);
    },
    async list(prefix) {
      assertValidPrefix(prefix);
      const keys = await storage.list(base + prefix);
      return keys.map((key) => key.slice(base.length));
    },
    async close() {},
  };
}
