/**
 * The storage contract suite: every driver (memory, flatfile, and later redis and s3) runs it, so a module
 * behaves the same whichever backend config picks. A driver file calls `describeStorageContract` with a
 * factory that returns a fresh, empty storage each time.
 */

import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { isPlatformError } from '../../src/core/errors.ts';
import { appendJsonLine, readJsonLines } from '../../src/storage/json-lines.ts';
import { readFrom } from '../../src/storage/read-from.ts';
import { sizeOf } from '../../src/storage/size-of.ts';
import type { Storage } from '../../src/storage/types.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

function text(value: Uint8Array | undefined): string | undefined {
  return value === undefined ? undefined : decoder.decode(value);
}

/** Keys every driver must reject, with why. */
export const INVALID_KEYS: readonly string[] = [
  '',
  '/etc/passwd',
  '..',
  '../outside.json',
  'a/../../outside.json',
  'a/..',
  './a.json',
  'a/./b.json',
  'a//b.json',
  'a/',
  'a\\b.json',
  '..\\outside.json',
  'a\0b.json',
  'a/.parley-tmp-1234',
  'a/b.json.parley-tmp-append.1234',
];

/** Prefixes every driver must reject in `list`. */
export const INVALID_PREFIXES: readonly string[] = [
  '/',
  '/etc/',
  '../',
  '..',
  'a/../',
  'a//',
  'a\\',
  'a\0',
  './',
];

async function expectInvalidKey(operation: Promise<unknown>, key: string): Promise<void> {
  const error = await operation.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(isPlatformError(error, 'CHAT_ERR_STORAGE_INVALID_KEY'), `key ${JSON.stringify(key)}`).toBe(true);
  expect((error as { details?: { key?: unknown } }).details?.key).toBe(key);
}

/**
 * Registers the contract tests for one driver. `makeStorage` returns a fresh, empty storage; `cleanup`
 * (default: `close()`) disposes of it after each test.
 */
export function describeStorageContract(
  name: string,
  makeStorage: () => Promise<Storage>,
  cleanup: (storage: Storage) => Promise<void> = (storage) => storage.close(),
): void {
  describe(`storage contract: ${name}`, () => {
    const opened: Storage[] = [];

    async function fresh(): Promise<Storage> {
      const storage = await makeStorage();
      opened.push(storage);
      return storage;
    }

    afterEach(async () => {
      for (const storage of opened.splice(0)) await cleanup(storage);
    });

    describe('the five operations and append', () => {
      it('reads nothing from a key never written', async () => {
        const storage = await fresh();
        expect(await storage.read('sessions/u1/s1/metadata.json')).toBeUndefined();
        expect(await storage.exists('sessions/u1/s1/metadata.json')).toBe(false);
      });

      it('reads back exactly the bytes written, as a Uint8Array', async () => {
        const storage = await fresh();
        const everyByte = Uint8Array.from({ length: 256 }, (_, index) => index);
        expect(await storage.write('blobs/all-bytes.bin', everyByte)).toBe(true);
        const read = await storage.read('blobs/all-bytes.bin');
        expect(read).toBeInstanceOf(Uint8Array);
        expect([...(read ?? [])]).toEqual([...everyByte]);
        expect(await storage.exists('blobs/all-bytes.bin')).toBe(true);
      });

      it('stores an empty value as present and empty', async () => {
        const storage = await fresh();
        await storage.write('empty.txt', new Uint8Array());
        expect((await storage.read('empty.txt'))?.length).toBe(0);
        expect(await storage.exists('empty.txt')).toBe(true);
      });

      it('replaces the whole value on overwrite', async () => {
        const storage = await fresh();
        await storage.write('doc.txt', bytes('a much longer first value'));
        await storage.write('doc.txt', bytes('short'));
        expect(text(await storage.read('doc.txt'))).toBe('short');
      });

      it('reads back a write made with durable: false, as any other', async () => {
        const storage = await fresh();
        expect(await storage.write('touched.json', bytes('{"v":1}'), { durable: false })).toBe(true);
        await storage.write('touched.json', bytes('{"v":2}'), { durable: false });
        expect(text(await storage.read('touched.json'))).toBe('{"v":2}');
      });

      it('keeps its own copy of the bytes, on write and on read', async () => {
        const storage = await fresh();
        const input = bytes('original');
        await storage.write('copy.txt', input);
        input.fill(0x21);
        const first = await storage.read('copy.txt');
        first?.fill(0x3f);
        expect(text(await storage.read('copy.txt'))).toBe('original');
      });

      it('accepts keys with Unicode, spaces and dots in names', async () => {
        const storage = await fresh();
        const key = 'users/zoë ñ/.profile.v2.json';
        await storage.write(key, bytes('{}'));
        expect(text(await storage.read(key))).toBe('{}');
        expect(await storage.list('users/')).toEqual([key]);
      });

      it('deletes a key: true once, then false, and it is gone everywhere', async () => {
        const storage = await fresh();
        await storage.write('a/x.json', bytes('1'));
        expect(await storage.delete('a/x.json')).toBe(true);
        expect(await storage.delete('a/x.json')).toBe(false);
        expect(await storage.read('a/x.json')).toBeUndefined();
        expect(await storage.exists('a/x.json')).toBe(false);
        expect(await storage.list('')).toEqual([]);
      });

      it('returns false when deleting a key that never existed', async () => {
        const storage = await fresh();
        expect(await storage.delete('never/was.json')).toBe(false);
      });

      it('append creates the key, then adds to its end', async () => {
        const storage = await fresh();
        await storage.append('logs/events.log', bytes('one '));
        await storage.append('logs/events.log', bytes('two '));
        expect(text(await storage.read('logs/events.log'))).toBe('one two ');
        await storage.write('logs/events.log', bytes('fresh '));
        await storage.append('logs/events.log', bytes('three'));
        expect(text(await storage.read('logs/events.log'))).toBe('fresh three');
      });

      it('keeps only whole lines in a .jsonl key: partial lines are rejected and nothing is stored', async () => {
        const storage = await fresh();
        await appendJsonLine(storage, 'logs/messages.jsonl', { n: 1 });
        for (const operation of [
          storage.append('logs/messages.jsonl', bytes('{"n":2}')),
          storage.append('logs/messages.jsonl', new Uint8Array()),
          storage.write('logs/messages.jsonl', bytes('{"n":3}')),
        ]) {
          const error = await operation.then(
            () => undefined,
            (caught: unknown) => caught,
          );
          expect(isPlatformError(error, 'CHAT_ERR_VALIDATION_INVALID')).toBe(true);
        }
        expect(text(await storage.read('logs/messages.jsonl'))).toBe('{"n":1}\n');
        expect(await readJsonLines(storage, 'logs/messages.jsonl')).toEqual([{ n: 1 }]);
      });

      it('answers a folder name as "no value here"', async () => {
        const storage = await fresh();
        await storage.write('a/b/c.json', bytes('1'));
        expect(await storage.read('a/b')).toBeUndefined();
        expect(await storage.exists('a/b')).toBe(false);
        expect(await storage.delete('a/b')).toBe(false);
        expect(await storage.exists('a/b/c.json')).toBe(true);
      });

      it('keeps one whole value when writes to one key race', async () => {
        const storage = await fresh();
        const values = Array.from({ length: 20 }, (_, index) => `${index}:${'v'.repeat(1000 + index)}`);
        await Promise.all(values.map((value) => storage.write('race.txt', bytes(value))));
        expect(values).toContain(text(await storage.read('race.txt')));
      });

      it('flushes pending appends on close, then refuses work', async () => {
        const storage = await fresh();
        const settled: boolean[] = [];
        const appends = Array.from({ length: 50 }, (_, index) =>
          appendJsonLine(storage, 'logs/closing.jsonl', { index }).then(() => settled.push(true)),
        );
        await storage.close();
        expect(settled.length).toBe(50);
        await Promise.all(appends);
        await expect(storage.read('logs/closing.jsonl')).rejects.toMatchObject({
          code: 'CHAT_ERR_STORAGE_UNAVAILABLE',
        });
        await expect(storage.write('after.json', bytes('1'))).rejects.toMatchObject({
          code: 'CHAT_ERR_STORAGE_UNAVAILABLE',
        });
        await storage.close();
      });
    });

    // sizeOf() is the storage's own size where it has one (memory, flatfile, redis), else a read's length:
    // the storage quota counts a user's bytes with it after a start.
    describe('size', () => {
      it('is the length read gives: after a write, appends, a rewrite; undefined when missing or deleted', async () => {
        const storage = await fresh();
        expect(await sizeOf(storage, 'logs/none.jsonl')).toBeUndefined();
        await storage.write('empty.txt', new Uint8Array());
        expect(await sizeOf(storage, 'empty.txt')).toBe(0);
        await storage.write('logs/chat.jsonl', bytes('{"t":"héllo"}\n'));
        await storage.append('logs/chat.jsonl', bytes('{"t":"日本"}\n'));
        await storage.append('logs/chat.jsonl', bytes('{"t":"😀"}\n'));
        const whole = await storage.read('logs/chat.jsonl');
        expect(await sizeOf(storage, 'logs/chat.jsonl')).toBe(whole?.length);
        await storage.write('logs/chat.jsonl', bytes('{}\n'));
        expect(await sizeOf(storage, 'logs/chat.jsonl')).toBe(3);
        await storage.delete('logs/chat.jsonl');
        expect(await sizeOf(storage, 'logs/chat.jsonl')).toBeUndefined();
        // A folder of other keys is not a value.
        await storage.write('folder/inside.json', bytes('{}'));
        expect(await sizeOf(storage, 'folder')).toBeUndefined();
      });
    });

    // readFrom() is the storage's own readFrom where it has one (redis, s3, memory, the read cache), else a
    // cut read: a reader following a log (text_chat's history) asks only for the bytes after what it has.
    describe('readFrom', () => {
      it("gives undefined for a key never written or deleted, and empty bytes past a value's end", async () => {
        const storage = await fresh();
        expect(await readFrom(storage, 'logs/none.jsonl', 0)).toBeUndefined();
        await storage.write('empty.txt', new Uint8Array());
        expect((await readFrom(storage, 'empty.txt', 0))?.length).toBe(0);
        expect((await readFrom(storage, 'empty.txt', 3))?.length).toBe(0);
        await storage.append('logs/gone.jsonl', bytes('{"a":1}\n'));
        await storage.delete('logs/gone.jsonl');
        expect(await readFrom(storage, 'logs/gone.jsonl', 0)).toBeUndefined();
      });

      it('gives the exact bytes from every offset of a value written and appended to, even mid-character', async () => {
        const storage = await fresh();
        await storage.write('logs/chat.jsonl', bytes('{"t":"héllo"}\n'));
        await storage.append('logs/chat.jsonl', bytes('{"t":"日本"}\n'));
        await storage.append('logs/chat.jsonl', bytes('{"t":"😀"}\n'));
        const whole = (await storage.read('logs/chat.jsonl')) ?? new Uint8Array();
        for (let offset = 0; offset <= whole.length + 2; offset++) {
          const tail = await readFrom(storage, 'logs/chat.jsonl', offset);
          expect(tail, `offset ${offset}`).toBeInstanceOf(Uint8Array);
          expect([...(tail ?? [])], `offset ${offset}`).toEqual([...whole.subarray(offset)]);
        }
      });

      it('gives a follower only what was appended since, as bytes of its own', async () => {
        const storage = await fresh();
        await storage.append('logs/follow.jsonl', bytes('{"n":1}\n'));
        const known = (await readFrom(storage, 'logs/follow.jsonl', 0))?.length ?? 0;
        await storage.append('logs/follow.jsonl', bytes('{"n":2}\n'));
        const news = await readFrom(storage, 'logs/follow.jsonl', known);
        expect(text(news)).toBe('{"n":2}\n');
        news?.fill(0);
        expect(text(await storage.read('logs/follow.jsonl'))).toBe('{"n":1}\n{"n":2}\n');
      });

      it('refuses an offset that is not a whole number of bytes, 0 or more', async () => {
        const storage = await fresh();
        await storage.write('a.txt', bytes('abc'));
        for (const offset of [-1, 1.5, Number.NaN]) {
          await expect(readFrom(storage, 'a.txt', offset)).rejects.toThrow(RangeError);
          if (storage.readFrom !== undefined) {
            await expect(storage.readFrom('a.txt', offset)).rejects.toThrow(RangeError);
          }
        }
      });
    });

    describe('list', () => {
      const keys = ['b/z.json', 'a/x.json', 'ab.json', 'a/b/y.json', 'a/b/c/deep.jsonl', 'abc/q.json'];

      async function populated(): Promise<Storage> {
        const storage = await fresh();
        for (const key of keys) await storage.write(key, bytes('1\n'));
        return storage;
      }

      it('lists every key, sorted, for the empty prefix', async () => {
        const storage = await populated();
        expect(await storage.list('')).toEqual([...keys].sort());
      });

      it('lists a folder recursively, with full keys, and nothing beside it', async () => {
        const storage = await populated();
        expect(await storage.list('a/')).toEqual(['a/b/c/deep.jsonl', 'a/b/y.json', 'a/x.json']);
        expect(await storage.list('a/b/')).toEqual(['a/b/c/deep.jsonl', 'a/b/y.json']);
      });

      it('treats a prefix without a trailing slash as a plain string prefix', async () => {
        const storage = await populated();
        expect(await storage.list('a')).toEqual([
          'a/b/c/deep.jsonl',
          'a/b/y.json',
          'a/x.json',
          'ab.json',
          'abc/q.json',
        ]);
        expect(await storage.list('ab')).toEqual(['ab.json', 'abc/q.json']);
        expect(await storage.list('a/x')).toEqual(['a/x.json']);
        expect(await storage.list('a/b/y.json')).toEqual(['a/b/y.json']);
      });

      it('returns an empty list for a folder that does not exist', async () => {
        const storage = await populated();
        expect(await storage.list('nothing/')).toEqual([]);
        expect(await storage.list('zzz')).toEqual([]);
        expect(await storage.list('a/x.json/')).toEqual([]);
      });

      it('excludes deleted keys', async () => {
        const storage = await populated();
        await storage.delete('a/x.json');
        await storage.delete('a/b/c/deep.jsonl');
        expect(await storage.list('a/')).toEqual(['a/b/y.json']);
      });

      it('includes keys created by append', async () => {
        const storage = await fresh();
        await appendJsonLine(storage, 'logs/2.jsonl', { n: 1 });
        await appendJsonLine(storage, 'logs/1.jsonl', { n: 1 });
        expect(await storage.list('logs/')).toEqual(['logs/1.jsonl', 'logs/2.jsonl']);
      });
    });

    describe('invalid keys', () => {
      it('rejects every invalid key on every operation, naming the key', async () => {
        const storage = await fresh();
        for (const key of INVALID_KEYS) {
          await expectInvalidKey(storage.read(key), key);
          await expectInvalidKey(storage.write(key, bytes('x\n')), key);
          await expectInvalidKey(storage.delete(key), key);
          await expectInvalidKey(storage.exists(key), key);
          await expectInvalidKey(storage.append(key, bytes('x\n')), key);
        }
        expect(await storage.list('')).toEqual([]);
      });

      it('rejects invalid list prefixes, naming the prefix', async () => {
        const storage = await fresh();
        for (const prefix of INVALID_PREFIXES) await expectInvalidKey(storage.list(prefix), prefix);
      });
    });

    describe('against a model', () => {
      const modelKeys = ['a/x.json', 'a/log.jsonl', 'a/b/y.bin', 'ab.txt', 'b/c/d/e.jsonl'] as const;
      const prefixes = ['', 'a', 'a/', 'a/b/', 'b/', 'x/', 'a/l'];

      const dataFor = (key: string) =>
        key.endsWith('.jsonl')
          ? fc.string({ maxLength: 20 }).map((line) => bytes(`${line.replaceAll('\n', ' ')}\n`))
          : fc.uint8Array({ maxLength: 40 });
      const operation = fc.constantFrom(...modelKeys).chain((key) =>
        fc.oneof(
          dataFor(key).map((data) => ({ kind: 'write' as const, key, data })),
          dataFor(key).map((data) => ({ kind: 'append' as const, key, data })),
          fc.constant({ kind: 'delete' as const, key, data: new Uint8Array() }),
        ),
      );

      it('matches a plain Map after any sequence of write, append and delete', async () => {
        await fc.assert(
          fc.asyncProperty(fc.array(operation, { maxLength: 25 }), async (operations) => {
            const storage = await makeStorage();
            try {
              const model = new Map<string, Uint8Array>();
              for (const { kind, key, data } of operations) {
                if (kind === 'write') {
                  expect(await storage.write(key, data)).toBe(true);
                  model.set(key, data);
                } else if (kind === 'append') {
                  await storage.append(key, data);
                  model.set(key, new Uint8Array([...(model.get(key) ?? []), ...data]));
                } else {
                  expect(await storage.delete(key)).toBe(model.delete(key));
                }
              }
              for (const key of modelKeys) {
                const expected = model.get(key);
                const actual = await storage.read(key);
                expect(actual === undefined ? undefined : [...actual], key).toEqual(
                  expected === undefined ? undefined : [...expected],
                );
                expect(await storage.exists(key)).toBe(model.has(key));
              }
              for (const prefix of prefixes) {
                const expected = [...model.keys()].filter((key) => key.startsWith(prefix)).sort();
                expect(await storage.list(prefix), `list(${JSON.stringify(prefix)})`).toEqual(expected);
              }
            } finally {
              await cleanup(storage);
            }
          }),
          { numRuns: 50 },
        );
      });
    });

    describe('concurrent appends', () => {
      it('keeps all 1,000 concurrent JSON-line appends to one key whole and parseable', async () => {
        const storage = await fresh();
        const key = 'sessions/u1/s1/messages.jsonl';
        const count = 1000;
        await Promise.all(
          Array.from({ length: count }, (_, index) =>
            appendJsonLine(storage, key, { index, text: `message ${index} ${'x'.repeat(index % 97)}` }),
          ),
        );
        const raw = text(await storage.read(key)) ?? '';
        expect(raw.endsWith('\n')).toBe(true);
        const lines = raw.slice(0, -1).split('\n');
        expect(lines).toHaveLength(count);
        const seen = new Set<number>();
        for (const line of lines) {
          const value = JSON.parse(line) as { index: number; text: string };
          expect(value.text).toBe(`message ${value.index} ${'x'.repeat(value.index % 97)}`);
          seen.add(value.index);
        }
        expect(seen.size).toBe(count);
        expect(await readJsonLines(storage, key)).toHaveLength(count);
      });
    });
  });
}
