/**
 * The storage drivers beside the raw client doing the same operations, in one run:
 *
 * - flatfile vs raw `fs` with the same durability (write: temp file + fdatasync + rename + directory
 *   fsync; append: O_APPEND + fdatasync; read: readFile; list: recursive readdir, sorted);
 * - redis vs raw ioredis (write: SET; read: GET; append: APPEND, and EVAL of the driver's append script;
 *   list: SCAN MATCH — the raw way to find keys by prefix — and ZRANGEBYLEX over the driver's own index;
 *   the second of each shows the driver's overhead alone);
 * - s3 vs the raw AWS SDK (write: PutObject; read: GetObject — by a driver that has its copy of the key, as
 *   after writing or reading it (one LIST), by one without copies (`cacheBytes: 0`: the first read of a key
 *   another node wrote), beside the raw GetObject + ListObjectsV2 at once that such a read sends, and right
 *   after another node rewrote the key, beside a raw PutObject + GetObject; append: PutObject of a new
 *   object, the raw form of an append on S3; list: ListObjectsV2).
 *
 * Redis is a private `redis-server` on a free port (no persistence; 20,000 unrelated keys in it, as a
 * deployment has other users' data), or `CHAT_BENCH_REDIS_URL` when set; s3rver runs in a child process so
 * the server has its own event loop; `s3-moto` runs the S3 rows again on stock moto (`moto_server`, Python), an
 * S3 implementation with no changes of ours. Each operation runs one at a time (latency) and 32 at a time
 * (`append ×32`: throughput under concurrency). Driver and raw take turns — operation by operation one at
 * a time, in short slices ×32 — and each round's ratio is taken on its own, so a busy shared machine
 * slows both alike (see measurePair). Goal: every driver ≥ 0.8× its raw client. Run alone: `npx node
 * bench/storage/index.ts [flatfile] [redis] [s3] [s3-moto]`.
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { createFlatfileStorage } from '../../src/storage/drivers/flatfile.ts';
import { createRedisStorage, REDIS_SCRIPTS } from '../../src/storage/drivers/redis.ts';
import { createS3Storage, type S3StorageOptions } from '../../src/storage/drivers/s3.ts';
import type { Storage } from '../../src/storage/types.ts';
import { startMoto } from '../../test/helpers/moto.ts';
import { s3rverStorageOptions } from '../../test/helpers/s3rver.ts';
import { formatTable, quantile } from '../report.ts';

/** Sizes of one run; the defaults keep it near a minute. */
export interface StorageBenchOptions {
  /** Measured rounds per row (after one warm-up round); driver and raw alternate within each. */
  rounds?: number;
  /** How long each subject runs in a round (default: each backend's own, a few dozen operations). */
  roundMs?: number;
  /** Which backends to measure (default all). */
  backends?: BackendName[];
}

/** The backends this benchmark knows. */
export type BackendName = 'flatfile' | 'redis' | 's3' | 's3-moto';

/** What a run without arguments measures (`s3-moto` needs a Python server, so only when asked for). */
const DEFAULT_BACKENDS: BackendName[] = ['flatfile', 'redis', 's3'];

/** One row: an operation of a backend, driver beside raw client. */
export interface StorageBenchRow {
  backend: string;
  operation: string;
  raw: string;
  driver: Figures;
  baseline: Figures;
  /** Median over rounds of driver ops/s ÷ raw ops/s in the same round (goal ≥ 0.8). */
  ratio: number;
}

/** Throughput (median over rounds) and per-operation latency (over all rounds) of one subject. */
export interface Figures {
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
}

export interface StorageBenchResult {
  rows: StorageBenchRow[];
  table: string;
}

/** One operation, `index` counting up from 0 over the run. */
type Operation = (index: number) => Promise<unknown>;

interface Pair {
  operation: string;
  raw: string;
  driver: Operation;
  baseline: Operation;
  /** Operations in flight at once (1: one after another). */
  concurrency: number;
}

interface Backend {
  name: string;
  pairs: Pair[];
  /** How long each subject runs in a round: long enough for a few dozen operations. */
  roundMs: number;
  close(): Promise<void>;
}

const DOCUMENT = new TextEncoder().encode(
  JSON.stringify({ id: 'u1', name: 'bench user', settings: { theme: 'dark' }, notes: 'x'.repeat(900) }),
);
const LINE = new TextEncoder().encode(
  `${JSON.stringify({ id: 'm1', role: 'user', content: 'hello, parley! '.repeat(10) })}\n`,
);
const DOCUMENTS = 100;
const CONCURRENT = 32;

const documentKey = (index: number) => `docs/${index % DOCUMENTS}.json`;

/** The four operations, for a driver and a raw client given as functions. */
function pairs(
  driver: Storage,
  raw: {
    write: (key: string, data: Uint8Array) => Promise<unknown>;
    read: (key: string) => Promise<unknown>;
    append: (key: string, data: Uint8Array) => Promise<unknown>;
    lists: { name: string; list: (prefix: string) => Promise<unknown> }[];
    /**
     * Other reads, each a row of its own beside the plain read: another raw way to read, and optionally
     * another driver (one set up differently) under its own operation name.
     */
    reads?: {
      name: string;
      read: (key: string) => Promise<unknown>;
      operation?: string;
      driver?: Storage;
    }[];
    /** Other raw ways to append, each a row of its own beside the plain append. */
    appends?: { name: string; append: (key: string, data: Uint8Array) => Promise<unknown> }[];
  },
  names: { write: string; read: string; append: string },
): Pair[] {
  const result: Pair[] = [
    {
      operation: 'write 1 KiB',
      raw: names.write,
      driver: (index) => driver.write(documentKey(index), DOCUMENT),
      baseline: (index) => raw.write(documentKey(index), DOCUMENT),
      concurrency: 1,
    },
    {
      operation: 'read 1 KiB',
      raw: names.read,
      driver: (index) => driver.read(documentKey(index)),
      baseline: (index) => raw.read(documentKey(index)),
      concurrency: 1,
    },
    ...(raw.reads ?? []).map((other) => ({
      operation: other.operation ?? 'read 1 KiB',
      raw: other.name,
      driver: (index: number) => (other.driver ?? driver).read(documentKey(index)),
      baseline: (index: number) => other.read(documentKey(index)),
      concurrency: 1,
    })),
    {
      operation: 'append a line',
      raw: names.append,
      driver: () => driver.append('logs/messages.jsonl', LINE),
      baseline: () => raw.append('logs/messages.jsonl', LINE),
      concurrency: 1,
    },
    ...(raw.appends ?? []).map(({ name, append }) => ({
      operation: 'append a line',
      raw: name,
      driver: () => driver.append('logs/messages.jsonl', LINE),
      baseline: () => append('logs/messages.jsonl', LINE),
      concurrency: 1,
    })),
    {
      operation: `append ×${CONCURRENT} at once`,
      raw: names.append,
      driver: () => driver.append('logs/busy.jsonl', LINE),
      baseline: () => raw.append('logs/busy.jsonl', LINE),
      concurrency: CONCURRENT,
    },
  ];
  for (const { name, list } of raw.lists) {
    result.push({
      operation: `list ${DOCUMENTS} keys`,
      raw: name,
      driver: () => driver.list('docs/'),
      baseline: () => list('docs/'),
      concurrency: 1,
    });
  }
  return result;
}

async function flatfileBackend(): Promise<Backend> {
  const directory = await mkdtemp(join(tmpdir(), 'parley-bench-storage-'));
  const driver = createFlatfileStorage({ root: join(directory, 'driver') });
  const rawRoot = join(directory, 'raw');
  const pathOf = (key: string) => join(rawRoot, ...key.split('/'));

  async function syncDirectory(path: string): Promise<void> {
    const handle = await open(path, constants.O_RDONLY);
    await handle.sync();
    await handle.close();
  }
  const raw = {
    async write(key: string, data: Uint8Array) {
      const path = pathOf(key);
      const folder = join(path, '..');
      await mkdir(folder, { recursive: true });
      const temporary = join(folder, `.tmp-${randomBytes(8).toString('hex')}`);
      const handle = await open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      await handle.write(data);
      await handle.datasync();
      await handle.close();
      await rename(temporary, path);
      await syncDirectory(folder);
    },
    read: (key: string) => readFile(pathOf(key)),
    async append(key: string, data: Uint8Array) {
      const path = pathOf(key);
      await mkdir(join(path, '..'), { recursive: true });
      const handle = await open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o600);
      await handle.write(data);
      await handle.datasync();
      await handle.close();
    },
    lists: [
      {
        name: 'readdir recursive',
        async list(prefix: string) {
          const entries = await readdir(pathOf(prefix.slice(0, -1)), {
            recursive: true,
            withFileTypes: true,
          });
          return entries
            .filter((entry) => entry.isFile())
            .map((entry) => `${prefix}${join(entry.parentPath, entry.name).slice(pathOf(prefix).length)}`)
            .sort();
        },
      },
    ],
  };
  for (let index = 0; index < DOCUMENTS; index++) {
    await driver.write(documentKey(index), DOCUMENT);
    await raw.write(documentKey(index), DOCUMENT);
  }
  return {
    name: 'flatfile',
    roundMs: 50,
    pairs: pairs(driver, raw, {
      write: 'fs: temp+fdatasync+rename+dir fsync',
      read: 'fs.readFile',
      append: 'fs: O_APPEND+fdatasync',
    }),
    async close() {
      await driver.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/** A private redis-server on a free port, or `undefined` when the binary is missing. */
async function privateRedis(): Promise<{ url: string; process: ChildProcess } | undefined> {
  if (spawnSync('redis-server', ['--version']).status !== 0) return undefined;
  const { freePort, redisAnswers } = await import('../../test/helpers/redis-server.ts');
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  const url = `redis://127.0.0.1:${port}`;
  for (let attempt = 0; attempt < 200 && !(await redisAnswers(url, 200)); attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return { url, process: child };
}

/** The bytes as a Buffer without copying them (what the driver sends too; a copy would slow the raw side). */
const bufferView = (data: Uint8Array) => Buffer.from(data.buffer, data.byteOffset, data.byteLength);

async function redisBackend(): Promise<Backend> {
  const own = process.env.CHAT_BENCH_REDIS_URL === undefined ? await privateRedis() : undefined;
  const url = process.env.CHAT_BENCH_REDIS_URL ?? own?.url ?? 'redis://127.0.0.1:6379';
  const prefix = `parley-bench:${process.pid}:`;
  const driverPrefix = `${prefix}driver:`;
  const rawPrefix = `${prefix}raw:`;
  const driver = await createRedisStorage({ url, prefix: driverPrefix });
  const client = new Redis(url);
  if (own !== undefined) {
    // Other users' data, as in a real deployment: what a SCAN has to walk past.
    const filler = client.pipeline();
    for (let index = 0; index < 20_000; index++)
      filler.set(`${prefix}other:sessions/u${index}/meta.json`, '{}');
    await filler.exec();
  }
  const raw = {
    write: (key: string, data: Uint8Array) => client.set(rawPrefix + key, bufferView(data)),
    read: (key: string) => client.getBuffer(rawPrefix + key),
    append: (key: string, data: Uint8Array) => client.append(rawPrefix + key, bufferView(data)),
    appends: [
      {
        // What the driver's append sends: APPEND and, when it created the key, ZADD to the index, in one
        // script (so the row shows the driver's overhead beside the cost of the script itself).
        name: "ioredis EVAL of the driver's script",
        append: (key: string, data: Uint8Array) =>
          client.eval(REDIS_SCRIPTS.append, 2, rawPrefix + key, `${rawPrefix}/keys`, bufferView(data), key),
      },
    ],
    lists: [
      {
        name: `SCAN MATCH${own === undefined ? '' : ' (20k other keys)'}`,
        async list(listPrefix: string) {
          const keys: string[] = [];
          let cursor = '0';
          do {
            const [next, found] = await client.scan(
              cursor,
              'MATCH',
              `${rawPrefix}${listPrefix}*`,
              'COUNT',
              1000,
            );
            cursor = next;
            for (const key of found) keys.push(key.slice(rawPrefix.length));
          } while (cursor !== '0');
          return keys.sort();
        },
      },
      {
        name: 'ZRANGEBYLEX on the same index',
        list: (listPrefix: string) =>
          client.zrangebylex(
            `${driverPrefix}/keys`,
            `[${listPrefix}`,
            Buffer.concat([Buffer.from(`(${listPrefix}`), Buffer.from([0xff])]),
          ),
      },
    ],
  };
  for (let index = 0; index < DOCUMENTS; index++) {
    await driver.write(documentKey(index), DOCUMENT);
    await raw.write(documentKey(index), DOCUMENT);
  }
  return {
    name: 'redis',
    roundMs: 25,
    pairs: pairs(driver, raw, { write: 'ioredis SET', read: 'ioredis GET', append: 'ioredis APPEND' }),
    async close() {
      await driver.close();
      const leftovers = await client.keys(`${prefix}*`);
      for (let start = 0; start < leftovers.length; start += 1000) {
        await client.del(...leftovers.slice(start, start + 1000));
      }
      await client.quit();
      own?.process.kill('SIGKILL');
    },
  };
}

/** s3rver in a child process, so its request handling does not share this process's event loop. */
async function childS3rver(bucket: string): Promise<{ endpoint: string; process: ChildProcess }> {
  const script = join(import.meta.dirname, '../../test/helpers/s3rver.ts');
  const child = spawn(process.execPath, [script, bucket], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    const { endpoint } = JSON.parse(line) as { endpoint: string };
    return { endpoint, process: child };
  }
  throw new Error('s3rver did not start');
}

/** An S3 server for the S3 rows: where it listens, how to sign for it, and how to stop it. */
interface S3Server {
  name: string;
  options: S3StorageOptions;
  close(): Promise<void>;
}

/** s3rver (with test/helpers/s3rver-store.ts) in a child process. */
async function s3rverServer(bucket: string): Promise<S3Server> {
  const server = await childS3rver(bucket);
  return {
    name: 's3 (s3rver)',
    options: s3rverStorageOptions(server.endpoint, bucket),
    async close() {
      server.process.kill('SIGTERM');
    },
  };
}

/** Stock moto, a second S3 implementation nobody here has changed (`s3-moto`; needs `moto_server`). */
async function motoServer(bucket: string): Promise<S3Server> {
  const moto = await startMoto(bucket);
  return { name: 's3 (moto)', options: moto.storageOptions, close: () => moto.close() };
}

async function s3Backend(startServer: (bucket: string) => Promise<S3Server>): Promise<Backend> {
  const bucket = 'parley-bench';
  const server = await startServer(bucket);
  const options: S3StorageOptions = { ...server.options, prefix: 'driver/' };
  const driver = await createS3Storage(options);
  // The same keys seen by a node that keeps no copies: every read is what a first read costs.
  const coldDriver = await createS3Storage({ ...options, cacheBytes: 0 });
  // Another node, rewriting keys the driver has copies of.
  const otherNode = await createS3Storage(options);
  // Both servers are reached the same way: path-style on 127.0.0.1, region us-east-1, fixed credentials.
  const client = new S3Client({
    endpoint: server.options.endpoint ?? '',
    region: 'us-east-1',
    forcePathStyle: true,
    ...(server.options.credentials && { credentials: server.options.credentials }),
  });
  const rawName = (key: string) => `raw/${key}`;
  let appended = 0;
  async function getObject(key: string) {
    const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: rawName(key) }));
    return response.Body?.transformToByteArray();
  }
  const putObject = (key: string, data: Uint8Array) =>
    client.send(new PutObjectCommand({ Bucket: bucket, Key: rawName(key), Body: data }));
  const raw = {
    write: putObject,
    read: getObject,
    reads: [
      { operation: 'read 1 KiB, no copy', name: 'SDK GetObject', driver: coldDriver, read: getObject },
      {
        // What a read without a copy sends: the object, and a listing of the key (its base and parts).
        operation: 'read 1 KiB, no copy',
        name: 'SDK GetObject + ListObjectsV2 at once',
        driver: coldDriver,
        read: (key: string) =>
          Promise.all([
            getObject(key),
            client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: rawName(key), Delimiter: '/' })),
          ]),
      },
    ],
    append: (key: string, data: Uint8Array) =>
      client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: `${rawName(key)}/${String(appended++).padStart(9, '0')}`,
          Body: data,
        }),
      ),
    lists: [
      {
        name: 'ListObjectsV2 (all pages)',
        async list(listPrefix: string) {
          const keys: string[] = [];
          let token: string | undefined;
          do {
            const page = await client.send(
              new ListObjectsV2Command({
                Bucket: bucket,
                Prefix: rawName(listPrefix),
                ContinuationToken: token,
              }),
            );
            for (const object of page.Contents ?? []) keys.push(object.Key?.slice(4) ?? '');
            token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
          } while (token !== undefined);
          return keys.sort();
        },
      },
    ],
  };
  for (let index = 0; index < DOCUMENTS; index++) {
    await driver.write(documentKey(index), DOCUMENT);
    await raw.write(documentKey(index), DOCUMENT);
  }
  // Two versions of the document; a key's next visit (`index` + DOCUMENTS) writes the other, so every rewrite
  // changes the bytes (and the ETag).
  const versions = [
    DOCUMENT,
    new TextEncoder().encode(new TextDecoder().decode(DOCUMENT).replace('dark', 'lite')),
  ];
  const rewritten: Pair = {
    operation: 'read 1 KiB another node just rewrote',
    raw: 'SDK PutObject, then GetObject',
    driver: async (index) => {
      await otherNode.write(documentKey(index), versions[Math.floor(index / DOCUMENTS) % 2]!);
      return driver.read(documentKey(index));
    },
    baseline: async (index) => {
      await putObject(documentKey(index), versions[Math.floor(index / DOCUMENTS) % 2]!);
      return getObject(documentKey(index));
    },
    concurrency: 1,
  };
  const all = pairs(driver, raw, {
    write: 'SDK PutObject',
    read: 'SDK GetObject',
    append: 'SDK PutObject (new object)',
  });
  // After the reads without a copy.
  all.splice(all.findLastIndex((pair) => pair.operation.startsWith('read')) + 1, 0, rewritten);
  return {
    name: server.name,
    roundMs: 75,
    pairs: all,
    async close() {
      await Promise.all([driver.close(), coldDriver.close(), otherNode.close()]);
      client.destroy();
      await server.close();
    },
  };
}

/**
 * Runs operations for `durationMs` with `concurrency` in flight, numbering them from `first`; pushes each
 * one's latency in ms and returns how many ran and for how long.
 */
async function runFor(
  operation: Operation,
  durationMs: number,
  concurrency: number,
  first: number,
  latencies: number[],
): Promise<{ count: number; seconds: number }> {
  let next = 0;
  const started = performance.now();
  const deadline = started + durationMs;
  async function worker(): Promise<void> {
    while (performance.now() < deadline) {
      const index = first + next++;
      const begun = performance.now();
      await operation(index);
      latencies.push(performance.now() - begun);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { count: next, seconds: (performance.now() - started) / 1000 };
}

const median = (values: number[]) =>
  quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  );

function figures(latencies: number[], rates: number[]): Figures {
  const sorted = [...latencies].sort((a, b) => a - b);
  const sortedRates = [...rates].sort((a, b) => a - b);
  return {
    perSecond: quantile(sortedRates, 0.5),
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
  };
}

/**
 * Runs the two subjects one operation each in turn for `durationMs` (the first chosen by a coin), numbering
 * operations from `first`; pushes each one's latency in ms and returns each subject's rate: operations over
 * the time spent in them. Operations side by side meet the same bursts of other work on a shared machine,
 * so the ratio of the two rates holds still where separate time slices swing it.
 */
async function runAlternating(
  subjects: Operation[],
  durationMs: number,
  first: number,
  latencies: number[][],
): Promise<{ count: number; rates: number[] }> {
  const counts = [0, 0];
  const busy = [0, 0];
  const start = Math.random() < 0.5 ? 0 : 1;
  let next = 0;
  const deadline = performance.now() + durationMs;
  while (performance.now() < deadline) {
    for (let offset = 0; offset < 2; offset++) {
      const which = (start + offset) % 2;
      const begun = performance.now();
      await subjects[which]!(first + next++);
      const took = performance.now() - begun;
      latencies[which]!.push(took);
      counts[which]! += 1;
      busy[which]! += took;
    }
  }
  return { count: next, rates: counts.map((count, which) => count / (busy[which]! / 1000)) };
}

/**
 * Measures one pair: a warm-up round, then `rounds` rounds. One at a time (`concurrency` 1), driver and raw
 * take turns operation by operation for 2 × `roundMs`; at higher concurrency each runs for `roundMs` in
 * an order chosen by a coin. The ratio is the median of the rounds' own ratios: each round compares the
 * driver with the raw client under the same conditions, so a burst of other work on a shared machine bends
 * one round's ratio, not the result (comparing the two subjects' separate medians let such bursts swing an
 * A/A run, raw against raw, by ±20-40%).
 */
async function measurePair(
  pair: Pair,
  rounds: number,
  roundMs: number,
): Promise<{ driver: Figures; baseline: Figures; ratio: number }> {
  const subjects = [pair.driver, pair.baseline];
  const latencies: number[][] = [[], []];
  const rates: number[][] = [[], []];
  const ratios: number[] = [];
  let index = 0;
  for (let round = -1; round < rounds; round++) {
    const roundLatencies: number[][] = [[], []];
    let roundRates: number[];
    if (pair.concurrency === 1) {
      const { count, rates: both } = await runAlternating(subjects, 2 * roundMs, index, roundLatencies);
      index += count;
      roundRates = both;
    } else {
      roundRates = [0, 0];
      const first = Math.random() < 0.5 ? 0 : 1;
      for (let offset = 0; offset < 2; offset++) {
        const which = (first + offset) % 2;
        const { count, seconds } = await runFor(
          subjects[which]!,
          roundMs,
          pair.concurrency,
          index,
          roundLatencies[which]!,
        );
        index += count;
        roundRates[which] = count / seconds;
      }
    }
    if (round < 0) continue;
    for (const which of [0, 1]) {
      rates[which]!.push(roundRates[which]!);
      latencies[which]!.push(...roundLatencies[which]!);
    }
    ratios.push(roundRates[0]! / roundRates[1]!);
  }
  return {
    driver: figures(latencies[0]!, rates[0]!),
    baseline: figures(latencies[1]!, rates[1]!),
    ratio: median(ratios),
  };
}

const rate = (value: number) => (value >= 100 ? Math.round(value).toString() : value.toFixed(1));
const milliseconds = (value: number) => (value >= 10 ? value.toFixed(1) : value.toFixed(2));

/** Runs every backend's pairs and returns the rows and the printed table. */
export async function run(options: StorageBenchOptions = {}): Promise<StorageBenchResult> {
  const rounds = options.rounds ?? 40;
  const rows: StorageBenchRow[] = [];
  const roundMsOf = new Map<string, number>();
  const makers: Record<BackendName, () => Promise<Backend>> = {
    flatfile: flatfileBackend,
    redis: redisBackend,
    s3: () => s3Backend(s3rverServer),
    's3-moto': () => s3Backend(motoServer),
  };
  for (const name of options.backends ?? DEFAULT_BACKENDS) {
    const backend = await makers[name]();
    try {
      for (const pair of backend.pairs) {
        const roundMs = options.roundMs ?? backend.roundMs;
        const { driver, baseline, ratio } = await measurePair(pair, rounds, roundMs);
        roundMsOf.set(backend.name, roundMs);
        rows.push({
          backend: backend.name,
          operation: pair.operation,
          raw: pair.raw,
          driver,
          baseline,
          ratio,
        });
      }
    } finally {
      await backend.close();
    }
  }
  const table = formatTable(
    [
      'backend',
      'operation',
      'driver ops/s',
      'p50 ms',
      'p99 ms',
      'raw client',
      'raw ops/s',
      'p50 ms',
      'p99 ms',
      'ratio',
    ],
    rows.map((row) => [
      row.backend,
      row.operation,
      rate(row.driver.perSecond),
      milliseconds(row.driver.p50Ms),
      milliseconds(row.driver.p99Ms),
      row.raw,
      rate(row.baseline.perSecond),
      milliseconds(row.baseline.p50Ms),
      milliseconds(row.baseline.p99Ms),
      `${row.ratio.toFixed(2)}×`,
    ]),
  );
  return {
    rows,
    table: [
      table,
      '',
      `ratio = median over ${rounds} rounds of driver ops/s ÷ raw ops/s in that round (goal ≥ 0.80×), after a warm-up round.`,
      `One at a time, driver and raw take turns operation by operation for 2 × the round time; ×${CONCURRENT}, each runs`,
      `the round time, in an order chosen by a coin. Round time: ${[...roundMsOf].map(([name, ms]) => `${ms} ms (${name})`).join(', ')}.`,
      'ops/s: median of the rounds (one at a time: operations ÷ time spent in them).',
      'Latency percentiles are per operation; in the ×32 rows an operation waits for the ones ahead of it.',
    ].join('\n'),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const started = performance.now();
  // `npx node bench/storage/index.ts redis s3` measures only those backends.
  const backends = process.argv
    .slice(2)
    .filter((name): name is BackendName => [...DEFAULT_BACKENDS, 's3-moto'].includes(name));
  const result = await run(backends.length > 0 ? { backends } : {});
  console.log(result.table);
  console.log(`(${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
