/**
 * What the S3 driver adds to the contract (test/contracts/storage-s3.test.ts runs the contract): the
 * bucket layout, appends from two processes, compaction, config-only setup, and failures — all against a
 * real S3 API (s3rver, started here).
 */

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RunningS3rver, startS3rver } from '../../../test/helpers/s3rver.ts';
import type { PlatformError } from '../../core/errors.ts';
import { createStorage } from '../create-storage.ts';
import { appendJsonLine, readJsonLines } from '../json-lines.ts';
import type { Storage } from '../types.ts';
import { createS3Storage, S3_PART_MARKER, type S3Storage, type S3StorageOptions } from './s3.ts';

const run = promisify(execFile);
const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array | undefined) =>
  value === undefined ? undefined : new TextDecoder().decode(value);
const HOUR = 3_600_000;

let s3rver: RunningS3rver;
let raw: S3Client;
let prefixes = 0;
const opened: Storage[] = [];

beforeAll(async () => {
  s3rver = await startS3rver('parley-driver');
  const { credentials, endpoint, region, forcePathStyle } = s3rver.storageOptions;
  raw = new S3Client({
    ...(credentials === undefined ? {} : { credentials }),
    ...(endpoint === undefined ? {} : { endpoint }),
    region: region ?? 'us-east-1',
    forcePathStyle: forcePathStyle ?? true,
  });
});

afterEach(async () => {
  for (const storage of opened.splice(0)) await storage.close();
});

afterAll(async () => {
  raw?.destroy();
  await s3rver?.close();
});

/** A fresh prefix, so every test starts with an empty view of the bucket. */
function freshPrefix(): string {
  prefixes += 1;
  return `driver-${prefixes}/`;
}

async function open(options: Partial<S3StorageOptions> & { prefix: string }): Promise<S3Storage> {
  const storage = await createS3Storage({ ...s3rver.storageOptions, ...options });
  opened.push(storage);
  return storage;
}

/** Every object name under `prefix`, as the bucket has them. */
async function objectNames(prefix: string): Promise<string[]> {
  const page = await raw.send(new ListObjectsV2Command({ Bucket: s3rver.bucket, Prefix: prefix }));
  return (page.Contents ?? []).map((object) => object.Key ?? '').sort();
}

async function rejection(operation: Promise<unknown>): Promise<PlatformError> {
  const outcome = await operation.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(outcome, 'the operation should have failed').toBeDefined();
  return outcome as PlatformError;
}

describe('s3 driver layout', () => {
  it('keeps a written value as a plain object at prefix + key, readable by any S3 tool', async () => {
    const prefix = freshPrefix();
    const storage = await open({ prefix });
    await storage.write('docs/a.json', bytes('{"a":1}'));
    const object = await raw.send(
      new GetObjectCommand({ Bucket: s3rver.bucket, Key: `${prefix}docs/a.json` }),
    );
    expect(await object.Body?.transformToString()).toBe('{"a":1}');
  });

  it('reads and lists objects other tools put there, and ignores folder markers', async () => {
    const prefix = freshPrefix();
    const storage = await open({ prefix });
    await raw.send(
      new PutObjectCommand({ Bucket: s3rver.bucket, Key: `${prefix}imported/x.txt`, Body: 'hi' }),
    );
    await raw.send(new PutObjectCommand({ Bucket: s3rver.bucket, Key: `${prefix}imported/`, Body: '' }));
    expect(text(await storage.read('imported/x.txt'))).toBe('hi');
    await storage.append('imported/x.txt', bytes('!'));
    expect(text(await storage.read('imported/x.txt'))).toBe('hi!');
    expect(await storage.list('')).toEqual(['imported/x.txt']);
  });

  it('stores appends as separate objects beside the key, which list never shows', async () => {
    const prefix = freshPrefix();
    const storage = await open({ prefix });
    await storage.append('logs/a.jsonl', bytes('{"n":1}\n'));
    await storage.append('logs/a.jsonl', bytes('{"n":2}\n'));
    const names = await objectNames(prefix);
    expect(names).toHaveLength(2);
    for (const name of names) expect(name.startsWith(`${prefix}logs/a.jsonl${S3_PART_MARKER}`)).toBe(true);
    expect(await storage.list('')).toEqual(['logs/a.jsonl']);
    expect(await storage.list('logs/a')).toEqual(['logs/a.jsonl']);
    expect(await storage.exists('logs/a.jsonl')).toBe(true);
    expect(await storage.exists('logs')).toBe(false);
  });

  it('sends concurrent appends to one key as one object (group commit)', async () => {
    const storage = await open({ prefix: freshPrefix() });
    await Promise.all(
      Array.from({ length: 200 }, (_, index) => appendJsonLine(storage, 'log.jsonl', { index })),
    );
    expect(storage.stats().parts).toBeLessThanOrEqual(2);
    expect(await readJsonLines(storage, 'log.jsonl')).toHaveLength(200);
  });

  it('hides older parts at once when a key is written, and delete removes every object of the key', async () => {
    const prefix = freshPrefix();
    const storage = await open({ prefix });
    for (let index = 0; index < 3; index++) await appendJsonLine(storage, 'log.jsonl', { index });
    await storage.write('log.jsonl', bytes('{"fresh":true}\n'));
    expect(text(await storage.read('log.jsonl'))).toBe('{"fresh":true}\n');
    await appendJsonLine(storage, 'log.jsonl', { after: true });
    expect(await readJsonLines(storage, 'log.jsonl')).toEqual([{ fresh: true }, { after: true }]);
    expect(await storage.delete('log.jsonl')).toBe(true);
    expect(await objectNames(prefix)).toEqual([]);
    expect(await storage.read('log.jsonl')).toBeUndefined();
  });

  it('keeps the parts of a key apart from the parts of the keys below it', async () => {
    const storage = await open({ prefix: freshPrefix() });
    await storage.append('a', bytes('A'));
    await storage.append('a/b', bytes('B'));
    expect(text(await storage.read('a'))).toBe('A');
    expect(text(await storage.read('a/b'))).toBe('B');
    expect(await storage.delete('a')).toBe(true);
    expect(text(await storage.read('a/b'))).toBe('B');
    expect(await storage.list('')).toEqual(['a/b']);
  });
});

describe('s3 driver node-local copies', () => {
  /** The counters of the requests a read makes, from `storage`'s stats. */
  const requests = (storage: S3Storage) => {
    const { keyListings, baseGets, partGets, baseChecks } = storage.stats();
    return { keyListings, baseGets, partGets, baseChecks };
  };

  /** What `read` sent, as the difference of the counters before and after it. */
  async function readCounting(storage: S3Storage, key: string) {
    const before = requests(storage);
    const value = text(await storage.read(key));
    const after = requests(storage);
    return {
      value,
      sent: {
        keyListings: after.keyListings - before.keyListings,
        baseGets: after.baseGets - before.baseGets,
        partGets: after.partGets - before.partGets,
        baseChecks: after.baseChecks - before.baseChecks,
      },
    };
  }

  it('reads a key it wrote, or read before, with one listing and nothing else', async () => {
    const prefix = freshPrefix();
    const nodeA = await open({ prefix });
    const nodeB = await open({ prefix });
    await nodeA.write('docs/a.json', bytes('{"a":1}'));
    expect(await readCounting(nodeA, 'docs/a.json')).toEqual({
      value: '{"a":1}',
      sent: { keyListings: 1, baseGets: 0, partGets: 0, baseChecks: 0 },
    });
    // Node B has never seen the key: the base comes beside the listing, then B has its copy too.
    expect((await readCounting(nodeB, 'docs/a.json')).sent).toEqual({
      keyListings: 1,
      baseGets: 1,
      partGets: 0,
      baseChecks: 0,
    });
    expect((await readCounting(nodeB, 'docs/a.json')).sent).toEqual({
      keyListings: 1,
      baseGets: 0,
      partGets: 0,
      baseChecks: 0,
    });
  });

  it('never serves a copy of a value another node or tool has changed since', async () => {
    const prefix = freshPrefix();
    const nodeA = await open({ prefix });
    const nodeB = await open({ prefix });
    await nodeA.write('doc.json', bytes('{"v":1}'));
    expect(text(await nodeA.read('doc.json'))).toBe('{"v":1}');
    // Another node writes, appends, deletes and writes again; A reads after each.
    await nodeB.write('doc.json', bytes('{"v":2}'));
    expect(text(await nodeA.read('doc.json'))).toBe('{"v":2}');
    await nodeB.append('doc.json', bytes('+'));
    expect(text(await nodeA.read('doc.json'))).toBe('{"v":2}+');
    await nodeB.delete('doc.json');
    expect(await nodeA.read('doc.json')).toBeUndefined();
    expect(await nodeA.exists('doc.json')).toBe(false);
    await nodeB.write('doc.json', bytes('{"v":3}'));
    expect(text(await nodeA.read('doc.json'))).toBe('{"v":3}');
    // Another tool replaces the object with bytes of the same length.
    await raw.send(
      new PutObjectCommand({ Bucket: s3rver.bucket, Key: `${prefix}doc.json`, Body: '{"v":4}' }),
    );
    expect(text(await nodeA.read('doc.json'))).toBe('{"v":4}');
  });

  it('sees a write of the same bytes hide the parts appended before it (same ETag, new cutoff)', async () => {
    const prefix = freshPrefix();
    // A's clock an hour ahead: the part counts as settled, so only the base's parts call for a check.
    const nodeA = await open({ prefix, now: () => Date.now() + HOUR });
    const nodeB = await open({ prefix });
    await nodeA.write('log.jsonl', bytes('{"base":1}\n'));
    await nodeA.append('log.jsonl', bytes('{"more":1}\n'));
    expect(text(await nodeA.read('log.jsonl'))).toBe('{"base":1}\n{"more":1}\n');
    // B writes exactly the bytes A has a copy of: the ETag is the same, but the appended part is now hidden.
    await nodeB.write('log.jsonl', bytes('{"base":1}\n'));
    const { value, sent } = await readCounting(nodeA, 'log.jsonl');
    expect(value).toBe('{"base":1}\n');
    // Its copy of the bytes still serves (same ETag); a HEAD told it the new cutoff. (The read also starts
    // a cleanup of the hidden part, whose requests may land in these counters: only the GETs are exact.)
    expect(sent).toMatchObject({ baseGets: 0, partGets: 0 });
    expect(sent.baseChecks).toBeGreaterThanOrEqual(1);
  });

  it('sees every part another node appends, and fetches each part once', async () => {
    const prefix = freshPrefix();
    const writer = await open({ prefix });
    const reader = await open({ prefix });
    await writer.append('log.jsonl', bytes('{"n":1}\n'));
    await writer.append('log.jsonl', bytes('{"n":2}\n'));
    expect((await readCounting(reader, 'log.jsonl')).sent).toMatchObject({ partGets: 2 });
    await writer.append('log.jsonl', bytes('{"n":3}\n'));
    const { value, sent } = await readCounting(reader, 'log.jsonl');
    expect(value).toBe('{"n":1}\n{"n":2}\n{"n":3}\n');
    // Only the new part is fetched; young parts and no base: the base is checked again after the listing.
    expect(sent).toEqual({ keyListings: 1, baseGets: 0, partGets: 1, baseChecks: 1 });
  });

  it('reads a log of settled parts and no base with one listing', async () => {
    const prefix = freshPrefix();
    const writer = await open({ prefix });
    for (let index = 0; index < 3; index++) await appendJsonLine(writer, 'log.jsonl', { index });
    // An hour later (by this node's clock) no write can still be racing these parts.
    const reader = await open({ prefix, now: () => Date.now() + HOUR });
    await reader.read('log.jsonl');
    const { value, sent } = await readCounting(reader, 'log.jsonl');
    expect(value).toBe('{"index":0}\n{"index":1}\n{"index":2}\n');
    expect(sent).toEqual({ keyListings: 1, baseGets: 0, partGets: 0, baseChecks: 0 });
  });

  it('gives a reader on another node only values the key held while the read ran', async () => {
    const prefix = freshPrefix();
    const writer = await open({ prefix });
    const readers = [await open({ prefix }), await open({ prefix, cacheBytes: 0 })];
    // Writes of two alternating contents (so some rewrite the bytes already there, hiding the appends
    // after them) and appends in between; states[k] is the value after k operations.
    const operations: { kind: 'write' | 'append'; data: string }[] = [];
    for (let index = 0; index < 60; index++) {
      if (index % 6 === 0) operations.push({ kind: 'write', data: `{"w":${(index / 6) % 2}}\n` });
      else operations.push({ kind: 'append', data: `{"a":${index}}\n` });
    }
    const states: (string | undefined)[] = [undefined];
    for (const operation of operations) {
      const before = states.at(-1) ?? '';
      states.push(operation.kind === 'write' ? operation.data : before + operation.data);
    }
    let started = 0;
    let done = 0;
    const writing = (async () => {
      for (const operation of operations) {
        started += 1;
        if (operation.kind === 'write') await writer.write('log.jsonl', bytes(operation.data));
        else await writer.append('log.jsonl', bytes(operation.data));
        done += 1;
      }
    })();
    const reading = readers.map(async (reader) => {
      let reads = 0;
      while (done < operations.length) {
        const from = done;
        const value = text(await reader.read('log.jsonl'));
        const to = started;
        // Linearizable: the value of some moment between the read's start and its end.
        const moments = states.slice(from, to + 1);
        expect(moments, `read ${reads} saw ${JSON.stringify(value)}`).toContain(value);
        reads += 1;
      }
      return reads;
    });
    await writing;
    for (const reads of await Promise.all(reading)) expect(reads).toBeGreaterThan(5);
    for (const reader of readers) expect(text(await reader.read('log.jsonl'))).toBe(states.at(-1));
  });

  it('keeps at most cacheBytes of copies, and reads right past them', async () => {
    const prefix = freshPrefix();
    const storage = await open({ prefix, cacheBytes: 4096 });
    const document = (index: number) => `{"index":${index},"pad":"${'x'.repeat(1000)}"}`;
    for (let index = 0; index < 10; index++)
      await storage.write(`docs/${index}.json`, bytes(document(index)));
    for (let index = 0; index < 10; index++) {
      expect(text(await storage.read(`docs/${index}.json`))).toBe(document(index));
    }
    const stats = storage.stats();
    expect(stats.cacheBytes).toBeLessThanOrEqual(4096);
    expect(stats.cacheEvictions).toBeGreaterThan(0);
    // A value larger than the whole bound is never kept: each read fetches it.
    await storage.write('big.json', bytes(`"${'y'.repeat(8000)}"`));
    expect((await readCounting(storage, 'big.json')).sent.baseGets).toBe(1);
    expect((await readCounting(storage, 'big.json')).sent.baseGets).toBe(1);
    expect(storage.stats().cacheBytes).toBeLessThanOrEqual(4096);
  });

  it('keeps no copies with cacheBytes 0: every read fetches the base beside the listing', async () => {
    const storage = await open({ prefix: freshPrefix(), cacheBytes: 0 });
    await storage.write('a.json', bytes('1'));
    for (let round = 0; round < 2; round++) {
      expect(await readCounting(storage, 'a.json')).toEqual({
        value: '1',
        sent: { keyListings: 1, baseGets: 1, partGets: 0, baseChecks: 0 },
      });
    }
    expect(storage.stats()).toMatchObject({ cacheEntries: 0, cacheBytes: 0 });
  });

  it('hands every reader bytes of its own, never the copy it keeps', async () => {
    const storage = await open({ prefix: freshPrefix() });
    await storage.write('a.json', bytes('abc'));
    const first = await storage.read('a.json');
    first?.fill(0x7a);
    expect(text(await storage.read('a.json'))).toBe('abc');
  });

  it('keeps keys apart that are string prefixes of each other', async () => {
    const prefix = freshPrefix();
    const nodeA = await open({ prefix });
    const nodeB = await open({ prefix });
    const keys = ['a/b', 'a/bc', 'a/b.json', 'a/b.json.bak', 'a/b/c', 'a/b-'];
    for (const key of keys) {
      await nodeA.write(key, bytes(`<${key}>`));
      await nodeA.append(key, bytes('+'));
    }
    for (const node of [nodeA, nodeB]) {
      for (const key of keys) expect(text(await node.read(key)), key).toBe(`<${key}>+`);
    }
    expect(await nodeA.list('a/')).toEqual([...keys].sort());
    expect(await nodeA.list('a/b.json')).toEqual(['a/b.json', 'a/b.json.bak']);
    expect(await nodeA.delete('a/b')).toBe(true);
    expect(await nodeA.delete('a/b.json')).toBe(true);
    for (const node of [nodeA, nodeB]) {
      expect(await node.read('a/b')).toBeUndefined();
      expect(await node.exists('a/b.json')).toBe(false);
      for (const key of ['a/bc', 'a/b.json.bak', 'a/b/c', 'a/b-']) {
        expect(text(await node.read(key)), key).toBe(`<${key}>+`);
      }
    }
    expect(await nodeB.list('a/')).toEqual(['a/b-', 'a/b.json.bak', 'a/b/c', 'a/bc']);
  });
});

describe('s3 driver across processes', () => {
  it('loses no append when two processes append to one key at once', async () => {
    const prefix = freshPrefix();
    const worker = join(import.meta.dirname, '../../../test/helpers/s3-append-worker.ts');
    const count = 150;
    const spawnWorker = (name: string) =>
      run(
        process.execPath,
        [
          worker,
          JSON.stringify({
            storage: { ...s3rver.storageOptions, prefix },
            key: 'sessions/u1/s1/messages.jsonl',
            worker: name,
            count,
            concurrency: 8,
            readEvery: 25,
          }),
        ],
        { timeout: 60_000 },
      );
    const results = await Promise.all([spawnWorker('a'), spawnWorker('b')]);
    for (const { stdout } of results) {
      expect(JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}')).toMatchObject({ acknowledged: count });
    }
    const storage = await open({ prefix });
    const lines = await readJsonLines<{ worker: string; seq: number }>(
      storage,
      'sessions/u1/s1/messages.jsonl',
    );
    expect(lines).toHaveLength(2 * count);
    for (const name of ['a', 'b']) {
      // Each process's lines are all there, once, in the order it appended them.
      const sequence = lines.filter((line) => line.worker === name).map((line) => line.seq);
      expect(sequence).toEqual(Array.from({ length: count }, (_, index) => index));
    }
  });
});

describe('s3 driver compaction', () => {
  // The clock is moved an hour ahead, so every part counts as old enough to merge.
  const later = () => Date.now() + HOUR;

  it('merges many parts into one on read, keeping the value byte for byte', async () => {
    const prefix = freshPrefix();
    const storage = await open({ prefix, compactAfterParts: 8, now: later });
    const expected: object[] = [{ base: true }];
    await storage.write('log.jsonl', bytes('{"base":true}\n'));
    for (let index = 0; index < 20; index++) {
      await appendJsonLine(storage, 'log.jsonl', { index });
      expected.push({ index });
    }
    const before = text(await storage.read('log.jsonl'));
    await storage.close();
    // The base and one merged part remain.
    expect(await objectNames(prefix)).toHaveLength(2);
    const reopened = await open({ prefix });
    expect(text(await reopened.read('log.jsonl'))).toBe(before);
    expect(await readJsonLines(reopened, 'log.jsonl')).toEqual(expected);
    expect(storage.stats()).toMatchObject({ compactions: 1, partsMerged: 20, compactionFailures: 0 });
  });

  it('gives every reader the same value while two nodes compact the same key and a third appends', async () => {
    const prefix = freshPrefix();
    const writer = await open({ prefix });
    for (let index = 0; index < 12; index++) await appendJsonLine(writer, 'log.jsonl', { index });
    const nodeA = await open({ prefix, compactAfterParts: 4, now: later });
    const nodeB = await open({ prefix, compactAfterParts: 4, now: later });
    const reads: Promise<unknown[]>[] = [];
    for (let round = 0; round < 4; round++) {
      reads.push(readJsonLines(nodeA, 'log.jsonl'), readJsonLines(nodeB, 'log.jsonl'));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    for (const lines of await Promise.all(reads)) {
      expect(lines).toEqual(Array.from({ length: 12 }, (_, index) => ({ index })));
    }
    await Promise.all([nodeA.close(), nodeB.close()]);
    expect(nodeA.stats().compactions + nodeB.stats().compactions).toBeGreaterThanOrEqual(1);
    // Appends after the compaction land after the merged lines.
    expect(nodeA.stats().compactionFailures + nodeB.stats().compactionFailures).toBe(0);
    await appendJsonLine(writer, 'log.jsonl', { index: 12 });
    const lines = await readJsonLines(writer, 'log.jsonl');
    expect(lines).toEqual(Array.from({ length: 13 }, (_, index) => ({ index })));
    // The 12 parts are gone: what is left is the new part and one merged part per node that merged.
    expect((await objectNames(prefix)).length).toBeLessThanOrEqual(3);
  });

  it('deletes parts hidden by a write once that write is old enough', async () => {
    const prefix = freshPrefix();
    const writer = await open({ prefix });
    for (let index = 0; index < 5; index++) await appendJsonLine(writer, 'log.jsonl', { index });
    await writer.write('log.jsonl', bytes('{"replaced":true}\n'));
    expect(await objectNames(prefix)).toHaveLength(6);
    const reader = await open({ prefix, now: later });
    expect(await readJsonLines(reader, 'log.jsonl')).toEqual([{ replaced: true }]);
    await reader.close();
    expect(await objectNames(prefix)).toEqual([`${prefix}log.jsonl`]);
  });

  it('leaves young parts alone (an append still in flight on another node might belong among them)', async () => {
    const prefix = freshPrefix();
    const storage = await open({ prefix, compactAfterParts: 2 });
    for (let index = 0; index < 5; index++) await appendJsonLine(storage, 'log.jsonl', { index });
    await storage.read('log.jsonl');
    await storage.close();
    expect(await objectNames(prefix)).toHaveLength(5);
  });

  it('refuses a compaction age shorter than an append or write can be in flight, plus a listing', async () => {
    const error = await rejection(
      createS3Storage({ ...s3rver.storageOptions, requestTimeoutMs: 10_000, compactionAgeMs: 39_999 }),
    );
    expect(error.code).toBe('CHAT_ERR_CONFIG_INVALID');
    expect(error.details).toMatchObject({ path: 'storage.s3.compaction_age_ms' });
  });
});

describe('s3 driver configuration and failures', () => {
  it('is built by createStorage from the storage.s3 config alone', async () => {
    const prefix = freshPrefix();
    const storage = await createStorage({
      backend: 's3',
      cache: { enabled: false, ttl_ms: 1, max_entries: 1 },
      s3: {
        endpoint: s3rver.endpoint,
        region: 'us-east-1',
        bucket: s3rver.bucket,
        prefix,
        force_path_style: true,
        access_key_id: 'S3RVER',
        secret_access_key: 'S3RVER',
      },
    });
    opened.push(storage);
    await storage.write('from-config.json', bytes('1'));
    expect(await objectNames(prefix)).toEqual([`${prefix}from-config.json`]);
  });

  it('refuses half a key pair instead of silently using other credentials', async () => {
    const error = await rejection(
      createStorage({ backend: 's3', s3: { endpoint: s3rver.endpoint, access_key_id: 'S3RVER' } }),
    );
    expect(error.code).toBe('CHAT_ERR_CONFIG_INVALID');
    expect(error.details).toMatchObject({ path: 'storage.s3.secret_access_key' });
  });

  it('says which bucket is missing', async () => {
    const error = await rejection(createS3Storage({ ...s3rver.storageOptions, bucket: 'no-such-bucket' }));
    expect(error.code).toBe('CHAT_ERR_STORAGE_FAILED');
    expect(error.message).toContain('no-such-bucket');
  });

  it('fails with CHAT_ERR_STORAGE_FAILED, not 503, when the credentials are wrong', async () => {
    const error = await rejection(
      createS3Storage({
        ...s3rver.storageOptions,
        credentials: { accessKeyId: 'NOT-A-KEY', secretAccessKey: 'S3RVER' },
      }),
    );
    expect(error.code).toBe('CHAT_ERR_STORAGE_FAILED');
  });

  it('answers 503 when the store goes away, and works again when it is back', async () => {
    const own = await startS3rver('parley-outage');
    const storage = await createS3Storage({ ...own.storageOptions, prefix: 'outage/' });
    opened.push(storage);
    await storage.write('a.json', bytes('1'));
    await own.close();
    const errors = await Promise.all(
      [storage.read('a.json'), storage.write('b.json', bytes('2')), storage.list('')].map(rejection),
    );
    for (const error of errors) {
      expect(error.code).toBe('CHAT_ERR_STORAGE_UNAVAILABLE');
      expect(error.status).toBe(503);
      expect(error.message).toContain(own.endpoint);
    }
    // Back on the same address (empty: a new directory), the same storage carries on.
    const back = await startS3rver('parley-outage', Number(new URL(own.endpoint).port));
    try {
      await storage.write('b.json', bytes('2'));
      expect(text(await storage.read('b.json'))).toBe('2');
    } finally {
      await storage.close();
      await back.close();
    }
  });
});
