import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from './errors.ts';
import { assertEventType, assertPattern, isWildcardPattern, matchesPattern } from './pattern.ts';

describe('matchesPattern', () => {
  it.each([
    ['chat.message', 'chat.message', true],
    ['chat.message', 'chat.messages', false],
    ['chat.*', 'chat.message', true],
    ['chat.*', 'chat.message.delta', false],
    ['chat.*', 'chat', false],
    ['chat.>', 'chat.message', true],
    ['chat.>', 'chat.message.delta', true],
    ['chat.>', 'chat', false],
    ['*.message', 'user.message', true],
    ['*.*.delta', 'chat.message.delta', true],
    ['*', 'chat', true],
    ['*', 'chat.message', false],
    ['>', 'chat.message.delta', true],
    ['chat.*.>', 'chat.message', false],
    ['chat.*.>', 'chat.message.delta', true],
  ])('%s against %s is %s', (pattern, type, expected) => {
    expect(matchesPattern(pattern, type)).toBe(expected);
  });

  it('agrees with a regular-expression reading of the NATS rules', () => {
    const segment = fc.constantFrom('a', 'b', 'c');
    const type = fc.array(segment, { minLength: 1, maxLength: 4 }).map((parts) => parts.join('.'));
    const pattern = fc
      .tuple(fc.array(fc.constantFrom('a', 'b', '*'), { maxLength: 3 }), fc.constantFrom('a', '*', '>'))
      .map(([head, last]) => [...head, last].join('.'));
    fc.assert(
      fc.property(pattern, type, (candidate, eventType) => {
        const source = candidate
          .split('.')
          .map((part) => (part === '*' ? '[a-z]+' : part === '>' ? '[a-z]+(\\.[a-z]+)*' : part))
          .join('\\.');
        expect(matchesPattern(candidate, eventType)).toBe(new RegExp(`^${source}$`).test(eventType));
      }),
    );
  });
});

describe('pattern validation', () => {
  it('accepts types and wildcard patterns, rejects malformed ones', () => {
    for (const pattern of [
      'chat',
      'chat.message',
      'chat.*',
      'chat.>',
      '*.delta',
      '>',
      'user.status_changed',
    ]) {
      expect(() => assertPattern(pattern)).not.toThrow();
    }
    for (const pattern of [
      '',
      'chat.',
      '.chat',
      'chat..message',
      'chat.>.x',
      'chat.mess*',
      'Chat',
      'chat message',
    ]) {
      expect(() => assertPattern(pattern)).toThrow(ValidationError);
    }
  });

  it('rejects wildcards and capitals in event types', () => {
    expect(() => assertEventType('chat.message')).not.toThrow();
    for (const type of ['chat.*', 'chat.>', 'Chat.message', '', 'chat.']) {
      expect(() => assertEventType(type)).toThrow(ValidationError);
    }
  });

  it('tells wildcard patterns from exact ones', () => {
    expect(isWildcardPattern('chat.*')).toBe(true);
    expect(isWildcardPattern('chat.>')).toBe(true);
    expect(isWildcardPattern('chat.message')).toBe(false);
  });
});
