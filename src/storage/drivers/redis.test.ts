/**
 * What the Redis driver adds to the contract (test/contracts/storage-redis.test.ts runs the contract):
 * the prefix and index layout, listing without SCAN, appends from two connections, and outages — a
 * private redis-server is killed, frozen and restarted here; the shared one on 6379 is never touched.
 */

import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  freePort,
  IN_CI,
  type PrivateRedis,
  redisAnswers,
  startPrivateRedis,
  TEST_REDIS_URL,
  uniqueRedisPrefix,
} from '../../../test/helpers/redis-server.ts';
import { isPlatformError, type PlatformError } from '../../core/errors.ts';
import { appendJsonLine, readJsonLines } from '../json-lines.ts';
import { createRedisStorage, type RedisStorage } from './redis.ts';

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array | undefined) =>
  value === undefined ? undefined : new TextDecoder().decode(value);

const sharedReachable = await redisAnswers(TEST_REDIS_URL);
const serverInstalled = spawnSync('redis-server', ['--version']).status === 0;
if (!sharedReachable && !IN_CI) console.warn(`skipping Redis driver tests: no Redis at ${TEST_REDIS_URL}`);
if (!serverInstalled && !IN_CI) console.warn('skipping Redis outage tests: redis-server is not installed');

/** The error an operation rejected with (fails the test if it resolved). */
async function rejection(operation: Promise<unknown>): Promise<PlatformError> {
  const outcome = await operation.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(outcome, 'the operation should have failed').toBeDefined();
  return outcome as PlatformError;
}

/** Polls `check` until it resolves true or `timeoutMs` passes. */
async function eventually(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

const opened: RedisStorage[] = [];
afterEach(async () => {
  for (const storage of opened.splice(0)) await storage.close();
});

describe.skipIf(!sharedReachable && !IN_CI)('redis driver on the shared Redis', () => {
  const prefix = uniqueRedisPrefix('driver');
  let raw: Redis;

  beforeAll(() => {
    raw = new Redis(TEST_REDIS_URL);
  });

  afterAll(async () => {
    const leftovers = await raw.keys(`${prefix}*`);
    if (leftovers.length > 0) await raw.del(...leftovers);
    await raw.quit();
  });

  async function open(name: string): Promise<RedisStorage> {
    const storage = await createRedisStorage({ url: TEST_REDIS_URL, prefix: `${prefix}${name}:` });
    opened.push(storage);
    return storage;
  }

  it('keeps each value at prefix + key, binary-safe, and indexes the key beside it', async () => {
    const storage = await open('layout');
    const everyByte = Uint8Array.from({ length: 256 }, (_, index) => index);
    await storage.write('blobs/all.bin', everyByte);
    await storage.append('logs/a.jsonl', bytes('{"n":1}\n'));
    expect([...((await raw.getBuffer(`${prefix}layout:blobs/all.bin`)) ?? [])]).toEqual([...everyByte]);
    expect(await raw.get(`${prefix}layout:logs/a.jsonl`)).toBe('{"n":1}\n');
    expect(await raw.zrange(`${prefix}layout:/keys`, '0', '-1')).toEqual(['blobs/all.bin', 'logs/a.jsonl']);
    await storage.delete('blobs/all.bin');
    expect(await raw.exists(`${prefix}layout:blobs/all.bin`)).toBe(0);
    expect(await raw.zrange(`${prefix}layout:/keys`, '0', '-1')).toEqual(['logs/a.jsonl']);
  });

  it('keeps two storages with different prefixes apart on one Redis', async () => {
    const first = await open('tenant-a');
    const second = await open('tenant-b');
    await first.write('config.json', bytes('a'));
    expect(await second.read('config.json')).toBeUndefined();
    expect(await second.list('')).toEqual([]);
    expect(await first.list('')).toEqual(['config.json']);
  });

  it('lists keys beyond the Basic Multilingual Plane in UTF-16 order, like every driver', async () => {
    const storage = await open('unicode');
    const keys = ['u/\u{1F600}.json', 'u/\uFF5E.json', 'u/a.json'];
    for (const key of keys) await storage.write(key, bytes('1'));
    expect(await storage.list('u/')).toEqual([...keys].sort());
  });

  it('loses no line when two connections (two nodes) append to one key at once', async () => {
    const nodeA = await open('shared');
    const nodeB = await open('shared');
    const key = 'sessions/u1/s1/messages.jsonl';
    await Promise.all(
      Array.from({ length: 400 }, (_, index) =>
        appendJsonLine(index % 2 === 0 ? nodeA : nodeB, key, { index, node: index % 2 === 0 ? 'a' : 'b' }),
      ),
    );
    const lines = await readJsonLines<{ index: number }>(nodeB, key);
    expect(lines).toHaveLength(400);
    expect(new Set(lines.map((line) => line.index)).size).toBe(400);
  });

  it('applies operations issued behind a write that creates its key in call order', async () => {
    // Creating a key takes two round trips (SET XX finds nothing, then the create script): whatever was
    // issued meanwhile must still land after it.
    const storage = await open('order');
    const settled = await Promise.all([
      storage.write('logs/new.jsonl', bytes('first\n')),
      storage.append('logs/new.jsonl', bytes('second\n')),
      storage.exists('logs/new.jsonl'),
      storage.list('logs/'),
      storage.write('logs/new.jsonl', bytes('third\n')),
      storage.append('logs/new.jsonl', bytes('fourth\n')),
      storage.read('logs/new.jsonl'),
    ]);
    expect(settled[2]).toBe(true);
    expect(settled[3]).toEqual(['logs/new.jsonl']);
    expect(text(settled[6] as Uint8Array)).toBe('third\nfourth\n');
    expect(await storage.delete('logs/new.jsonl')).toBe(true);
    const [, , read] = await Promise.all([
      storage.write('logs/new.jsonl', bytes('again\n')),
      storage.delete('logs/new.jsonl'),
      storage.read('logs/new.jsonl'),
    ]);
    expect(read).toBeUndefined();
    expect(await storage.list('logs/')).toEqual([]);
  });

  it('stores the bytes as they were at the call, whatever the caller does with its array after', async () => {
    const storage = await open('copies');
    const fresh = bytes('created');
    const replacing = bytes('replaced');
    const behind = bytes('appended');
    const created = storage.write('doc.txt', fresh);
    const appended = storage.append('doc.txt', behind);
    fresh.fill(0x21);
    behind.fill(0x21);
    await Promise.all([created, appended]);
    expect(text(await storage.read('doc.txt'))).toBe('createdappended');
    const replaced = storage.write('doc.txt', replacing);
    replacing.fill(0x21);
    await replaced;
    expect(text(await storage.read('doc.txt'))).toBe('replaced');
  });

  it('sends appends that wait behind one in flight as one batch, in call order, between the other operations', async () => {
    const storage = await open('batches');
    const probe = new Redis(TEST_REDIS_URL);
    const key = 'logs/busy.jsonl';
    const evals = async () =>
      Number(/cmdstat_eval:calls=(\d+)/.exec(await probe.info('commandstats'))?.[1] ?? '0');
    try {
      const before = await evals();
      await Promise.all(Array.from({ length: 1000 }, (_, index) => appendJsonLine(storage, key, { index })));
      // Shared Redis: other tests' scripts may be counted too, but nowhere near one per append.
      expect((await evals()) - before).toBeLessThan(100);
      const lines = await readJsonLines<{ index: number }>(storage, key);
      expect(lines.map((line) => line.index)).toEqual(Array.from({ length: 1000 }, (_, index) => index));

      // Operations between appends keep their place: each sees exactly the appends called before it.
      const settled = await Promise.all([
        storage.write(key, bytes('a\n')),
        storage.append(key, bytes('b\n')),
        storage.append(key, bytes('c\n')),
        storage.read(key),
        storage.append(key, bytes('d\n')),
        storage.exists(key),
        storage.delete(key),
        storage.append(key, bytes('e\n')),
        storage.read(key),
      ]);
      expect(text(settled[3] as Uint8Array)).toBe('a\nb\nc\n');
      expect(settled[6]).toBe(true);
      expect(text(settled[8] as Uint8Array)).toBe('e\n');
      expect(await storage.list('logs/')).toEqual([key]);
    } finally {
      await probe.quit();
    }
  });

  it('gives each of many values read at once its own bytes', async () => {
    const storage = await open('reads');
    for (let index = 0; index < 50; index++)
      await storage.write(`docs/${index}.json`, bytes(`{"n":${index}}`));
    const values = await Promise.all(
      Array.from({ length: 50 }, (_, index) => storage.read(`docs/${index}.json`)),
    );
    for (const value of values) value?.fill(0x3f);
    for (let index = 0; index < 50; index++) {
      expect(text(await storage.read(`docs/${index}.json`))).toBe(`{"n":${index}}`);
    }
    expect(values.every((value) => value?.every((byte) => byte === 0x3f))).toBe(true);
  });
});

describe('redis driver when Redis cannot be reached', () => {
  it('fails to start with CHAT_ERR_STORAGE_UNAVAILABLE naming the URL, without its password', async () => {
    const port = await freePort();
    const error = await rejection(
      createRedisStorage({ url: `redis://user:hunter2@127.0.0.1:${port}`, connectTimeoutMs: 2000 }),
    );
    expect(isPlatformError(error, 'CHAT_ERR_STORAGE_UNAVAILABLE')).toBe(true);
    expect(error.status).toBe(503);
    expect(error.message).toContain(`127.0.0.1:${port}`);
    expect(JSON.stringify(error)).not.toContain('hunter2');
  });
});

describe.skipIf(!serverInstalled && !IN_CI)('redis driver through an outage (a private redis-server)', () => {
  let server: PrivateRedis;

  beforeAll(async () => {
    server = await startPrivateRedis();
  });

  afterAll(async () => {
    server?.resume();
    await server?.kill();
  });

  it('lists from its index, never scanning the keyspace', async () => {
    const storage = await createRedisStorage({ url: server.url, prefix: 'scan-check:' });
    opened.push(storage);
    const raw = new Redis(server.url);
    for (let index = 0; index < 50; index++) await raw.set(`unrelated:${index}`, 'x');
    for (const key of ['a/1.json', 'a/2.json', 'b/1.json']) await storage.write(key, bytes('1'));
    await raw.config('RESETSTAT');
    expect(await storage.list('a/')).toEqual(['a/1.json', 'a/2.json']);
    expect(await storage.list('')).toEqual(['a/1.json', 'a/2.json', 'b/1.json']);
    const stats = await raw.info('commandstats');
    await raw.quit();
    expect(stats).toContain('cmdstat_zrangebylex');
    expect(stats).not.toMatch(/cmdstat_(scan|keys):/);
  });

  it('sends a follower of a long log only its tail (readFrom), not the whole value', async () => {
    const storage = await createRedisStorage({ url: server.url, prefix: 'tail-check:' });
    opened.push(storage);
    const raw = new Redis(server.url);
    const line = `${JSON.stringify({ content: 'x'.repeat(1000) })}\n`;
    await storage.append('logs/long.jsonl', bytes(line.repeat(2000)));
    await storage.append('logs/long.jsonl', bytes('{"new":true}\n'));
    const sentBy = async (read: () => Promise<unknown>) => {
      const before = Number((await raw.info('stats')).match(/total_net_output_bytes:(\d+)/)?.[1]);
      await read();
      const after = Number((await raw.info('stats')).match(/total_net_output_bytes:(\d+)/)?.[1]);
      return after - before;
    };
    const wholeBytes = line.length * 2000;
    expect(text(await storage.readFrom('logs/long.jsonl', wholeBytes))).toBe('{"new":true}\n');
    expect(await sentBy(() => storage.readFrom('logs/long.jsonl', wholeBytes))).toBeLessThan(10_000);
    expect(await sentBy(() => storage.read('logs/long.jsonl'))).toBeGreaterThan(wholeBytes);
    await raw.quit();
  });

  it('answers 503 at once while Redis is down, then recovers by itself when it is back', async () => {
    // A long command timeout: a fast failure here cannot come from waiting for it.
    const storage = await createRedisStorage({
      url: server.url,
      prefix: 'outage:',
      commandTimeoutMs: 20_000,
      reconnectMaxDelayMs: 200,
    });
    opened.push(storage);
    await storage.write('before.json', bytes('1'));

    await server.kill();
    const started = Date.now();
    const failures = await Promise.all([
      rejection(storage.read('before.json')),
      rejection(storage.write('during.json', bytes('2'))),
      rejection(storage.append('log.jsonl', bytes('{}\n'))),
      rejection(storage.list('')),
      rejection(storage.exists('before.json')),
      rejection(storage.delete('before.json')),
      rejection(storage.ping()),
    ]);
    // Far below the 20 s command timeout: nothing was queued waiting for Redis to return.
    expect(Date.now() - started).toBeLessThan(5_000);
    for (const failure of failures) {
      expect(failure.code).toBe('CHAT_ERR_STORAGE_UNAVAILABLE');
      expect(failure.status).toBe(503);
      expect(failure.message).toContain(server.url.replace('redis://', ''));
    }

    await server.start();
    expect(await eventually(() => storage.ping().then(() => true))).toBe(true);
    // No persistence on this private server: it came back empty, and the same storage works again.
    expect(await storage.read('before.json')).toBeUndefined();
    await storage.write('after.json', bytes('3'));
    await storage.append('log.jsonl', bytes('{"n":1}\n'));
    expect(text(await storage.read('after.json'))).toBe('3');
    expect(await storage.list('')).toEqual(['after.json', 'log.jsonl']);
  });

  it('settles every in-flight command when Redis dies mid-burst, resending none', async () => {
    const storage = await createRedisStorage({ url: server.url, prefix: 'burst:', reconnectMaxDelayMs: 200 });
    opened.push(storage);
    const outcomes = Array.from({ length: 2000 }, (_, index) =>
      appendJsonLine(storage, 'log.jsonl', { index }).then(
        () => 'ok' as const,
        (error: unknown) =>
          isPlatformError(error, 'CHAT_ERR_STORAGE_UNAVAILABLE') ? ('503' as const) : error,
      ),
    );
    await server.kill();
    const settled = await Promise.all(outcomes);
    expect(settled.every((outcome) => outcome === 'ok' || outcome === '503')).toBe(true);
    await server.start();
    expect(await eventually(() => storage.ping().then(() => true))).toBe(true);
    // Nothing failed before the kill was replayed into the fresh server afterwards.
    expect(await storage.read('log.jsonl')).toBeUndefined();
  });

  it('gives up on a frozen Redis after the command timeout with a 503, and carries on once it thaws', async () => {
    const storage = await createRedisStorage({ url: server.url, prefix: 'frozen:', commandTimeoutMs: 300 });
    opened.push(storage);
    await storage.write('x.json', bytes('1'));
    server.pause();
    try {
      const failure = await rejection(storage.read('x.json'));
      expect(failure.code).toBe('CHAT_ERR_STORAGE_UNAVAILABLE');
      expect(failure.message).toContain('timed out');
    } finally {
      server.resume();
    }
    expect(await eventually(async () => text(await storage.read('x.json')) === '1')).toBe(true);
  });

  it('answers 507 when Redis is out of memory, stores nothing of the refused write, and goes on once there is room', async () => {
    const storage = await createRedisStorage({ url: server.url, prefix: 'oom:' });
    opened.push(storage);
    const raw = new Redis(server.url);
    await storage.write('kept.json', bytes('1'));
    try {
      // Keys are never evicted (Redis's default policy): at maxmemory, writes are refused with OOM.
      await raw.config('SET', 'maxmemory-policy', 'noeviction');
      await raw.config('SET', 'maxmemory', '1');
      const failures = await Promise.all([
        rejection(storage.write('big.json', bytes('x'.repeat(10_000)))),
        rejection(storage.append('log.jsonl', bytes('{}\n'))),
      ]);
      for (const failure of failures) {
        expect(failure.code).toBe('CHAT_ERR_STORAGE_FULL');
        expect(failure.status).toBe(507);
        expect(failure.message).toContain('out of memory');
      }
      // Reads still work, and nothing of the refused writes is there.
      expect(text(await storage.read('kept.json'))).toBe('1');
      expect(await storage.list('')).toEqual(['kept.json']);
    } finally {
      await raw.config('SET', 'maxmemory', '0');
    }
    await storage.write('big.json', bytes('2'));
    expect(await storage.list('')).toEqual(['big.json', 'kept.json']);
    await raw.quit();
  });

  it('closes without hanging while Redis is down, and refuses work afterwards', async () => {
    const storage = await createRedisStorage({ url: server.url, prefix: 'close:' });
    await server.kill();
    try {
      await storage.close();
      expect((await rejection(storage.read('x.json'))).code).toBe('CHAT_ERR_STORAGE_UNAVAILABLE');
    } finally {
      await server.start();
    }
  });
});
