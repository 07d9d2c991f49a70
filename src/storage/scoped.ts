/**
 * A view of a storage confined to one root folder: what a module's context hands it. The module's keys are
 * relative to its root and it has no way to name a key outside it — `..`, absolute keys and backslashes
 * are rejected before the root is prepended.
 */

import { StorageUnavailableError } from '../core/errors.ts';
import { KeyMemo } from './key-memo.ts';
import { assertValidKey, assertValidPrefix, isValidKey } from './keys.ts';
import { NOT_HELD, peek } from './peek.ts';
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
  // Operations started and not yet settled, and who waits for none to be left (close).
  let inFlight = 0;
  let idle: (() => void) | undefined;
  let closing: Promise<void> | undefined;
  const settled = () => {
    inFlight--;
    if (inFlight === 0) idle?.();
  };
  let closed = false;
  // The full key of each valid key seen lately (key-memo.ts).
  const fullKeys = new KeyMemo<string>();

  /** `root/key`, once `key` is known valid (else throws CHAT_ERR_STORAGE_INVALID_KEY). */
  function fullKeyOf(key: string): string {
    const known = fullKeys.get(key);
    if (known !== undefined) return known;
    assertValidKey(key);
    return fullKeys.remember(key, base + key);
  }

  /**
   * Starts `operation` on the full key. Not an async function: a storage call is on every turn's path,
   * and the async wrapper's promises were a measurable share of it. A rejected key or a closed view still
   * arrives as a rejection like every other storage error.
   */
  function run<T>(key: string, operation: (fullKey: string) => Promise<T>): Promise<T> {
    let promise: Promise<T>;
    try {
      const fullKey = fullKeyOf(key);
      if (closed) throw new StorageUnavailableError(`the storage view of "${folder}" is closed`);
      promise = operation(fullKey);
    } catch (error) {
      return Promise.reject(error);
    }
    inFlight++;
    promise.then(settled, settled);
    return promise;
  }

  return {
    read: (key) => run(key, (fullKey) => storage.read(fullKey)),
    readFrom: (key, offset) => run(key, (fullKey) => readFrom(storage, fullKey, offset)),
    // A key the view refuses, or a closed view, is for `read` to report: peek only says it cannot tell.
    peek(key, offset) {
      if (closed) return NOT_HELD;
      const fullKey = fullKeys.get(key) ?? (isValidKey(key) ? fullKeys.remember(key, base + key) : undefined);
      return fullKey === undefined ? NOT_HELD : peek(storage, fullKey, offset);
    },
    write: (key, data, options) => run(key, (fullKey) => storage.write(fullKey, data, options)),
    delete: (key) => run(key, (fullKey) => storage.delete(fullKey)),
    exists: (key) => run(key, (fullKey) => storage.exists(fullKey)),
    append: (key, data) => run(key, (fullKey) => storage.append(fullKey, data)),
    async list(prefix) {
      assertValidPrefix(prefix);
      if (closed) throw new StorageUnavailableError(`the storage view of "${folder}" is closed`);
      const keys = await storage.list(base + prefix);
      return keys.map((key) => key.slice(base.length));
    },
    close() {
      closed = true;
      closing ??= inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => (idle = resolve));
      return closing;
    },
  };
}
