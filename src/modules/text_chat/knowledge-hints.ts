/**
 * Users known to have no knowledge at all, so a turn can skip the `knowledge.query` gather for them.
 *
 * Most users have no documents, and asking every source on every turn to find that out again is a whole
 * round through the bus and the sources' indexes — about a tenth of a chat turn's CPU (bench/chat). A
 * source that replies `empty: true` promises to emit `knowledge.changed` for the user when it comes to hold
 * something (rag does, on every document change, to every node). When every source that answered a gather
 * said so, the user is noted here, and turns skip the gather until `knowledge.changed` comes for the user,
 * or `ttlMs` passed — the bound on how long a lost `knowledge.changed` (a node that missed a broadcast) can
 * hide a document.
 *
 * A gather that was under way while a change came must not note the user: it may have been answered just
 * before the change. So every change moves `version` on, and `noteEmpty` takes the version its gather
 * started at.
 */

import { createExpiringIds } from '../../core/recent-ids.ts';

/** How long a user stays noted without knowledge, at most. */
export const EMPTY_KNOWLEDGE_TTL_MS = 60_000;
/** Users noted at most; beyond, the oldest note goes (it is only a saving, never needed). */
const MAX_NOTED = 10_000;

export interface KnowledgeHints {
  /** Whether the user was found without any knowledge, with no change heard since. */
  isEmpty(userId: string): boolean;
  /** Moves on at every change heard: pass it, as it was when the gather started, to `noteEmpty`. */
  version(): number;
  /** Every source said the user has nothing, in a gather started at `startedAt` (a `version()`). */
  noteEmpty(userId: string, startedAt: number): void;
  /** A source's `knowledge.changed` for the user. */
  changed(userId: string): void;
}

export function createKnowledgeHints(options: { ttlMs?: number; now?: () => number } = {}): KnowledgeHints {
  const empty = createExpiringIds(MAX_NOTED, options.ttlMs ?? EMPTY_KNOWLEDGE_TTL_MS, options.now);
  let changes = 0;

  return {
    isEmpty: (userId) => empty.has(userId),
    version: () => changes,
    noteEmpty(userId, startedAt) {
      if (startedAt === changes) empty.add(userId);
    },
    changed(userId) {
      changes++;
      empty.delete(userId);
    },
  };
}
