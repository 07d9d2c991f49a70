/**
 * A map that forgets its least recently used entries once their sizes add up to more than a bound, for
 * caches whose cost is the bytes they hold rather than the number of entries (the S3 driver's copies of
 * objects: one entry may be a 100-byte JSON document or a megabyte of merged log lines). It only stores:
 * whether an entry may still be used is the caller's to decide.
 */

export interface ByteBoundedCacheStats {
  /** Entries held, and the sum of their sizes (never above `maxBytes`). */
  entries: number;
  bytes: number;
  /** Entries dropped to stay within the bound. */
  evictions: number;
}

export interface ByteBoundedCache<V> {
  /** The entry under `name`, now the most recently used; `undefined` when there is none. */
  get(name: string): V | undefined;
  /**
   * Stores `value` under `name` as costing `size` bytes (the key's own length is added), replacing any
   * entry there, and evicts the least recently used until the total fits. A value that alone exceeds the
   * bound is not kept, and the entry it replaces is dropped all the same.
   */
  set(name: string, value: V, size: number): void;
  delete(name: string): void;
  clear(): void;
  stats(): ByteBoundedCacheStats;
}

interface Slot<V> {
  value: V;
  size: number;
}

/** Creates an empty cache holding at most `maxBytes` (0 holds nothing). */
export function createByteBoundedCache<V>(maxBytes: number): ByteBoundedCache<V> {
  // A Map iterates in insertion order: re-inserting on every hit keeps the least recently used first.
  const slots = new Map<string, Slot<V>>();
  let bytes = 0;
  let evictions = 0;

  function remove(name: string): void {
    const slot = slots.get(name);
    if (slot === undefined) return;
    slots.delete(name);
    bytes -= slot.size;
  }

  return {
    get(name) {
      const slot = slots.get(name);
      if (slot === undefined) return undefined;
      slots.delete(name);
      slots.set(name, slot);
      return slot.value;
    },
    set(name, value, size) {
      remove(name);
      const cost = size + name.length;
      if (cost > maxBytes) return;
      slots.set(name, { value, size: cost });
      bytes += cost;
      for (const [oldest] of slots) {
        if (bytes <= maxBytes) break;
        remove(oldest);
        evictions += 1;
      }
    },
    delete: remove,
    clear() {
      slots.clear();
      bytes = 0;
    },
    stats() {
      return { entries: slots.size, bytes, evictions };
    },
  };
}
