/**
 * A read cache in front of a storage: recently read values (and recent misses) are answered from memory
 * for `ttlMs`, at most `maxEntries` of them, least recently used evicted first. Every write, delete and
 * append made through the cache invalidates the key. Changes made behind its back (another node, another
 * process) are seen once the entry expires, so the TTL bounds staleness.
 */

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
  value: Uint8Array | undefined;
  expiresAt: number;
}

/** Wraps `storage` with a TTL + LRU read cache. */
export function cacheStorage(storage: Storage, options: CacheOptions): CachedStorage {
  const { ttlMs, maxEntries } = options;
  const now = options.now ?? Date.now;
  // A Map iterates in insertion order: re-inserting on every hit keeps the least recently used first.
  const entries = new Map<string, Entry>();
  // A read may only fill the cache if no mutation of its key started or ended while it was in flight;
  // a mutation deletes the key's token, so the read's token no longer matches.
  const readTokens = new Map<string, object>();
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

  function store(key: string, value: Uint8Array | undefined): void {
    entries.delete(key);
    entries.set(key, { value: value?.slice(), expiresAt: now() + ttlMs });
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

  async function mutate<T>(key: string, operation: () => Promise<T>): Promise<T> {
    invalidate(key);
    try {
      return await operation();
    } finally {
      invalidate(key);
    }
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
      store(key, value);
    }
    return value;
  }

  return {
    read: (key) => readThrough(key),
    async exists(key) {
      const cached = lookup(key);
      if (cached === undefined) return storage.exists(key);
      counters.hits += 1;
      return cached.value !== undefined;
    },
    write: (key, data) => mutate(key, () => storage.write(key, data)),
    delete: (key) => mutate(key, () => storage.delete(key)),
    append: (key, data) => mutate(key, () => storage.append(key, data)),
    list: (prefix) => storage.list(prefix),
    async close() {
      entries.clear();
      readTokens.clear();
      await storage.close();
    },
    stats: () => ({ ...counters, size: entries.size }),
  };
}
