import { describe, expect, it } from 'vitest';
import { isPlatformError } from '../core/errors.ts';
import { assertValidKey, assertValidPrefix, isValidKey } from './keys.ts';

function rejection(check: () => void): { code?: string; details?: Record<string, unknown> } | undefined {
  try {
    check();
    return undefined;
  } catch (error) {
    expect(isPlatformError(error, 'CHAT_ERR_STORAGE_INVALID_KEY')).toBe(true);
    return error as { code: string; details: Record<string, unknown> };
  }
}

describe('assertValidKey', () => {
  it('accepts the storage layout of the spec', () => {
    for (const key of [
      'sessions/u1/s1/metadata.json',
      'sessions/u1/s1/messages.jsonl',
      'memory/short_term/s1/context.json',
      'rag/vectors/i1/embeddings.npy',
      'agents/definitions/a1.json',
      'file',
      '.hidden',
      '..double-dot-prefix',
      'a/b..c/d',
      'users/zoë/ñ.json',
    ]) {
      expect(isValidKey(key), key).toBe(true);
    }
  });

  it.each([
    ['', 'empty'],
    ['/abs', 'absolute'],
    ['..', '".."'],
    ['a/../b', '".."'],
    ['a/.', '"."'],
    ['a//b', 'empty segment'],
    ['a/', 'empty segment'],
    ['a\\b', 'backslash'],
    ['a\0b', 'NUL'],
    ['x/.parley-tmp-0011', 'reserved'],
    ['x/log.jsonl.parley-tmp-append.0011', 'reserved'],
  ])('rejects %j (%s) with the key and the reason in details', (key, reason) => {
    const error = rejection(() => assertValidKey(key));
    expect(error?.details?.key).toBe(key);
    expect(String(error?.details?.reason)).toContain(reason);
  });

  it('rejects a value that is not a string', () => {
    expect(rejection(() => assertValidKey(42 as unknown as string))).toBeDefined();
  });
});

describe('assertValidPrefix', () => {
  it('accepts everything, folders, and partial names', () => {
    for (const prefix of ['', 'a/', 'a/b/', 'a', 'a/b', 'a/.', 'a/.hid']) {
      expect(() => assertValidPrefix(prefix), prefix).not.toThrow();
    }
  });

  it('rejects prefixes that could name something outside the store', () => {
    for (const prefix of ['/', '/a/', '../', '..', 'a/..', 'a/../', 'a//', './', 'a\\', 'a\0']) {
      expect(rejection(() => assertValidPrefix(prefix))?.details?.key, prefix).toBe(prefix);
    }
  });
});
