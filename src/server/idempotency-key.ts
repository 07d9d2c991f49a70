/**
 * The `Idempotency-Key` header of `POST /v1/sessions/:id/messages` (as Stripe and the IETF httpapi draft
 * have it): a client that may send a message again (a timeout, a dropped connection) names the attempt,
 * and every repeat of the name is the same turn. The turn id is derived from the key, so the turn's
 * stored messages are found by it on any node (text_chat answers a turn id it already holds from the
 * log instead of generating again).
 */

import { createHash } from 'node:crypto';
import { ValidationError } from '../core/errors.ts';

/** The header, as clients and the docs spell it (Node hands it over lower-cased). */
export const IDEMPOTENCY_KEY_HEADER = 'Idempotency-Key';

/** Longest key accepted, in characters (Stripe's limit). */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

/**
 * A key is printable ASCII, space to tilde (what every client library can send and every log can show):
 * as a JSON-schema `pattern`, for the WebSocket frame's `idempotencyKey`.
 */
export const IDEMPOTENCY_KEY_PATTERN = '^[\\x20-\\x7e]+$';
const PRINTABLE_ASCII = new RegExp(IDEMPOTENCY_KEY_PATTERN);

/**
 * The key of a request, or undefined when it has none; a header that is empty, too long or holds other
 * than printable ASCII is a ValidationError (400) naming the header.
 */
export function parseIdempotencyKey(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  // Node joins repeated unknown headers with ", "; an array only comes from a caller building one.
  const value = Array.isArray(header) ? header.join(', ') : header;
  const rule = `1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters`;
  if (value === '' || value.length > MAX_IDEMPOTENCY_KEY_LENGTH || !PRINTABLE_ASCII.test(value)) {
    const what =
      value === ''
        ? 'it is empty'
        : value.length > MAX_IDEMPOTENCY_KEY_LENGTH
          ? `it is ${value.length} characters long`
          : 'it holds other characters';
    throw new ValidationError(`the ${IDEMPOTENCY_KEY_HEADER} header must be ${rule}; ${what}`, {
      details: { header: IDEMPOTENCY_KEY_HEADER, length: value.length, limit: MAX_IDEMPOTENCY_KEY_LENGTH },
    });
  }
  return value;
}

/**
 * The turn id of a keyed message: a UUIDv8 (RFC 9562, "custom") from SHA-256 over the user, the session
 * and the key, so one user's key never meets another's, nor the same key in another session, and never a
 * turn id made by `newId` (UUIDv7). The same three always give the same id, on every node.
 */
export function turnIdForKey(userId: string, sessionId: string, key: string): string {
  // JSON of the three strings: an encoding no two different triples share.
  const digest = createHash('sha256')
    .update(JSON.stringify(['parley idempotency key v1', userId, sessionId, key]))
    .digest();
  digest[6] = (digest[6]! & 0x0f) | 0x80; // version 8
  digest[8] = (digest[8]! & 0x3f) | 0x80; // variant 10
  const hex = digest.toString('hex', 0, 16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
