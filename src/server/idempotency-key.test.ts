import { describe, expect, it } from 'vitest';
import { isPlatformError } from '../core/errors.ts';
import { parseIdempotencyKey, turnIdForKey } from './idempotency-key.ts';

function rejection(header: string): { code: string; message: string } {
  try {
    parseIdempotencyKey(header);
  } catch (error) {
    if (isPlatformError(error)) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error(`"${header}" was accepted`);
}

describe('the Idempotency-Key header', () => {
  it('is optional, and any 1 to 255 printable ASCII characters are a key, as sent', () => {
    expect(parseIdempotencyKey(undefined)).toBeUndefined();
    expect(parseIdempotencyKey('a')).toBe('a');
    const longest = ` ${'~'.repeat(253)}!`;
    expect(parseIdempotencyKey(longest)).toBe(longest);
    expect(parseIdempotencyKey('"8e03978e-40d5-43e8-bc93-6894a57f9324"')).toBe(
      '"8e03978e-40d5-43e8-bc93-6894a57f9324"',
    );
  });

  it('is refused empty, over 255 characters or with other characters, naming the header', () => {
    expect(rejection('')).toEqual({
      code: 'CHAT_ERR_VALIDATION_INVALID',
      message: 'the Idempotency-Key header must be 1 to 255 printable ASCII characters; it is empty',
    });
    expect(rejection('k'.repeat(256)).message).toBe(
      'the Idempotency-Key header must be 1 to 255 printable ASCII characters; it is 256 characters long',
    );
    for (const header of ['tab\there', 'caf\u00e9', 'new\nline', '\u007f']) {
      expect(rejection(header).message).toContain('Idempotency-Key header');
    }
  });
});

describe('the turn id of a key', () => {
  it('is the same UUIDv8 for the same user, session and key', () => {
    const id = turnIdForKey('u1', 's1', 'key-1');
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(turnIdForKey('u1', 's1', 'key-1')).toBe(id);
  });

  it('differs when any of the three does, however the strings are cut', () => {
    const ids = new Set([
      turnIdForKey('u1', 's1', 'key-1'),
      turnIdForKey('u2', 's1', 'key-1'),
      turnIdForKey('u1', 's2', 'key-1'),
      turnIdForKey('u1', 's1', 'key-2'),
      // The same characters split differently between the parts.
      turnIdForKey('u1s', '1', 'key-1'),
      turnIdForKey('u1', 's1k', 'ey-1'),
    ]);
    expect(ids.size).toBe(6);
  });
});
