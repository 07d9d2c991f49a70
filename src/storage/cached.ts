/**
 * A read cache in front of a storage: recently read values (and recent misses) are answered from memory
 * for `ttlMs`, at most `maxEntries` of them, least recently used evicted first. Changes made behind its
 * back (another node, another process) are seen once the entry expires, so the TTL bounds staleness.
 *
 * Changes made through the cache keep it current rather than emptying it, so a log that is appended to and
 * read again (a chat session, every turn) is never read back from the driver: once a write resolves, the
 * cache holds the written bytes; once an append resolves, a cached value is extended by the appended bytes
 * (keeping the entry's expiry, so the TTL still bounds staleness). A change is remembered only when no
 * other change of the key overlapped it, and the driver applies one key's changes in call order, so the
 * remembered bytes are the stored ones (after a delete: none). A failed change, overlapping changes, an
 * append to an uncached key, or to a `.jsonl` value that ends in a torn line (the driver cuts it off
 * before appending) leave the key uncached.
 *
 * `readFrom` answers a hit with a copy of the value's tail only: a reader following a long log pays for
 * its new lines, not for the whole log.
 */

import { copyBytes } from './bytes.ts';
import { isJsonLinesKey } from './json-lines.ts';
import { assertOffset } from './read-from.ts';
import type { Storage } from './types.ts';

export interface CacheOptions {
  /** How long a cached value is served, in milliseconds. */
  ttlMs: number;
  /** The most keys kept; the least recently used is evicted beyond it. */
  maxEntries: number;
  /** The clock, in milliseconds (default `Date.now`); tests inject their own. */
  now?: () => number;
}

/** Diagnostic counters of a cache (for tests, metrics and benchmarks). */
export interface CacheStats {
  hits: number;
  misses: number;
  evictions: number;
  size: number;
}

/** A cached storage: the contract plus its diagnostics. */
export interface CachedStorage extends Storage {
  stats(): CacheStats;
}

interface Entry {
  /** The cache's own copy: every hit hands out a copy of it. */
  value: Uint8Array | undefined;
  expiresAt: number;
}

const NEWLINE = 0x0a;
/** What a change leaves when the cache cannot tell what the key holds afterwards. */
const UNKNOWN = Symbol('unknown');

/** Wraps `storage` with a TTL + LRU read cache. */
export function cacheStorage(storage: Storage, options: CacheOptions): CachedStorage {
  const { ttlMs, maxEntries } = options;
  const now = options.now ?? Date.now;
  // A Map iterates in insertion order: re-inserting on every hit keeps the least recently used first.
  const entries = new Map<string, Entry>();
  // A read may only fill the cache if no mutation of its key started or ended while it was in flight;
  // a mutation deletes the key's token, so the read's token no longer matches.
  const readTokens = new Map<string, object>();
  // The buffers the cache allocated with room to grow: the only memory an append may write past a
  // value's end in (any other buffer may hold someone else's bytes there).
  const growable = new WeakSet<ArrayBufferLike>();
  // Changes of a key under way, and how many have started: a change overlapped no other when none was
  // under way as it started and none started before it ended.
  const changes = new Map<string, { running: number; started: number }>();
  const counters = { hits: 0, misses: 0, evictions: 0 };

  function lookup(key: string): Entry | undefined {
    const entry = entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= now()) {
      entries.delete(key);
      return undefined;
    }
    entries.delete(key);
    entries.set(key, entry);
    return entry;
  }

  function store(key: string, value: Uint8Array | undefined, expiresAt = now() + ttlMs): void {
    entries.delete(key);
    entries.set(key, { value, expiresAt });
    while (entries.size > maxEntries) {
      const oldest = entries.keys().next().value as string;
      entries.delete(oldest);
      counters.evictions += 1;
    }
  }

  function invalidate(key: string): void {
    entries.delete(key);
    readTokens.delete(key);
  }

  /**
   * Runs a change of `key`. Once it succeeded without overlapping another change of the key, `next` (given
   * the entry cached before it began) says what the key now holds: bytes, `undefined` for none, or
   * `UNKNOWN` to leave it uncached.
   */
  async function mutate<T>(
    key: string,
    operation: () => Promise<T>,
    next: (before: Entry | undefined) => Entry | typeof UNKNOWN,
  ): Promise<T> {
    const before = entries.get(key);
    invalidate(key);
    let change = changes.get(key);
    if (change === undefined) {
      change = { running: 0, started: 0 };
      changes.set(key, change);
    }
    const overlapped = change.running > 0;
    change.running += 1;
    change.started += 1;
    const startedBefore = change.started;
    let succeeded = false;
    try {
      const result = await operation();
      succeeded = true;
      return result;
    } finally {
      const alone = !overlapped && change.started === startedBefore;
      change.running -= 1;
      if (change.running === 0) changes.delete(key);
      invalidate(key);
      if (alone && succeeded) {
        const after = next(before !== undefined && before.expiresAt > now() ? before : undefined);
        if (after !== UNKNOWN) store(key, after.value, after.expiresAt);
      }
    }
  }

  /** What `key` holds after `data` was appended to what `before` held; `UNKNOWN` when that is not known. */
  function appended(key: string, before: Entry | undefined, data: Uint8Array): Entry | typeof UNKNOWN {
    if (before === undefined) return UNKNOWN;
    const old = before.value;
    if (old === undefined) return { value: data, expiresAt: before.expiresAt };
    // A torn last line (a crash) is cut off by the driver before it appends: the result is not old + data.
    if (isJsonLinesKey(key) && old.length > 0 && old[old.length - 1] !== NEWLINE) return UNKNOWN;
    // The cached bytes sit at the start of a buffer only the cache holds, with room to grow into (half
    // again their size each time it runs out), so a log appended to turn after turn is not copied whole
    // on every append.
    const length = old.length + data.length;
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
    return { value, expiresAt: before.expiresAt };
  }

  async function readThrough(key: string): Promise<Uint8Array | undefined> {
    const cached = lookup(key);
    if (cached !== undefined) {
      counters.hits += 1;
      return cached.value?.slice();
    }
    counters.misses += 1;
    const token = {};
    readTokens.set(key, token);
    let value: Uint8Array | undefined;
    try {
      value = await storage.read(key);
    } catch (error) {
      if (readTokens.get(key) === token) readTokens.delete(key);
      throw error;
    }
    if (readTokens.get(key) === token) {
      readTokens.delete(key);
      store(key, value === undefined ? undefined : copyBytes(value));
    }
    return value;
  }

  return {
    read: (key) => readThrough(key),
    async readFrom(key, offset) {
      assertOffset(offset);
      const cached = lookup(key);
      if (cached !== undefined) {
        counters.hits += 1;
        // Only the tail is copied: what a reader of a long log's new lines needs.
        return cached.value?.slice(Math.min(offset, cached.value.length));
      }
      // A miss reads the whole value, which fills the cache (and later appends extend it).
      const value = await readThrough(key);
      return value?.subarray(Math.min(offset, value.length));
    },
    async exists(key) {
      const cached = lookup(key);
      if (cached === undefined) return storage.exists(key);
      counters.hits += 1;
      return cached.value !== undefined;
    },
    write(key, data) {
      // Copied now: the caller may reuse its buffer while the write is under way.
      const value = copyBytes(data);
      return mutate(
        key,
        () => storage.write(key, value),
        () => ({ value, expiresAt: now() + ttlMs }),
      );
    },
    delete: (key) =>
      mutate(
        key,
        () => storage.delete(key),
        () => ({ value: undefined, expiresAt: now() + ttlMs }),
      ),
    append(key, data) {
      const value = copyBytes(data);
      return mutate(
        key,
        () => storage.append(key, value),
        (before) => appended(key, before, value),
      );
    },
    list: (prefix) => storage.list(prefix),
    async close() {
      entries.clear();
      readTokens.clear();
      changes.clear();
      await storage.close();
    },
    stats: () => ({ ...counters, size: entries.size }),
  };
}
