import { describe, expect, it } from 'vitest';
import { cacheStorage } from './cached.ts';
import { createMemoryStorage } from './drivers/memory.ts';
import { NOT_HELD, peek } from './peek.ts';
import { scopeStorage } from './scoped.ts';
import type { Storage } from './types.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text: string) => encoder.encode(text);
const text = (value: Uint8Array | undefined) => (value === undefined ? undefined : decoder.decode(value));

/** A memory storage that counts the reads that reach it (`readFrom`s apart, with the bytes they gave). */
function countingStorage(): Storage & {
  reads: () => number;
  tailReads: () => number;
  tailBytes: () => number;
} {
  const inner = createMemoryStorage();
  let reads = 0;
  let tailReads = 0;
  let tailBytes = 0;
  return {
    ...inner,
    read(key) {
      reads += 1;
      return inner.read(key);
    },
    async readFrom(key, offset) {
      tailReads += 1;
      const tail = await inner.readFrom?.(key, offset);
      tailBytes += tail?.length ?? 0;
      return tail;
    },
    reads: () => reads,
    tailReads: () => tailReads,
    tailBytes: () => tailBytes,
  };
}

/** A memory storage whose changes each wait for their gate (in `gates`, in call order) before they apply. */
function gatedStorage(): Storage & { gates: PromiseWithResolvers<void>[]; failNext: () => void } {
  const inner = createMemoryStorage();
  const gates: PromiseWithResolvers<void>[] = [];
  let failNext = false;
  const gated =
    <A extends unknown[], R>(change: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const gate = Promise.withResolvers<void>();
      gates.push(gate);
      const fail = failNext;
      failNext = false;
      await gate.promise;
      if (fail) throw new Error('disk full');
      return change(...args);
    };
  return {
    ...inner,
    append: gated((key: string, data: Uint8Array) => inner.append(key, data)),
    write: gated((key: string, data: Uint8Array) => inner.write(key, data)),
    gates,
    failNext: () => {
      failNext = true;
    },
  };
}

/** A read cache over a gated storage, with `key` written through it first (its gate opened). */
async function gatedCacheHolding(key: string, value: string) {
  const backing = gatedStorage();
  const cached = cacheStorage(backing, { ttlMs: 60_000, maxEntries: 10 });
  const written = cached.write(key, bytes(value));
  backing.gates[0]?.resolve();
  await written;
  return { backing, cached };
}

/** Lets the changes called so far reach their gates. */
const reachGates = () => new Promise((resolve) => setImmediate(resolve));

function setup(options: { ttlMs?: number; maxEntries?: number; maxBytes?: number } = {}) {
  let clock = 1_000;
  const backing = countingStorage();
  const cached = cacheStorage(backing, {
    ttlMs: options.ttlMs ?? 1_000,
    maxEntries: options.maxEntries ?? 10,
    ...(options.maxBytes === undefined ? {} : { maxBytes: options.maxBytes }),
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

  it('keeps a key current through writes, appends and deletes made through it', async () => {
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

  it('serves a log it appended to without reading it back, keeping the expiry of the first read', async () => {
    const { backing, cached, advance } = setup({ ttlMs: 1_000 });
    await backing.append('chat.jsonl', bytes('{"n":1}\n'));
    expect(text(await cached.read('chat.jsonl'))).toBe('{"n":1}\n');
    for (let n = 2; n <= 4; n += 1) {
      await cached.append('chat.jsonl', bytes(`{"n":${n}}\n`));
      expect(text(await cached.read('chat.jsonl'))).toBe(text(await backing.read('chat.jsonl')));
    }
    expect(backing.reads()).toBe(4); // 1 through the cache, 3 by the test itself
    advance(1_000);
    await cached.read('chat.jsonl');
    expect(backing.reads()).toBe(5);
  });

  it('serves what it wrote, and a deleted key as missing, without asking the driver', async () => {
    const { backing, cached } = setup();
    const data = bytes('{"title":"a"}');
    await cached.write('meta.json', data);
    data.fill(0x21); // the caller reuses its buffer
    expect(text(await cached.read('meta.json'))).toBe('{"title":"a"}');
    expect(await cached.exists('meta.json')).toBe(true);
    await cached.delete('meta.json');
    expect(await cached.read('meta.json')).toBeUndefined();
    expect(backing.reads()).toBe(0);
    // A key not yet read: the first append makes it exactly the appended bytes.
    expect(await cached.read('new.jsonl')).toBeUndefined();
    await cached.append('new.jsonl', bytes('{"n":1}\n'));
    expect(text(await cached.read('new.jsonl'))).toBe('{"n":1}\n');
    expect(backing.reads()).toBe(1);
  });

  it('reads a log back after an append it cannot follow: a torn last line', async () => {
    const { backing } = setup();
    await backing.write('torn.jsonl', bytes('{"n":1}\n'));
    await backing.append('torn.jsonl', bytes('{"n":2}\n')); // whole lines; then a torn one, as after a crash
    const torn = { ...backing, read: async () => bytes('{"n":1}\n{"n":2') };
    const overTorn = cacheStorage(torn, { ttlMs: 1_000, maxEntries: 10 });
    await overTorn.read('torn.jsonl');
    await overTorn.append('torn.jsonl', bytes('{"n":3}\n'));
    expect(overTorn.stats().size).toBe(0);
  });

  it('follows appends under way together (turns of one chat at once), serving what the settled ones left', async () => {
    const backing = gatedStorage();
    const cached = cacheStorage(backing, { ttlMs: 60_000, maxEntries: 10 });
    await cached.read('log.jsonl');
    const appends = [1, 2, 3].map((n) => cached.append('log.jsonl', bytes(`{"n":${n}}\n`)));
    await reachGates();
    // Under way: what was there before them (an append not yet acknowledged need not be seen).
    expect(cached.peek?.('log.jsonl', 0)).toBeUndefined();
    backing.gates[0]?.resolve();
    await appends[0];
    expect(text(cached.peek?.('log.jsonl', 0) as Uint8Array)).toBe('{"n":1}\n');
    for (const gate of backing.gates) gate.resolve();
    await Promise.all(appends);
    expect(text(cached.peek?.('log.jsonl', 0) as Uint8Array)).toBe('{"n":1}\n{"n":2}\n{"n":3}\n');
    expect(cached.stats().misses).toBe(1);
  });

  it('forgets a key whose appends under way together settled out of order, or one of which failed', async () => {
    const { backing, cached } = await gatedCacheHolding('a.jsonl', '');
    const first = cached.append('a.jsonl', bytes('1\n'));
    const second = cached.append('a.jsonl', bytes('2\n'));
    await reachGates();
    backing.gates[2]?.resolve(); // the second settles first: the cache cannot tell what the key holds
    await second;
    backing.gates[1]?.resolve();
    await first;
    expect(cached.peek?.('a.jsonl', 0)).toBe(NOT_HELD);
    expect(text(await cached.read('a.jsonl'))).toBe('2\n1\n');

    backing.failNext();
    const failing = cached.append('a.jsonl', bytes('3\n'));
    const after = cached.append('a.jsonl', bytes('4\n'));
    await reachGates();
    for (const gate of backing.gates) gate.resolve();
    await expect(failing).rejects.toThrow('disk full');
    await after;
    expect(cached.peek?.('a.jsonl', 0)).toBe(NOT_HELD);
    expect(text(await cached.read('a.jsonl'))).toBe('2\n1\n4\n');
  });

  it('holds nothing of a key while a write is under way beside appends, and knows it once all settled', async () => {
    const { backing, cached } = await gatedCacheHolding('b.jsonl', '0\n');
    const appending = cached.append('b.jsonl', bytes('1\n'));
    const replacing = cached.write('b.jsonl', bytes('w\n'));
    const appendingAfter = cached.append('b.jsonl', bytes('2\n'));
    await reachGates();
    expect(cached.peek?.('b.jsonl', 0)).toBe(NOT_HELD);
    backing.gates[1]?.resolve();
    backing.gates[2]?.resolve();
    await Promise.all([appending, replacing]);
    expect(cached.peek?.('b.jsonl', 0)).toBe(NOT_HELD);
    backing.gates[3]?.resolve();
    await appendingAfter;
    expect(text(cached.peek?.('b.jsonl', 0) as Uint8Array)).toBe('w\n2\n');
    expect(cached.stats().misses).toBe(0);
  });

  it('leaves a key uncached after a change that failed', async () => {
    const backing = createMemoryStorage();
    const failing: Storage = { ...backing, append: async () => Promise.reject(new Error('disk full')) };
    const cached = cacheStorage(failing, { ttlMs: 60_000, maxEntries: 10 });
    await backing.write('k.log', bytes('1'));
    await cached.read('k.log');
    await expect(cached.append('k.log', bytes('2'))).rejects.toThrow('disk full');
    expect(cached.stats().size).toBe(0);
    expect(text(await cached.read('k.log'))).toBe('1');
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

  it("keeps its own copy of a Buffer written or appended, and never writes into the caller's memory", async () => {
    const { cached } = setup();
    // Buffer.slice() is a view, not a copy: a Buffer cut from shared memory (as Node's pool cuts small
    // ones) must neither change the cache when the memory is reused nor be written past its end.
    const shared = new Uint8Array(64);
    const first = Buffer.from(shared.buffer, 0, 8);
    first.write('{"n":1}\n');
    await cached.read('log.jsonl'); // cached as missing: the append makes it exactly these bytes
    await cached.append('log.jsonl', first);
    shared.fill(0x21, 0, 8);
    const second = Buffer.from(shared.buffer, 8, 8);
    second.write('{"n":2}\n');
    await cached.append('log.jsonl', second);
    expect(text(await cached.read('log.jsonl'))).toBe('{"n":1}\n{"n":2}\n');
    expect([...shared.subarray(16)].every((byte) => byte === 0)).toBe(true);
    const metadata = Buffer.from(shared.buffer, 32, 4);
    metadata.write('{"a"');
    await cached.write('meta.json', metadata);
    shared.fill(0x21, 32, 36);
    expect(text(await cached.read('meta.json'))).toBe('{"a"');
  });

  it('hands out copies, so a caller cannot change what others read', async () => {
    const { cached } = setup();
    await cached.write('k', bytes('same'));
    (await cached.read('k'))?.fill(0x21);
    (await cached.read('k'))?.fill(0x21);
    expect(text(await cached.read('k'))).toBe('same');
  });

  it('holds at most maxBytes of values, dropping the least recently used', async () => {
    const { backing, cached } = setup({ maxEntries: 100, maxBytes: 1_600 });
    for (const key of ['a', 'b', 'c', 'd', 'e']) await cached.write(key, new Uint8Array(100).fill(0x61));
    expect(cached.stats().bytes).toBe(500);
    await cached.read('a'); // a is now the most recently used
    for (const key of ['f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p', 'q']) {
      await cached.write(key, new Uint8Array(100));
    }
    expect(cached.stats().bytes).toBeLessThanOrEqual(1_600);
    expect(backing.reads()).toBe(0);
    await cached.read('a');
    expect(backing.reads()).toBe(0); // kept: used recently
    await cached.read('b');
    expect(backing.reads()).toBe(1); // dropped
  });

  it('keeps only the length and the last 4 KB of a value above maxBytes / 16, and follows a log by them', async () => {
    const { backing, cached } = setup({ maxBytes: 16_000 }); // values above 1,000 bytes: length only
    const line = `${JSON.stringify({ text: 'x'.repeat(90) })}\n`; // 103 bytes
    for (let n = 0; n < 60; n++) await cached.append('chat.jsonl', bytes(line));
    await cached.read('chat.jsonl'); // 6,180 bytes: held by length and last bytes only
    expect(cached.stats().bytes).toBe(4096);
    const end = line.length * 60;
    // A follower at the end, or checking the bytes just before it, is answered from memory.
    const reads = backing.reads();
    expect((await cached.readFrom?.('chat.jsonl', end))?.length).toBe(0);
    await cached.append('chat.jsonl', bytes('{"new":1}\n'));
    expect((await cached.readFrom?.('chat.jsonl', end + 10))?.length).toBe(0);
    expect(text(await cached.readFrom?.('chat.jsonl', end - 64))).toBe(`${line.slice(-64)}{"new":1}\n`);
    expect(backing.reads()).toBe(reads);
    expect(backing.tailReads()).toBe(0);
    // Further behind: the storage reads the tail, not the log.
    expect(text(await cached.readFrom?.('chat.jsonl', line.length * 10))).toBe(
      `${line.repeat(50)}{"new":1}\n`,
    );
    expect([backing.tailReads(), backing.tailBytes(), backing.reads()]).toEqual([
      1,
      line.length * 50 + 10,
      reads,
    ]);
    // A whole read goes to the storage.
    expect(text(await cached.read('chat.jsonl'))).toBe(`${line.repeat(60)}{"new":1}\n`);
    expect(backing.reads()).toBe(reads + 1);
  });

  it("learns a long log's length from a tail the storage read, unless it ends in a torn line", async () => {
    const { backing, cached } = setup({ maxBytes: 1_600 });
    await backing.append('log.jsonl', bytes('{"n":1}\n{"n":2}\n'));
    expect(text(await cached.readFrom?.('log.jsonl', 8))).toBe('{"n":2}\n');
    expect((await cached.readFrom?.('log.jsonl', 16))?.length).toBe(0);
    expect(text(await cached.readFrom?.('log.jsonl', 12))).toBe(':2}\n');
    expect(backing.tailReads()).toBe(1); // the others were answered by what the first one taught
    // A log whose last line was torn by a crash (the driver cuts it off before the next append).
    let tornReads = 0;
    const torn = cacheStorage(
      {
        ...createMemoryStorage(),
        readFrom: async () => {
          tornReads += 1;
          return bytes('{"n":2');
        },
      },
      { ttlMs: 1_000, maxEntries: 10, maxBytes: 1_600 },
    );
    await torn.readFrom?.('torn.jsonl', 8);
    await torn.readFrom?.('torn.jsonl', 14);
    expect(tornReads).toBe(2);
  });

  it('counts hits and misses', async () => {
    const { cached } = setup();
    await cached.read('x');
    await cached.read('x');
    await cached.read('x');
    expect(cached.stats()).toMatchObject({ hits: 2, misses: 1, size: 1 });
  });

  describe('peek', () => {
    it('tells at once what a read would give once the cache holds it, and NOT_HELD before', async () => {
      const { backing, cached, advance } = setup({ ttlMs: 1_000 });
      await backing.write('a.json', bytes('v1'));
      expect(cached.peek?.('a.json', 0)).toBe(NOT_HELD);
      expect(cached.peek?.('missing.json', 0)).toBe(NOT_HELD);
      await cached.read('a.json');
      await cached.read('missing.json');
      const first = cached.peek?.('a.json', 0);
      expect(text(first as Uint8Array)).toBe('v1');
      // The same bytes object until the value changes: a caller may keep what it parsed by it.
      expect(cached.peek?.('a.json', 0)).toBe(first);
      expect(text(cached.peek?.('a.json', 1) as Uint8Array)).toBe('1');
      expect(cached.peek?.('missing.json', 0)).toBeUndefined();
      expect(backing.reads()).toBe(2);
      // Expired: only the storage can tell (another node may have changed it).
      advance(1_000);
      expect(cached.peek?.('a.json', 0)).toBe(NOT_HELD);
    });

    it('follows changes made through the cache: during an append, what was there before it', async () => {
      const { cached } = setup();
      await cached.write('log.jsonl', bytes('{"n":1}\n'));
      const appending = cached.append('log.jsonl', bytes('{"n":2}\n'));
      expect(text(cached.peek?.('log.jsonl', 0) as Uint8Array)).toBe('{"n":1}\n');
      await appending;
      expect(text(cached.peek?.('log.jsonl', 8) as Uint8Array)).toBe('{"n":2}\n');
      await cached.delete('log.jsonl');
      expect(cached.peek?.('log.jsonl', 0)).toBeUndefined();
    });

    it("answers a long log's end from the last bytes kept, and NOT_HELD before them", async () => {
      const { cached } = setup({ maxBytes: 16_000 }); // values above 1,000 bytes: length only
      const line = `${JSON.stringify({ text: 'x'.repeat(90) })}\n`; // 103 bytes
      for (let n = 0; n < 60; n++) await cached.append('chat.jsonl', bytes(line));
      await cached.read('chat.jsonl');
      const end = line.length * 60;
      expect(text(cached.peek?.('chat.jsonl', end - 64) as Uint8Array)).toBe(line.slice(-64));
      expect(peek(cached, 'chat.jsonl', end)).toEqual(new Uint8Array(0));
      expect(cached.peek?.('chat.jsonl', 0)).toBe(NOT_HELD);
    });

    it('holds a log past 64 KB by its length and last bytes, whatever room the cache has, and follows it', async () => {
      const { backing, cached } = setup(); // 64 MB: any other value up to 4 MB is held whole
      const line = `${JSON.stringify({ text: 'y'.repeat(1000) })}\n`; // 1,013 bytes
      for (let n = 0; n < 70; n++) await cached.append('chat.jsonl', bytes(line));
      await cached.read('chat.jsonl');
      for (let n = 0; n < 10; n++) await cached.append('chat.jsonl', bytes(line));
      const end = line.length * 80;
      // The new tail is answered from memory; the start of the log is not held.
      expect(text(cached.peek?.('chat.jsonl', end - line.length) as Uint8Array)).toBe(line);
      expect(cached.peek?.('chat.jsonl', 0)).toBe(NOT_HELD);
      expect(cached.stats().bytes).toBeLessThanOrEqual(4096);
      // A whole read goes to the storage, and gets every line.
      const readsBefore = backing.reads();
      expect(text(await cached.read('chat.jsonl'))?.length).toBe(end);
      expect(backing.reads()).toBe(readsBefore + 1);
    });

    it('is answered by a scoped view under its root, and by nothing it refuses', async () => {
      const { cached } = setup();
      const view = scopeStorage(cached, 'mod');
      await view.write('a.json', bytes('v1'));
      expect(text(peek(view, 'a.json') as Uint8Array)).toBe('v1');
      expect(text(peek(cached, 'mod/a.json') as Uint8Array)).toBe('v1');
      expect(peek(view, '../a.json')).toBe(NOT_HELD);
      await view.close();
      expect(peek(view, 'a.json')).toBe(NOT_HELD);
      // A storage without a cache holds nothing.
      expect(peek(createMemoryStorage(), 'a.json')).toBe(NOT_HELD);
    });
  });
});
