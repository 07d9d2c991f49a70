/**
 * The size of a stored value: `sizeOf(storage, key)` is the byte length of what `read(key)` would give, or
 * `undefined` when there is no value. A storage that can tell without reading the value implements the
 * optional `Storage.size` (flatfile: one stat; memory: the length it holds; redis: one STRLEN); for any
 * other (s3, whose value is a base object and parts only a read resolves, and the wrappers) it is a `read`.
 * The storage quota (quota.ts) asks it once per key of a user, when it counts their bytes after a start.
 */

import type { Storage } from './types.ts';

/** What `sizeOf` needs: `read`, and `size` where the storage has it. */
export type SizedStorage = Pick<Storage, 'read'> & Partial<Pick<Storage, 'size'>>;

/** The byte length of the value at `key`, or `undefined` when there is none. */
export async function sizeOf(storage: SizedStorage, key: string): Promise<number | undefined> {
  if (storage.size !== undefined) return storage.size(key);
  return (await storage.read(key))?.length;
}
