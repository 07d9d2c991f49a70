import { describe, expect, it } from 'vitest';
import { cacheStorage } from './cached.ts';
import { createMemoryStorage } from './drivers/memory.ts';
import type { Storage } from './types.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text: string) => encoder.encode(text);
const text = (value: Uint8Array | undefined) => (value === undefined ? undefined : decoder.decode(value));

/** A memory storage that counts the reads that reach it. */
function countingStorage(): Storage & { reads: () => number } {
  const inner = createMemoryStorage();
  let reads = 0;
  return {
    ...inner,
    read(key) {
      reads += 1;
      return inner.read(key);
    },
    reads: () => reads,
  };
}

function setup(options: { ttlMs?: number; maxEntries?: number } = {}) {
  let clock = 1_000;
  const backing = countingStorage();
  const cached = cacheStorage(backing, {
    ttlMs: options.ttlMs ?? 1_000,
    maxEntries: options.maxEntries ?? 10,
    now: () => clock,
  });
  return { backing, cached, advance: (ms: number) => (clock += ms) };
}

describe('cacheStorage', () => {
  it('serves repeated reads from memory until the TTL passes', async () => {
    const { backing, cached, advance } = setup({ ttlMs: 1_000 });
    await backing.write('a.json', bytes('v1'));
    expect(text(await cached.read('a.json'))).toBe('v1');
    await backing.write('a.json', bytes('v2')); // behind the cache's back, as another node would
    advance(999);
    expect(text(await cached.read('a.json'))).toBe('v1');
    expect(backing.reads()).toBe(1);
    advance(1);
    expect(text(await cached.read('a.json'))).toBe('v2');
    expect(backing.reads()).toBe(2);
  });

  it('caches misses too, and answers exists from the cache', async () => {
    const { backing, cached } = setup();
    expect(await cached.read('missing.json')).toBeUndefined();
    expect(await cached.read('missing.json')).toBeUndefined();
    expect(await cached.exists('missing.json')).toBe(false);
    expect(backing.reads()).toBe(1);
  });

  it('evicts the least recently used entry beyond maxEntries', async () => {
    const { backing, cached } = setup({ maxEntries: 2 });
    for (const key of ['a', 'b', 'c']) await backing.write(key, bytes(key));
    await cached.read('a');
    await cached.read('b');
    await cached.read('a'); // a is now more recent than b
    await cached.read('c'); // evicts b
    expect(backing.reads()).toBe(3);
    await cached.read('a');
    await cached.read('c');
    expect(backing.reads()).toBe(3);
    await cached.read('b');
    expect(backing.reads()).toBe(4);
    expect(cached.stats()).toMatchObject({ evictions: 2, size: 2 });
  });

  it('invalidates a key on write, append and delete through it', async () => {
    const { cached } = setup();
    await cached.write('k.log', bytes('1'));
    expect(text(await cached.read('k.log'))).toBe('1');
    await cached.write('k.log', bytes('2'));
    expect(text(await cached.read('k.log'))).toBe('2');
    await cached.append('k.log', bytes('3'));
    expect(text(await cached.read('k.log'))).toBe('23');
    await cached.delete('k.log');
    expect(await cached.read('k.log')).toBeUndefined();
    expect(await cached.exists('k.log')).toBe(false);
  });

  it('does not cache a value read while a write to the same key was under way', async () => {
    const backing = createMemoryStorage();
    const gate = Promise.withResolvers<void>();
    const slowReads: Storage = {
      ...backing,
      async read(key) {
        const value = await backing.read(key);
        await gate.promise; // the read saw the old value but has not returned yet
        return value;
      },
    };
    const cached = cacheStorage(slowReads, { ttlMs: 60_000, maxEntries: 10 });
    await backing.write('k', bytes('old'));
    const read = cached.read('k');
    await new Promise((resolve) => setImmediate(resolve));
    await cached.write('k', bytes('new'));
    gate.resolve();
    expect(text(await read)).toBe('old');
    expect(text(await cached.read('k'))).toBe('new');
  });

  it('hands out copies, so a caller cannot change what others read', async () => {
    const { cached } = setup();
    await cached.write('k', bytes('same'));
    (await cached.read('k'))?.fill(0x21);
    (await cached.read('k'))?.fill(0x21);
    expect(text(await cached.read('k'))).toBe('same');
  });

  it('counts hits and misses', async () => {
    const { cached } = setup();
    await cached.read('x');
    await cached.read('x');
    await cached.read('x');
    expect(cached.stats()).toMatchObject({ hits: 2, misses: 1, size: 1 });
  });
});
