import { describe, expect, it } from 'vitest';
import { isPlatformError } from '../core/errors.ts';
import { createMemoryStorage } from './drivers/memory.ts';
import {
  appendJsonLine,
  assertWholeLines,
  encodeJsonLine,
  encodeJsonLines,
  parseJsonLines,
  readJsonLines,
} from './json-lines.ts';

const encoder = new TextEncoder();
const bytes = (text: string) => encoder.encode(text);

describe('parseJsonLines', () => {
  it('parses every whole line', () => {
    expect(parseJsonLines(bytes('{"a":1}\n[2]\n"three"\n'))).toEqual([{ a: 1 }, [2], 'three']);
  });

  it('drops an unterminated last line: a torn write, even when it happens to parse', () => {
    expect(parseJsonLines(bytes('{"n":1}\n{"n":2'))).toEqual([{ n: 1 }]);
    // "12" could be a torn "123": never return a truncated value.
    expect(parseJsonLines(bytes('{"n":1}\n12'))).toEqual([{ n: 1 }]);
    expect(parseJsonLines(bytes('{"n":'))).toEqual([]);
  });

  it('drops a last line torn inside a multi-byte character', () => {
    const whole = bytes('{"n":1}\n{"text":"zoë"}\n');
    expect(parseJsonLines(whole.subarray(0, whole.length - 4))).toEqual([{ n: 1 }]);
  });

  it('skips blank lines', () => {
    expect(parseJsonLines(bytes('\n{"n":1}\n\n  \n{"n":2}\n'))).toEqual([{ n: 1 }, { n: 2 }]);
  });

  it('throws on a corrupt whole line, naming the key and the line number', () => {
    try {
      parseJsonLines(bytes('{"n":1}\n{"n":\n{"n":3}\n'), 'logs/a.jsonl');
      expect.unreachable();
    } catch (error) {
      expect(isPlatformError(error, 'CHAT_ERR_STORAGE_FAILED')).toBe(true);
      expect((error as { details: unknown }).details).toEqual({ key: 'logs/a.jsonl', line: 2 });
    }
  });
});

describe('readJsonLines and appendJsonLine', () => {
  it('round-trips values through a storage, and reads [] for a missing key', async () => {
    const storage = createMemoryStorage();
    expect(await readJsonLines(storage, 'log.jsonl')).toEqual([]);
    await appendJsonLine(storage, 'log.jsonl', { text: 'line\nbreak' });
    await appendJsonLine(storage, 'log.jsonl', 7);
    expect(await readJsonLines(storage, 'log.jsonl')).toEqual([{ text: 'line\nbreak' }, 7]);
  });

  it('refuses a value with no JSON form', () => {
    expect(() => encodeJsonLine(undefined)).toThrow(/JSON-serialisable/);
  });
});

describe('encodeJsonLines', () => {
  it('writes the lines encodeJsonLine writes one by one, in one buffer, and refuses what JSON cannot say', () => {
    const values = [
      { id: 'a', content: 'héllo ✓' },
      { id: 'b', content: 'line\nbreak' },
    ];
    const together = encodeJsonLines(values);
    expect(Buffer.from(together).toString('utf8')).toBe(
      values.map((value) => Buffer.from(encodeJsonLine(value)).toString('utf8')).join(''),
    );
    expect(parseJsonLines(together, 'k')).toEqual(values);
    expect(() => encodeJsonLines([{ ok: true }, undefined])).toThrow(/JSON-serialisable/);
  });
});

describe('assertWholeLines', () => {
  it('applies only to .jsonl keys', () => {
    expect(() => assertWholeLines('log.txt', bytes('partial'), 'append')).not.toThrow();
    expect(() => assertWholeLines('log.jsonl', bytes('partial'), 'append')).toThrow(/whole lines/);
    expect(() => assertWholeLines('log.jsonl', bytes(''), 'append')).toThrow(/whole lines/);
    expect(() => assertWholeLines('log.jsonl', bytes(''), 'write')).not.toThrow();
    expect(() => assertWholeLines('log.jsonl', bytes('{}\n'), 'write')).not.toThrow();
  });
});
