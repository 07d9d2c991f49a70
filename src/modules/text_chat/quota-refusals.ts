/**
 * Users refused lately for their storage quota (CHAT_ERR_STORAGE_QUOTA_EXCEEDED, 413).
 *
 * A turn stores the user's message while the model already works on the reply (user-message.ts), so a
 * user at their quota learns it only once the model has answered: a model call — paid, or seconds of a
 * local model's CPU — whose reply is thrown away. For a user refused lately, a turn stores the message
 * first and calls the model only once it is stored, so a refusal costs no model call. A message stored
 * that way shows the user has room again (they deleted a chat, or the limit was raised), and ends the note;
 * if the reply then does not fit, the turn is refused as any failed turn is, with the message kept, and
 * noted again. The first refusal of a user still costs one call: nothing tells before it that they are at
 * the limit.
 */

import { createExpiringIds } from '../../core/recent-ids.ts';

/** How long a refusal is remembered at most. */
export const QUOTA_REFUSAL_MEMORY_MS = 10 * 60_000;
/** Users remembered at most; beyond, the oldest refusal is forgotten (it only saves a model call). */
const MAX_REMEMBERED = 10_000;

export interface QuotaRefusals {
  /** The user was refused within `QUOTA_REFUSAL_MEMORY_MS`, and nothing of theirs was stored since. */
  refusedLately(userId: string): boolean;
  /** A turn of the user was refused for their quota. */
  refused(userId: string): void;
  /** A message of the user was stored: they have room again. */
  stored(userId: string): void;
}

export function createQuotaRefusals(options: { now?: () => number } = {}): QuotaRefusals {
  const refused = createExpiringIds(MAX_REMEMBERED, QUOTA_REFUSAL_MEMORY_MS, options.now);
  return {
    refusedLately: (userId) => refused.has(userId),
    refused: (userId) => refused.add(userId),
    stored: (userId) => refused.delete(userId),
  };
}
