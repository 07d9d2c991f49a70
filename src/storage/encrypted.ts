/**
 * Encryption at rest as a storage wrapper: values under the keys `sensitive` marks are sealed before they
 * reach the storage below (the driver, or the meter around it) and opened when read, so the read cache
 * above holds plaintext and the driver holds only ciphertext. Other keys pass through untouched.
 *
 * Stored form: a sealed value is a sequence of frames, one per `write` or `append`, each one line:
 * `@` + base64(record) + `\n` (the record: security/encrypted-record.ts). Because every frame is a whole
 * line, an append stays one driver append (group commit and the durability of appends are the driver's,
 * unchanged), a `.jsonl` key still holds whole lines as the drivers require, and a frame torn by a crash
 * is an unterminated last line: dropped on read like a torn JSON line (it was never acknowledged), and
 * cut off by the flatfile driver before its next append. A frame is bound to its key, so a frame moved
 * to another key (or another user's log) does not open.
 *
 * Offsets are the plaintext's: `readFrom(key, offset)` is the plaintext from `offset`, as the read cache
 * and text_chat's history cache above count them. The driver's offsets are of ciphertext, so a sealed
 * value's tail is found by reading and opening the value (see README: the cost).
 *
 * Data written before encryption was turned on: a `.jsonl` line or a whole other value that is not a frame
 * is plaintext. It is returned as it is when `plaintextReads` is on, and refused otherwise
 * (CHAT_ERR_ENCRYPTION_RECORD_INVALID), so stored plaintext is never mistaken for data this node sealed.
 */

import { PlatformError, StorageUnavailableError } from '../core/errors.ts';
import { concatBytes } from './bytes.ts';
import { assertWholeLines, isJsonLinesKey } from './json-lines.ts';
import { assertValidKey } from './keys.ts';
import { assertOffset, readFrom } from './read-from.ts';
import type { DataKeyOwner, SensitiveKeyMatcher } from './sensitive-keys.ts';
import type { Storage } from './types.ts';

/** Seals and opens records; security/envelope-cipher.ts is the implementation. */
export interface RecordCipher {
  /**
   * `plaintext` sealed with `owner`'s current data key and bound to `key`. Synchronous when the data key
   * is at hand; the caller may reuse `plaintext` as soon as it returns.
   */
  seal(owner: DataKeyOwner, key: string, plaintext: Uint8Array): Uint8Array | Promise<Uint8Array>;
  /** The plaintext of a record of `owner` stored at `key`; a PlatformError when it cannot be opened. */
  open(owner: DataKeyOwner, key: string, record: Uint8Array): Uint8Array | Promise<Uint8Array>;
}

export interface EncryptedStorageOptions {
  cipher: RecordCipher;
  /** Which keys are sealed, and with whose data key. */
  sensitive: SensitiveKeyMatcher;
  /** Whether plaintext found under a sensitive key (stored before encryption was on) is returned. */
  plaintextReads: boolean;
}

/** The first byte of every frame: never the first byte of a JSON line. */
const FRAME_MARK = 0x40; // '@'
const NEWLINE = 0x0a;

function recordInvalid(key: string, message: string): PlatformError {
  // The key goes in details (logs), not in the message an HTTP client may see.
  return new PlatformError('CHAT_ERR_ENCRYPTION_RECORD_INVALID', message, { details: { key } });
}

/** The frame of one sealed record. */
function frameOf(record: Uint8Array): Uint8Array {
  return Buffer.from(`@${Buffer.from(record.buffer, record.byteOffset, record.length).toString('base64')}\n`);
}

/** The record inside a frame line (without its `\n`). */
function recordOf(line: Uint8Array): Uint8Array {
  return Buffer.from(
    Buffer.from(line.buffer, line.byteOffset + 1, line.length - 1).toString('latin1'),
    'base64',
  );
}

/** An encrypted storage, and the way to seal what was stored before encryption was on. */
export interface EncryptedStorage extends Storage {
  /**
   * Rewrites the value at `key` sealed when it is sensitive and holds plaintext (stored before encryption
   * was turned on), whatever `plaintextReads` says; `true` when it did. A log written meanwhile by someone
   * else loses those lines: run it with the servers stopped (`parley encryption seal-plaintext`).
   */
  sealPlaintext(key: string): Promise<boolean>;
}

/** True when `stored` (a sensitive value) holds any plaintext: a value or a `.jsonl` line not a frame. */
function holdsPlaintext(key: string, stored: Uint8Array): boolean {
  if (stored.length === 0) return false;
  if (!isJsonLinesKey(key)) return stored[0] !== FRAME_MARK;
  let start = 0;
  while (start < stored.length) {
    if (stored[start] !== FRAME_MARK) return true;
    const end = stored.indexOf(NEWLINE, start);
    if (end === -1) return false;
    start = end + 1;
  }
  return false;
}

/** Returns `storage` with the values of sensitive keys encrypted (see the file comment). */
export function encryptStorage(storage: Storage, options: EncryptedStorageOptions): EncryptedStorage {
  const { cipher, sensitive, plaintextReads } = options;
  // Per key, the turn of the latest change still waiting for its data key: the changes of one key reach
  // the storage in call order (a write and the append after it must not swap) without waiting for each
  // other to finish, so the driver still batches concurrent appends.
  const waiting = new Map<string, Promise<void>>();
  const inFlight = new Set<Promise<unknown>>();
  let closed = false;

  function legacy(key: string, plaintext: Uint8Array, migrating: boolean): Uint8Array {
    if (plaintextReads || migrating) return plaintext;
    throw recordInvalid(
      key,
      'sensitive data is stored in plaintext (written before encryption was turned on): run parley encryption seal-plaintext, or set security.encryption.plaintext_reads',
    );
  }

  /** The plaintext of a stored value (see the file comment for its form). */
  async function openStored(
    key: string,
    owner: DataKeyOwner,
    stored: Uint8Array,
    migrating = false,
  ): Promise<Uint8Array> {
    if (stored.length === 0) return stored;
    const lines = isJsonLinesKey(key);
    if (!lines && stored[0] !== FRAME_MARK) return legacy(key, stored, migrating);
    const parts: Uint8Array[] = [];
    let start = 0;
    for (let end = stored.indexOf(NEWLINE); end !== -1; end = stored.indexOf(NEWLINE, start)) {
      const line = stored.subarray(start, end);
      if (line[0] === FRAME_MARK) {
        const opened = cipher.open(owner, key, recordOf(line));
        parts.push(opened instanceof Promise ? await opened : opened);
      } else if (lines) {
        parts.push(legacy(key, stored.subarray(start, end + 1), migrating));
      } else {
        throw recordInvalid(key, 'a stored value is neither sealed records nor plaintext');
      }
      start = end + 1;
    }
    // Bytes after the last newline are a frame torn by a crash: never acknowledged, so not data.
    return parts.length === 0 ? new Uint8Array(0) : concatBytes(parts);
  }

  function seal(owner: DataKeyOwner, key: string, plaintext: Uint8Array): Uint8Array | Promise<Uint8Array> {
    const record = cipher.seal(owner, key, plaintext);
    return record instanceof Promise ? record.then(frameOf) : frameOf(record);
  }

  /**
   * Runs `change` of `key` with what `prepare` makes (sealed bytes), after every earlier change of the key
   * was handed to the storage: at once when nothing waits and `prepare` needs no waiting.
   */
  function inOrder<P, T>(
    key: string,
    prepare: () => P | Promise<P>,
    change: (prepared: P) => Promise<T>,
  ): Promise<T> {
    const before = waiting.get(key);
    if (before === undefined) {
      const prepared = prepare();
      if (!(prepared instanceof Promise)) return change(prepared);
      return queue(key, undefined, () => prepared, change);
    }
    return queue(key, before, prepare, change);
  }

  function queue<P, T>(
    key: string,
    before: Promise<void> | undefined,
    prepare: () => P | Promise<P>,
    change: (prepared: P) => Promise<T>,
  ): Promise<T> {
    let handedOver!: () => void;
    const turn = new Promise<void>((resolve) => {
      handedOver = resolve;
    });
    waiting.set(key, turn);
    return (async () => {
      try {
        await before;
        return change(await prepare());
      } finally {
        handedOver();
        if (waiting.get(key) === turn) waiting.delete(key);
      }
    })();
  }

  /** Runs `operation` unless closed, counted until it settles (close waits for it). */
  async function run<T>(key: string | undefined, operation: () => Promise<T>): Promise<T> {
    if (key !== undefined) assertValidKey(key);
    if (closed) throw new StorageUnavailableError('the storage is closed');
    const promise = operation();
    inFlight.add(promise);
    try {
      return await promise;
    } finally {
      inFlight.delete(promise);
    }
  }

  async function readPlain(key: string): Promise<Uint8Array | undefined> {
    const owner = sensitive(key);
    if (owner === undefined) return storage.read(key);
    const stored = await storage.read(key);
    return stored === undefined ? undefined : openStored(key, owner, stored);
  }

  return {
    read: (key) => run(key, () => readPlain(key)),
    readFrom: (key, offset) =>
      run(key, async () => {
        assertOffset(offset);
        if (sensitive(key) === undefined) return readFrom(storage, key, offset);
        const value = await readPlain(key);
        return value?.subarray(Math.min(offset, value.length));
      }),
    write: (key, data, options) =>
      run(key, () => {
        const owner = sensitive(key);
        if (owner === undefined) return storage.write(key, data, options);
        assertWholeLines(key, data, 'write');
        // An empty value stays empty: it says nothing, and sealing it would make an empty .jsonl non-empty.
        if (data.length === 0)
          return inOrder(
            key,
            () => data,
            (empty) => storage.write(key, empty, options),
          );
        return inOrder(
          key,
          () => seal(owner, key, data),
          (frame) => storage.write(key, frame, options),
        );
      }),
    append: (key, data) =>
      run(key, () => {
        const owner = sensitive(key);
        if (owner === undefined) return storage.append(key, data);
        assertWholeLines(key, data, 'append');
        if (isJsonLinesKey(key)) {
          return inOrder(
            key,
            () => seal(owner, key, data),
            (frame) => storage.append(key, frame),
          );
        }
        // Any other value must be frames already (or absent): a frame after plaintext could not be told
        // apart from it. No module appends to such keys; the check costs them a read.
        const copy = Buffer.from(data);
        return inOrder(
          key,
          async () => {
            const stored = await storage.read(key);
            if (stored !== undefined && stored.length > 0 && stored[0] !== FRAME_MARK) {
              throw recordInvalid(
                key,
                'cannot append sealed data to a value stored in plaintext; write it again first',
              );
            }
            return seal(owner, key, copy);
          },
          (frame) => storage.append(key, frame),
        );
      }),
    delete: (key) =>
      run(key, () =>
        sensitive(key) === undefined
          ? storage.delete(key)
          : inOrder(
              key,
              () => 0,
              () => storage.delete(key),
            ),
      ),
    exists: (key) => run(key, () => storage.exists(key)),
    list: (prefix) => run(undefined, () => storage.list(prefix)),
    sealPlaintext: (key) =>
      run(key, async () => {
        const owner = sensitive(key);
        const stored = owner === undefined ? undefined : await storage.read(key);
        if (owner === undefined || stored === undefined || !holdsPlaintext(key, stored)) return false;
        const plaintext = await openStored(key, owner, stored, true);
        await inOrder(
          key,
          () => seal(owner, key, plaintext),
          (frame) => storage.write(key, frame),
        );
        return true;
      }),
    async close() {
      if (!closed) {
        closed = true;
        // Changes waiting for a data key reach the storage before it closes (pending appends are flushed).
        await Promise.allSettled([...inFlight]);
      }
      await storage.close();
    },
  };
}
