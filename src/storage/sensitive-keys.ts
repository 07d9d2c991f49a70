/**
 * Which storage keys hold sensitive data, and whose: `security.encryption.sensitive` lists key patterns
 * over the full keys the driver sees (a module's keys under its storage root). In a pattern, `*` is one
 * key segment, a final `**` is anything below, and `{user}` (a whole segment, or part of one such as
 * `{user}.json`) marks where the owning user's id is. A key matching a pattern with `{user}` is sealed
 * with that user's data key, so destroying the key shreds it; one matching a pattern without `{user}` is
 * sealed with the platform's data key. The first matching pattern wins; keys matching none are plain.
 *
 * The same patterns say whose bytes a key holds for the per-user storage quota (quota.ts), which also
 * needs the other direction — where one user's keys can be — to count them: `userKeyPrefixes`.
 */

import { PlatformError } from '../core/errors.ts';

/** Whose data key seals a value. */
export type DataKeyOwner = { kind: 'user'; userId: string } | { kind: 'platform' };

/** The owner of the data at `key`, or `undefined` when the key is not sensitive. */
export type SensitiveKeyMatcher = (key: string) => DataKeyOwner | undefined;

const PLATFORM: DataKeyOwner = { kind: 'platform' };

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** One pattern as a regular expression whose group `user`, when present, captures the user segment. */
function compile(pattern: string): RegExp {
  const segments = pattern.split('/');
  const parts = segments.map((segment, index) => {
    if (segment === '**' && index === segments.length - 1) return '.+';
    if (segment === '*') return '[^/]+';
    if (segment === '' || segment.includes('*')) {
      throw new PlatformError(
        'CHAT_ERR_CONFIG_INVALID',
        `security.encryption.sensitive: "${pattern}" is not a key pattern (segments, "*", "{user}", a final "**")`,
        { details: { path: 'security.encryption.sensitive', value: pattern } },
      );
    }
    return segment.split('{user}').map(escapeRegExp).join('(?<user>[^/]+)');
  });
  return new RegExp(`^${parts.join('/')}$`);
}

/** A user id from its key segment: modules write it URI-encoded where it could hold odd characters. */
function userIdOf(segment: string): string {
  // Most ids have nothing encoded, and decodeURIComponent costs more than the pattern match (~170 ns).
  if (!segment.includes('%')) return segment;
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** The matcher for `patterns` (CHAT_ERR_CONFIG_INVALID for a malformed one). */
export function createSensitiveKeyMatcher(patterns: readonly string[]): SensitiveKeyMatcher {
  const compiled = patterns.map(compile);
  return (key) => {
    for (const pattern of compiled) {
      const match = pattern.exec(key);
      if (match === null) continue;
      const segment = match.groups?.user;
      return segment === undefined ? PLATFORM : { kind: 'user', userId: userIdOf(segment) };
    }
    return undefined;
  };
}

/**
 * The list prefixes under which `patterns` can place keys of `userId`: each `{user}` pattern cut at its
 * first `*` or just after its `{user}` segment, with the id filled in (as is, and URI-encoded when that
 * differs, as modules write odd ids). A listing of them holds every key the matcher gives to the user,
 * and may hold others (filter with the matcher).
 */
export function userKeyPrefixes(patterns: readonly string[], userId: string): string[] {
  const ids = [...new Set([userId, encodeURIComponent(userId)])];
  const prefixes = new Set<string>();
  for (const pattern of patterns) {
    const segments = pattern.split('/');
    const at = segments.findIndex((segment) => segment.includes('{user}'));
    if (at === -1) continue;
    const wildcard = segments.findIndex((segment) => segment.includes('*'));
    if (wildcard !== -1 && wildcard < at) {
      prefixes.add(
        segments
          .slice(0, wildcard)
          .map((segment) => `${segment}/`)
          .join(''),
      );
      continue;
    }
    const before = segments
      .slice(0, at)
      .map((segment) => `${segment}/`)
      .join('');
    const last = at === segments.length - 1;
    for (const id of ids) {
      prefixes.add(`${before}${segments[at]!.split('{user}').join(id)}${last ? '' : '/'}`);
    }
  }
  return [...prefixes];
}
