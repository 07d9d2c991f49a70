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
