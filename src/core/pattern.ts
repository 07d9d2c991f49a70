import { ValidationError } from './errors.ts';
import { EVENT_TYPE_PATTERN } from './events.ts';

/**
 * Subscription patterns, spelled like NATS subjects so a NATS transport can hand them to the server
 * unchanged: segments are separated by dots, `*` stands for exactly one segment, and `>` (last segment
 * only) for one or more.
 */

const SEGMENT = /^[a-z][a-z0-9_]*$/;

/** True when `pattern` contains a wildcard segment (`*` or `>`), so an exact lookup cannot find its events. */
export function isWildcardPattern(pattern: string): boolean {
  return pattern.includes('*') || pattern.includes('>');
}

/** Throws a ValidationError unless `type` is a lowercase dotted event type (no wildcards). */
export function assertEventType(type: string): void {
  if (typeof type !== 'string' || !EVENT_TYPE_PATTERN.test(type)) {
    throw new ValidationError(
      `invalid event type "${String(type)}": expected lowercase dotted words like "chat.message"`,
      { details: { type } },
    );
  }
}

/** Throws a ValidationError unless `pattern` is an event type or a well-formed wildcard pattern. */
export function assertPattern(pattern: string): void {
  const segments = typeof pattern === 'string' && pattern.length > 0 ? pattern.split('.') : [''];
  const valid = segments.every(
    (segment, index) =>
      segment === '*' || (segment === '>' && index === segments.length - 1) || SEGMENT.test(segment),
  );
  if (!valid) {
    throw new ValidationError(
      `invalid pattern "${String(pattern)}": expected dotted words, "*" for one word or a final ">" for the rest`,
      { details: { pattern } },
    );
  }
}

/** Whether the event type `type` matches `pattern` (`chat.*` matches `chat.message`, `chat.>` also `chat.a.b`). */
export function matchesPattern(pattern: string, type: string): boolean {
  if (pattern === type) return true;
  const patternSegments = pattern.split('.');
  const typeSegments = type.split('.');
  for (let index = 0; index < patternSegments.length; index++) {
    const segment = patternSegments[index];
    if (segment === '>') return typeSegments.length > index;
    if (index >= typeSegments.length) return false;
    if (segment !== '*' && segment !== typeSegments[index]) return false;
  }
  return patternSegments.length === typeSegments.length;
}
