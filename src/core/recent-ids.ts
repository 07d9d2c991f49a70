/**
 * The ids seen last, at most `limit` of them (the oldest forgotten first): enough to tell a retry or a
 * second delivery of the same thing from a new one without remembering every id ever seen.
 */
export interface RecentIds {
  has(id: string): boolean;
  add(id: string): void;
}

/** Creates a set of the last `limit` ids added. */
export function createRecentIds(limit: number): RecentIds {
  // A Set iterates in insertion order: the first is the oldest.
  const ids = new Set<string>();
  return {
    has: (id) => ids.has(id),
    add(id) {
      ids.add(id);
      if (ids.size > limit) ids.delete(ids.values().next().value as string);
    },
  };
}

/** Ids noted within the last `ttlMs`, at most `limit` of them (the oldest forgotten first). */
export interface ExpiringIds {
  /** Noted within `ttlMs`, and not deleted since. */
  has(id: string): boolean;
  /** Notes `id` now (again: its time starts afresh). */
  add(id: string): void;
  delete(id: string): void;
}

/** Creates a set of ids that each expire `ttlMs` after they were last added. */
export function createExpiringIds(limit: number, ttlMs: number, now: () => number = Date.now): ExpiringIds {
  // Id → when added; a Map iterates in insertion order, so the oldest comes first.
  const addedAt = new Map<string, number>();
  return {
    has(id) {
      const at = addedAt.get(id);
      if (at === undefined) return false;
      if (now() - at < ttlMs) return true;
      addedAt.delete(id);
      return false;
    },
    add(id) {
      addedAt.delete(id);
      addedAt.set(id, now());
      if (addedAt.size > limit) addedAt.delete(addedAt.keys().next().value as string);
    },
    delete(id) {
      addedAt.delete(id);
    },
  };
}
