/**
 * A read cache in front of a storage: recently read values (and recent misses) are answered from memory
 * for `ttlMs`, at most `maxEntries` of them, least recently used evicted first (by second chance: see `used`). Changes made behind its
 * back (another node, another process) are seen once the entry expires, so the TTL bounds staleness.
 *
 * Changes made through the cache keep it current rather than emptying it, so a log that is appended to and
 * read again (a chat session, every turn) is never read back from the driver: once a write resolves, the
 * cache holds the written bytes; once an append resolves, a cached value is extended by the appended bytes
 * (keeping the entry's expiry, so the TTL still bounds staleness). The driver applies one key's changes
 * in call order and settles them in that order, so the cache follows them as they settle, overlapping
 * ones too (several turns of one chat appending at once): the remembered bytes are the stored ones (after
 * a delete: none). While only appends are under way, reads are answered what the settled ones left; while
 * a write or a delete is, nothing is held. A failed change, changes that settled out of order, an append
 * to an uncached key, or to a `.jsonl` value that ends in a torn line (the driver cuts it off before
 * appending) leave the key uncached.
 *
 * `readFrom` answers a hit with a copy of the value's tail only: a reader following a long log pays for
 * its new lines, not for the whole log.
 *
 * Memory is bounded twice: at most `maxEntries` keys, and at most `maxBytes` of values held (least
 * recently used dropped first). A value above `maxBytes / 16` — a long chat log — is not held: only its
 * length and its last 4 KB are, which is what a reader following the log reads every turn (`readFrom` a
 * little before the end it knows). Such a reader asking for more, and every whole read of it, go to the
 * storage (its own `readFrom` where it has one, so a log's tail is read, not the log).
 */

import { copyBytes } from './bytes.ts';
import { isJsonLinesKey } from './json-lines.ts';
import { NOT_HELD, type Peeked } from './peek.ts';
import { promiseOf } from './promise-of.ts';
import { assertOffset } from './read-from.ts';
import type { Storage } from './types.ts';

export interface CacheOptions {
  /** How long a cached value is served, in milliseconds. */
  ttlMs: number;
  /** The most keys kept; the least recently used is evicted beyond it. */
  maxEntries: number;
  /**
   * The most bytes of values held (default 64 MiB); the least recently used are evicted beyond it. A
   * value above a sixteenth of it is remembered by its length and last 4 KB only.
   */
  maxBytes?: number;
  /** The clock, in milliseconds (default `Date.now`); tests inject their own. */
  now?: () => number;
}

/** Diagnostic counters of a cache (for tests, metrics and benchmarks). */
export interface CacheStats {
  hits: number;
  misses: number;
  evictions: number;
  /** Keys held (with their bytes, as missing, or by their length only). */
  size: number;
  /** Bytes of values held. */
  bytes: number;
}

/** A cached storage: the contract plus its diagnostics. */
export interface CachedStorage extends Storage {
  stats(): CacheStats;
}

interface Entry {
  /**
   * The cache's own copy (every hit hands out a copy of it), `undefined` for no value, or `LENGTH_ONLY`:
   * a value too large to hold, of which only `length` and the last bytes (`end`) are known.
   */
  value: Uint8Array | undefined | typeof LENGTH_ONLY;
  /** The value's length (0 for no value). */
  length: number;
  /**
   * Of a length-only value, its last bytes (at most END_BYTES, a copy of its own): a reader that checks
   * the few bytes before the end it knows (text_chat's history cache does) is answered from memory.
   */
  end?: Uint8Array;
  expiresAt: number;
  /**
   * Read since it was last passed over for eviction: the LRU order is kept by "second chance" — a hit
   * only sets this, and eviction moves a used entry to the back instead of dropping it. Moving the entry
   * on every hit (a Map delete and set) was a measurable share of a chat turn, which reads a few keys.
   */
  used?: boolean;
}

/** The changes of a key under way (mutate): counted in call order, with what the settled ones left. */
interface KeyChanges {
  running: number;
  /** Changes begun, and settled (the latest settled one's number). */
  started: number;
  settled: number;
  /** What the key holds once the changes settled so far are applied (`UNKNOWN`: not known). */
  state: Entry | typeof UNKNOWN;
  /** Only appends began since the key was last at rest: what `state` holds is served meanwhile. */
  appendsOnly: boolean;
}

const NEWLINE = 0x0a;
/** What a change leaves when the cache cannot tell what the key holds afterwards. */
const UNKNOWN = Symbol('unknown');
/** An entry's value that is not held, only its length. */
const LENGTH_ONLY = Symbol('length only');
/** The last bytes a length-only entry keeps. */
const END_BYTES = 4096;
const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
/**
 * A JSON Lines log is held whole only up to this size, then by its length and last bytes: what is read of
 * a long log, turn after turn, is its new tail (the history cache keeps the parsed messages it needs).
 * Held whole, a hundred long chats filled the cache with bytes nobody read, each growth copying the log
 * into a larger buffer, and pushed each other out of it (a chat evicted read its tail from disk again).
 */
const MAX_LOG_VALUE_BYTES = 64 * 1024;

/** The memory an entry takes (a value's whole buffer: an appended value has room to grow). */
function heldBytes(entry: Entry): number {
  if (entry.value instanceof Uint8Array) return entry.value.buffer.byteLength;
  return entry.end?.byteLength ?? 0;
}

/** A copy of the last END_BYTES (or fewer) of `first` followed by `second`. */
function lastBytes(first: Uint8Array | undefined, second: Uint8Array): Uint8Array {
  if (second.length >= END_BYTES || first === undefined) {
    return copyBytes(second.subarray(Math.max(0, second.length - END_BYTES)));
  }
  const fromFirst = first.subarray(Math.max(0, first.length - (END_BYTES - second.length)));
  const end = new Uint8Array(fromFirst.length + second.length);
  end.set(fromFirst);
  end.set(second, fromFirst.length);
  return end;
}

/** Wraps `storage` with a TTL + LRU read cache. */
export function cacheStorage(storage: Storage, options: CacheOptions): CachedStorage {
  const { ttlMs, maxEntries } = options;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const maxValueBytes = Math.floor(maxBytes / 16);
  /** The largest value of `key` held whole. */
  const wholeUpTo = (key: string) =>
    isJsonLinesKey(key) ? Math.min(maxValueBytes, MAX_LOG_VALUE_BYTES) : maxValueBytes;
  const now = options.now ?? Date.now;
  let bytesHeld = 0;
  // A Map iterates in insertion order; with the `used` mark of an entry read or replaced since it was last
  // passed over (second chance, see Entry.used), the least recently used come first.
  const entries = new Map<string, Entry>();
  // A read may only fill the cache if no mutation of its key started or ended while it was in flight;
  // a mutation deletes the key's token, so the read's token no longer matches.
  const readTokens = new Map<string, object>();
  // The buffers the cache allocated with room to grow: the only memory an append may write past a
  // value's end in (any other buffer may hold someone else's bytes there).
  const growable = new WeakSet<ArrayBufferLike>();
  // The changes of a key under way since it was last at rest (see mutate).
  const changes = new Map<string, KeyChanges>();
  const counters = { hits: 0, misses: 0, evictions: 0 };

  /** Removes `key`'s entry, if any, and what its value held. */
  function drop(key: string): void {
    const entry = entries.get(key);
    if (entry === undefined) return;
    entries.delete(key);
    bytesHeld -= heldBytes(entry);
  }

  function lookup(key: string): Entry | undefined {
    const entry = entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= now()) {
      drop(key);
      return undefined;
    }
    entry.used = true;
    return entry;
  }

  /**
   * The entry for a value: its bytes when small enough, else its length only — unless it is a `.jsonl` log
   * ending in a torn line (a crash), which the driver cuts off before its next append: then `UNKNOWN`.
   */
  function entryFor(key: string, value: Uint8Array | undefined, expiresAt: number): Entry | typeof UNKNOWN {
    if (value === undefined) return { value: undefined, length: 0, expiresAt };
    if (value.length <= wholeUpTo(key)) return { value, length: value.length, expiresAt };
    if (isJsonLinesKey(key) && value[value.length - 1] !== NEWLINE) return UNKNOWN;
    return { value: LENGTH_ONLY, length: value.length, end: lastBytes(undefined, value), expiresAt };
  }

  function store(key: string, entry: Entry): void {
    const previous = entries.get(key);
    if (previous !== undefined) {
      // Replaced where it stands and marked used, not deleted and inserted again: an append does this
      // every turn, and a Map's deletes make it rebuild its table every few turns — a long-lived Map's old
      // tables keep their entries past young collections (ADR 0007, session 14).
      bytesHeld -= heldBytes(previous);
      entry.used = true;
    }
    entries.set(key, entry);
    bytesHeld += heldBytes(entry);
    while (entries.size > maxEntries || bytesHeld > maxBytes) {
      const [oldestKey, oldest] = entries.entries().next().value as [string, Entry];
      if (oldest.used) {
        oldest.used = false;
        entries.delete(oldestKey);
        entries.set(oldestKey, oldest);
        continue;
      }
      drop(oldestKey);
      counters.evictions += 1;
    }
  }

  function invalidate(key: string): void {
    drop(key);
    readTokens.delete(key);
  }

  /**
   * Runs a change of `key`; `next` (given what the key held before it: an entry, or undefined when that is
   * not known) says what it holds after: bytes, `undefined` for none, or `UNKNOWN`. The driver applies one
   * key's changes in call order and settles them in that order, so applying each change's `next` as it
   * settles follows what is stored, overlapping changes too (several turns of one chat appending at once);
   * a change that failed, or settled out of order, leaves the key unknown until it is at rest again.
   * While only appends are under way, readers are answered what the settled ones left (an append not yet
   * acknowledged may or may not be seen by a read: this one is not); while a write or a delete is, nothing
   * is held.
   */
  function mutate<T>(
    key: string,
    kind: 'append' | 'replace',
    operation: () => Promise<T>,
    next: (before: Entry | undefined) => Entry | typeof UNKNOWN,
  ): Promise<T> {
    let change = changes.get(key);
    if (change === undefined) {
      const before = entries.get(key);
      const known = before !== undefined && before.expiresAt > now() ? before : UNKNOWN;
      change = { running: 0, started: 0, settled: 0, state: known, appendsOnly: true };
      changes.set(key, change);
    }
    if (kind === 'replace') change.appendsOnly = false;
    if (change.appendsOnly) readTokens.delete(key);
    else invalidate(key);
    change.running += 1;
    const sequence = ++change.started;
    const changing = change;
    // A `then`, not an async function: every append of a chat turn passes here.
    return promiseOf(operation).then(
      (result) => {
        settle(key, changing, sequence, true, next);
        return result;
      },
      (error: unknown) => {
        settle(key, changing, sequence, false, next);
        throw error;
      },
    );
  }

  /** Applies a settled change to what the cache knows of its key (see mutate). */
  function settle(
    key: string,
    change: KeyChanges,
    sequence: number,
    succeeded: boolean,
    next: (before: Entry | undefined) => Entry | typeof UNKNOWN,
  ): void {
    change.running -= 1;
    const inOrder = sequence === change.settled + 1;
    change.settled = Math.max(change.settled, sequence);
    if (!succeeded || !inOrder) change.state = UNKNOWN;
    else {
      const before = change.state === UNKNOWN || change.state.expiresAt <= now() ? undefined : change.state;
      change.state = next(before);
    }
    // A read of the driver under way may have seen this change or not: it is not remembered.
    readTokens.delete(key);
    const atRest = change.running === 0;
    if (atRest) changes.delete(key);
    if ((atRest || change.appendsOnly) && change.state !== UNKNOWN) store(key, change.state);
    else drop(key);
  }

  /** What `key` holds after `data` was appended to what `before` held; `UNKNOWN` when that is not known. */
  function appended(key: string, before: Entry | undefined, data: Uint8Array): Entry | typeof UNKNOWN {
    if (before === undefined) return UNKNOWN;
    const old = before.value;
    if (old === undefined) return entryFor(key, data, before.expiresAt);
    const length = before.length + data.length;
    // A length-only entry never ends in a torn line (entryFor), and appends to a log are whole lines.
    if (old === LENGTH_ONLY) {
      return { value: LENGTH_ONLY, length, end: lastBytes(before.end, data), expiresAt: before.expiresAt };
    }
    // A torn last line (a crash) is cut off by the driver before it appends: the result is not old + data.
    if (isJsonLinesKey(key) && old.length > 0 && old[old.length - 1] !== NEWLINE) return UNKNOWN;
    // Grown past what is held: only the length (and the last bytes) are kept from now on.
    if (length > wholeUpTo(key)) {
      return { value: LENGTH_ONLY, length, end: lastBytes(old, data), expiresAt: before.expiresAt };
    }
    // The cached bytes sit at the start of a buffer only the cache holds, with room to grow into (half
    // again their size each time it runs out), so a log appended to turn after turn is not copied whole
    // on every append.
    let value: Uint8Array;
    if (growable.has(old.buffer) && old.byteOffset === 0 && old.buffer.byteLength >= length) {
      value = new Uint8Array(old.buffer, 0, length);
    } else {
      const buffer = new ArrayBuffer(length + (length >> 1));
      growable.add(buffer);
      value = new Uint8Array(buffer, 0, length);
      value.set(old);
    }
    value.set(data, old.length);
    return { value, length, expiresAt: before.expiresAt };
  }

  /**
   * Reads `key` from the storage with `read`, and remembers what `remember` makes of the answer unless a
   * change of the key started or ended meanwhile.
   */
  async function readGuarded(
    key: string,
    read: () => Promise<Uint8Array | undefined>,
    remember: (value: Uint8Array | undefined) => Entry | typeof UNKNOWN,
  ): Promise<Uint8Array | undefined> {
    counters.misses += 1;
    const token = {};
    readTokens.set(key, token);
    let value: Uint8Array | undefined;
    try {
      value = await read();
    } catch (error) {
      if (readTokens.get(key) === token) readTokens.delete(key);
      throw error;
    }
    if (readTokens.get(key) === token) {
      readTokens.delete(key);
      // A change under way may be partly in what was read.
      if (changes.has(key)) return value;
      const entry = remember(value);
      if (entry !== UNKNOWN) store(key, entry);
    }
    return value;
  }

  /**
   * What the cache holds of `key` from byte `offset` on (its own bytes, not a copy: the same object at 0
   * until the value changes), `undefined` for no value, or `NOT_HELD`; a hit is counted.
   */
  function held(key: string, offset: number): Peeked {
    const cached = lookup(key);
    if (cached === undefined) return NOT_HELD;
    const { value } = cached;
    if (value === LENGTH_ONLY) {
      // Of a value held by its length: a tail within the last bytes kept.
      const endStart = cached.length - (cached.end?.length ?? 0);
      if (offset < endStart) return NOT_HELD;
      counters.hits += 1;
      return cached.end?.subarray(Math.min(offset, cached.length) - endStart) ?? new Uint8Array(0);
    }
    counters.hits += 1;
    if (value === undefined) return undefined;
    return offset === 0 ? value : value.subarray(Math.min(offset, value.length));
  }

  async function readThrough(key: string): Promise<Uint8Array | undefined> {
    const cached = lookup(key);
    if (cached !== undefined && cached.value !== LENGTH_ONLY) {
      counters.hits += 1;
      return cached.value?.slice();
    }
    return readGuarded(
      key,
      () => storage.read(key),
      (value) => {
        const small = value !== undefined && value.length <= wholeUpTo(key);
        return entryFor(key, small ? copyBytes(value) : value, now() + ttlMs);
      },
    );
  }

  return {
    read: (key) => readThrough(key),
    async readFrom(key, offset) {
      assertOffset(offset);
      // Only the tail is copied: what a reader of a long log's new lines needs.
      const known = held(key, offset);
      if (known !== NOT_HELD) return known?.slice();
      const readTail = storage.readFrom;
      if (readTail === undefined || offset === 0) {
        // The whole value, which fills the cache (and later appends extend it).
        const value = await readThrough(key);
        return value?.subarray(Math.min(offset, value.length));
      }
      // The storage reads the tail itself: the value's length is learnt from it (unless the offset was past
      // the end, which tells only that the value is no longer).
      return readGuarded(
        key,
        () => readTail.call(storage, key, offset),
        (tail) => {
          if (tail === undefined) return entryFor(key, undefined, now() + ttlMs);
          if (tail.length === 0) return UNKNOWN;
          if (isJsonLinesKey(key) && tail[tail.length - 1] !== NEWLINE) return UNKNOWN;
          const length = offset + tail.length;
          return { value: LENGTH_ONLY, length, end: lastBytes(undefined, tail), expiresAt: now() + ttlMs };
        },
      );
    },
    peek: (key, offset) => held(key, offset),
    async exists(key) {
      const cached = lookup(key);
      if (cached === undefined) return storage.exists(key);
      counters.hits += 1;
      return cached.value !== undefined;
    },
    write(key, data, options) {
      // Copied now: the caller may reuse its buffer while the write is under way.
      const value = copyBytes(data);
      return mutate(
        key,
        'replace',
        () => storage.write(key, value, options),
        () => entryFor(key, value, now() + ttlMs),
      );
    },
    delete: (key) =>
      mutate(
        key,
        'replace',
        () => storage.delete(key),
        () => entryFor(key, undefined, now() + ttlMs),
      ),
    append(key, data) {
      const value = copyBytes(data);
      return mutate(
        key,
        'append',
        () => storage.append(key, value),
        (before) => appended(key, before, value),
      );
    },
    list: (prefix) => storage.list(prefix),
    async close() {
      entries.clear();
      bytesHeld = 0;
      readTokens.clear();
      changes.clear();
      await storage.close();
    },
    stats: () => ({ ...counters, size: entries.size, bytes: bytesHeld }),
  };
}
