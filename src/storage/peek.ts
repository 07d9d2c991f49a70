/**
 * Reading without a wait: `peek(storage, key, offset)` gives what `readFrom(storage, key, offset)` would,
 * when the storage knows it at once — the read cache holds the value — and `NOT_HELD` when only the
 * storage itself can tell (then read as usual). A chat turn reads its session's metadata and the new end
 * of its log on every turn, nearly always from the cache: through promises, each of those reads cost the
 * turn a round of them in every storage layer it passed; through `peek`, none.
 *
 * The bytes are the cache's own, not a copy: read-only. At offset 0 they are the same object until the
 * value changes, so a caller may remember what it parsed from them by that object.
 */

import type { Storage } from './types.ts';

/** `peek`'s answer when the storage cannot tell at once. */
export const NOT_HELD: unique symbol = Symbol('not held');

/** What a peek gives: the bytes from the offset on (read-only), `undefined` for no value, or `NOT_HELD`. */
export type Peeked = Uint8Array | undefined | typeof NOT_HELD;

/** What `peek` needs: any storage; one without `peek` (no cache) holds nothing. */
export type Peekable = Pick<Storage, 'read'> & Partial<Pick<Storage, 'peek'>>;

/** The bytes of `key` from `offset` on when `storage` knows them at once, else `NOT_HELD`. */
export function peek(storage: Peekable, key: string, offset = 0): Peeked {
  return storage.peek === undefined ? NOT_HELD : storage.peek(key, offset);
}
