import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheStorage } from './cached.ts';
import { createFlatfileStorage } from './drivers/flatfile.ts';
import { createMemoryStorage } from './drivers/memory.ts';
import { readFrom } from './read-from.ts';
import { scopeStorage } from './scoped.ts';
import type { Storage } from './types.ts';

const encoder = new TextEncoder();
const text = (value: Uint8Array | undefined) =>
  value === undefined ? undefined : new TextDecoder().decode(value);

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'parley-read-from-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const storages: Array<[string, () => Storage]> = [
  ['memory (its own readFrom)', () => createMemoryStorage()],
  ['flatfile (read, then cut)', () => createFlatfileStorage({ root: join(root, String(Math.random())) })],
  ['cached(memory)', () => cacheStorage(createMemoryStorage(), { ttlMs: 60_000, maxEntries: 10 })],
  [
    'scoped(cached(memory))',
    () => scopeStorage(cacheStorage(createMemoryStorage(), { ttlMs: 60_000, maxEntries: 10 }), 'mod'),
  ],
];

describe.each(storages)('readFrom on %s', (_name, make) => {
  it('gives the bytes from the offset on, empty past the end, undefined for a missing key', async () => {
    const storage = make();
    await storage.append('log.jsonl', encoder.encode('{"n":1}\n'));
    await storage.read('log.jsonl'); // a cache holds it from here on
    await storage.append('log.jsonl', encoder.encode('{"n":2}\n'));
    expect(text(await readFrom(storage, 'log.jsonl', 0))).toBe('{"n":1}\n{"n":2}\n');
    expect(text(await readFrom(storage, 'log.jsonl', 8))).toBe('{"n":2}\n');
    expect(text(await readFrom(storage, 'log.jsonl', 16))).toBe('');
    expect(text(await readFrom(storage, 'log.jsonl', 99))).toBe('');
    expect(await readFrom(storage, 'missing.jsonl', 0)).toBeUndefined();
    // The caller's own copy: changing it changes nothing stored.
    (await readFrom(storage, 'log.jsonl', 8))?.fill(0x21);
    expect(text(await readFrom(storage, 'log.jsonl', 8))).toBe('{"n":2}\n');
    await storage.close();
  });
});
