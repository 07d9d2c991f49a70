/**
 * Reading the end of a value: `readFrom(storage, key, offset)` gives the bytes of `key` from byte `offset`
 * on. A storage that can do it without the whole value implements the optional `Storage.readFrom` (the
 * read cache answers from memory, copying only the tail; scoped views pass it on); for any other it is a
 * `read` cut to the tail. A reader that already holds the start of a log (text_chat's parsed history)
 * asks only for what follows, so a long log costs each turn its new lines, not a copy of the whole log.
 */

import type { Storage } from './types.ts';

/** What `readFrom` needs: `read`, and `readFrom` where the storage has it. */
export type ReadableFrom = Pick<Storage, 'read'> & Partial<Pick<Storage, 'readFrom'>>;

/** Throws a RangeError unless `offset` is a byte position: a whole number, 0 or more. */
export function assertOffset(offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new RangeError(`readFrom: the offset must be a whole number of bytes, 0 or more (got ${offset})`);
  }
}

/**
 * The bytes stored at `key` from byte `offset` on (empty when the value is not longer than `offset`), or
 * `undefined` when there is no value.
 */
export async function readFrom(
  storage: ReadableFrom,
  key: string,
  offset: number,
): Promise<Uint8Array | undefined> {
  assertOffset(offset);
  if (storage.readFrom !== undefined) return storage.readFrom(key, offset);
  const value = await storage.read(key);
  return value?.subarray(Math.min(offset, value.length));
}
