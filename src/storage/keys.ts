/**
 * The one key validator every driver and wrapper uses, so a key is valid or invalid the same way whether
 * it lands in memory, in a flat file, in Redis or in S3. Flat files map keys straight to paths, so the
 * rules are the ones that keep a key inside its root and give it exactly one spelling.
 */

import { PlatformError } from '../core/errors.ts';

/**
 * Reserved for the drivers' own names beside the keys: the flatfile driver's temporary files start with it,
 * and the S3 driver's append parts are named `key + '.parley-tmp-append.' + id`. No key segment may contain
 * it, so neither can ever be mistaken for (or collide with) a stored key.
 */
export const RESERVED_NAME_PART = '.parley-tmp-';

function invalidKey(key: unknown, reason: string): PlatformError {
  return new PlatformError(
    'CHAT_ERR_STORAGE_INVALID_KEY',
    `invalid storage key ${JSON.stringify(key)}: ${reason}`,
    {
      details: { key, reason },
    },
  );
}

function checkCharacters(key: string): void {
  if (key.includes('\0')) throw invalidKey(key, 'it contains a NUL character');
  if (key.includes('\\')) throw invalidKey(key, 'it contains a backslash');
  if (key.startsWith('/')) throw invalidKey(key, 'it is absolute (starts with "/")');
}

function checkSegment(key: string, segment: string): void {
  if (segment === '') throw invalidKey(key, 'it has an empty segment ("//" or a trailing "/")');
  if (segment === '..') throw invalidKey(key, 'it has a ".." segment');
  if (segment === '.') throw invalidKey(key, 'it has a "." segment');
  if (segment.includes(RESERVED_NAME_PART)) {
    throw invalidKey(key, `a segment contains the reserved "${RESERVED_NAME_PART}"`);
  }
}

/**
 * Throws CHAT_ERR_STORAGE_INVALID_KEY (details: `key`, `reason`) unless `key` is a non-empty relative
 * `/`-separated path: no leading `/`, no empty, `.` or `..` segment, no NUL, no backslash, and no segment
 * containing the reserved `.parley-tmp-`.
 */
export function assertValidKey(key: string): void {
  if (typeof key !== 'string') throw invalidKey(key, 'it is not a string');
  if (key === '') throw invalidKey(key, 'it is empty');
  checkCharacters(key);
  for (const segment of key.split('/')) checkSegment(key, segment);
}

/**
 * Throws CHAT_ERR_STORAGE_INVALID_KEY unless `prefix` is usable by `list`: `''` (everything), a folder
 * (a valid key followed by `/`), or a valid folder path followed by a partial last segment (`sessions/u`
 * matches `sessions/u1/…` and `sessions/u2/…`). The partial segment may be anything but `..`.
 */
export function assertValidPrefix(prefix: string): void {
  if (typeof prefix !== 'string') throw invalidKey(prefix, 'it is not a string');
  if (prefix === '') return;
  checkCharacters(prefix);
  const segments = prefix.split('/');
  const partial = segments.pop() ?? '';
  for (const segment of segments) checkSegment(prefix, segment);
  if (partial === '..') throw invalidKey(prefix, 'it has a ".." segment');
}

/** True when `key` passes `assertValidKey`. */
export function isValidKey(key: string): boolean {
  try {
    assertValidKey(key);
    return true;
  } catch {
    return false;
  }
}
