import type { Peeked } from './peek.ts';

/**
 * The storage contract every driver and wrapper implements (the seed's StorageBackend plus `append`).
 * Keys are `/`-separated relative paths such as `sessions/u1/s1/messages.jsonl`. A key that is empty, starts
 * with `/`, contains a `..` segment, a NUL or a backslash is rejected with CHAT_ERR_STORAGE_INVALID_KEY.
 * So are empty and `.` segments and segments containing `.parley-tmp-` (see keys.ts, the one validator).
 * A key ending in `.jsonl` holds whole lines: `write`/`append` data for it must end in `\n` (json-lines.ts).
 * A key that is also a folder of other keys (`a` and `a/b`) is driver-dependent: flatfile refuses it.
 * test/contracts/storage-contract.ts is the executable form of this contract.
 */
export interface Storage {
  /** The bytes stored at `key`, or `undefined` when there are none. */
  read(key: string): Promise<Uint8Array | undefined>;
  /**
   * Optional: the bytes stored at `key` from byte `offset` on (empty when the value is not longer), or
   * `undefined` when there are none — for a storage that can give the end of a value without copying all
   * of it. Callers use `readFrom()` (read-from.ts), which falls back to `read`.
   */
  readFrom?(key: string, offset: number): Promise<Uint8Array | undefined>;
  /**
   * Optional: the byte length of the value at `key` (what `read` would give), or `undefined` when there is
   * none — for a storage that can tell without reading the value. Callers use `sizeOf()` (size-of.ts).
   */
  size?(key: string): Promise<number | undefined>;
  /**
   * Optional: what `readFrom(key, offset)` would give, when it is known without a wait (a read cache holds
   * it), else `NOT_HELD`; never asks the backend. The bytes are read-only. Callers use `peek()` (peek.ts).
   */
  peek?(key: string, offset: number): Peeked;
  /**
   * Replaces the value at `key` atomically: a reader sees the old bytes or the new, never a mix. Durable
   * before the promise resolves, unless `options.durable` is false (see WriteOptions).
   */
  write(key: string, data: Uint8Array, options?: WriteOptions): Promise<boolean>;
  /** Removes `key`; `false` when it did not exist. */
  delete(key: string): Promise<boolean>;
  /**
   * Every key that starts with `prefix`, sorted. A prefix ending in `/` (or empty) lists a folder
   * recursively; `list('sessions/u1/')` returns full keys like `sessions/u1/s1/metadata.json`.
   */
  list(prefix: string): Promise<string[]>;
  /** Whether `key` holds a value. */
  exists(key: string): Promise<boolean>;
  /**
   * Appends `data` to `key` (created when missing). Durable before the promise resolves; concurrent
   * appends to one key never interleave their bytes.
   */
  append(key: string, data: Uint8Array): Promise<void>;
  /**
   * Releases connections and flushes pending work (pending appends resolve first). Later calls reject
   * with CHAT_ERR_STORAGE_UNAVAILABLE; closing twice is harmless.
   */
  close(): Promise<void>;
}

/** How a `write` is made. */
export interface WriteOptions {
  /**
   * `false`: the write need not survive a crash — for values that can be told again, such as a session's
   * `updatedAt`. flatfile then skips the folder's fsync that makes the rename durable (one of a write's two
   * syncs); the bytes are still synced before the rename, so after a crash the key holds the old value or
   * the new, whole. Drivers that do not sync per write (memory, redis, s3) ignore it. Default true.
   */
  durable?: boolean;
}

/** The name of a storage driver, as `storage.backend` in config. */
export type StorageBackendName = 'memory' | 'flatfile' | 'redis' | 's3';
