/**
 * The storage quota's cost (src/storage/quota.ts), in one run:
 *
 * - per change, once the user is counted: the memory driver bare beside the same driver under the quota
 *   wrapper (so the figure is the wrapper's CPU, not a disk's), rounds alternating, on the keys a chat
 *   turn changes — an append to the session log, a rewrite of its metadata — and a read (which the
 *   wrapper passes straight through); median ns per operation over the rounds, and the difference;
 * - a flatfile append (fsynced) bare and under the quota, for scale;
 * - the first change of a user after a start: their count, a listing and one stat per key, on flatfile,
 *   for a user with 10, 100 and 1,000 stored keys.
 *
 * Run: `npx node bench/storage-quota/index.ts` (about half a minute; `--quick` for a few seconds).
 */

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFlatfileStorage } from '../../src/storage/drivers/flatfile.ts';
import { createMemoryStorage } from '../../src/storage/drivers/memory.ts';
import { quotaStorage } from '../../src/storage/quota.ts';
import { createSensitiveKeyMatcher, userKeyPrefixes } from '../../src/storage/sensitive-keys.ts';
import type { Storage } from '../../src/storage/types.ts';
import { formatTable, quantile } from '../report.ts';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 3 : 9;
const OPERATIONS = quick ? 5_000 : 40_000;
const USER = '0190a1b2-0000-7000-8000-00000000a11c';
const defaults = JSON.parse(await readFile(new URL('../../config/default.json', import.meta.url), 'utf8'));
const PATTERNS: string[] = defaults.security.encryption.sensitive;
const line = Buffer.from(`${JSON.stringify({ role: 'user', content: 'x'.repeat(200) })}\n`);
const metadata = Buffer.from(JSON.stringify({ title: 'a chat', updatedAt: new Date().toISOString() }));

function withQuota(storage: Storage): Storage {
  return quotaStorage(storage, {
    limitBytes: Number.MAX_SAFE_INTEGER,
    owners: createSensitiveKeyMatcher(PATTERNS),
    prefixesOf: (userId) => userKeyPrefixes(PATTERNS, userId),
    maxUsers: 10_000,
  });
}

type Operation = { name: string; run: (storage: Storage, index: number) => Promise<unknown> };
const operations: Operation[] = [
  { name: 'append a log line', run: (storage) => storage.append(`sessions/${USER}/s1/messages.jsonl`, line) },
  {
    name: 'rewrite metadata',
    run: (storage) => storage.write(`sessions/${USER}/s1/metadata.json`, metadata),
  },
  { name: 'read metadata', run: (storage) => storage.read(`sessions/${USER}/s1/metadata.json`) },
  { name: 'write a key of no user', run: (storage) => storage.write('users/by-name/alice.json', metadata) },
];

async function nsPerOperation(storage: Storage, operation: Operation, count: number): Promise<number> {
  const started = process.hrtime.bigint();
  for (let index = 0; index < count; index++) await operation.run(storage, index);
  return Number(process.hrtime.bigint() - started) / count;
}

const rows: string[][] = [];
for (const operation of operations) {
  const bare: number[] = [];
  const counted: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Fresh storages each round (a log growing for ever would measure the memory driver's joins).
    const plain = createMemoryStorage();
    const quota = withQuota(createMemoryStorage());
    await operation.run(quota, 0); // the user is counted once, before the timing
    await plain.write(`sessions/${USER}/s1/metadata.json`, metadata);
    await quota.write(`sessions/${USER}/s1/metadata.json`, metadata);
    const order = round % 2 === 0 ? ([plain, quota] as const) : ([quota, plain] as const);
    for (const storage of order) {
      const ns = await nsPerOperation(storage, operation, OPERATIONS);
      (storage === plain ? bare : counted).push(ns);
    }
  }
  bare.sort((a, b) => a - b);
  counted.sort((a, b) => a - b);
  const median = (values: number[]) => quantile(values, 0.5);
  rows.push([
    `memory: ${operation.name}`,
    median(bare).toFixed(0),
    median(counted).toFixed(0),
    `+${(median(counted) - median(bare)).toFixed(0)}`,
  ]);
}

const root = await mkdtemp(join(tmpdir(), 'parley-bench-quota-'));
try {
  const appends = quick ? 100 : 400;
  const plain = createFlatfileStorage({ root: join(root, 'plain') });
  const quota = withQuota(createFlatfileStorage({ root: join(root, 'quota') }));
  const operation = operations[0]!;
  await operation.run(quota, 0);
  const bare: number[] = [];
  const counted: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    bare.push(await nsPerOperation(plain, operation, appends));
    counted.push(await nsPerOperation(quota, operation, appends));
  }
  bare.sort((a, b) => a - b);
  counted.sort((a, b) => a - b);
  const [b, c] = [quantile(bare, 0.5), quantile(counted, 0.5)];
  rows.push([
    'flatfile: append a log line (fsync)',
    b.toFixed(0),
    c.toFixed(0),
    `${c - b >= 0 ? '+' : ''}${(c - b).toFixed(0)}`,
  ]);
  await plain.close();
  await quota.close();

  console.log(formatTable(['operation', 'bare ns/op', 'under the quota ns/op', 'difference'], rows));

  const countRows: string[][] = [];
  for (const keys of [10, 100, 1000]) {
    const folder = join(root, `count-${keys}`);
    const driver = createFlatfileStorage({ root: folder });
    for (let index = 0; index < keys; index++) {
      await driver.append(
        `sessions/${USER}/s${Math.floor(index / 2)}/${index % 2 === 0 ? 'messages.jsonl' : 'm.json'}`,
        line,
      );
    }
    const timings: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const started = performance.now();
      await withQuota(driver).write(`sessions/${USER}/new/metadata.json`, metadata);
      timings.push(performance.now() - started);
      await driver.delete(`sessions/${USER}/new/metadata.json`);
    }
    timings.sort((a, b2) => a - b2);
    countRows.push([String(keys), quantile(timings, 0.5).toFixed(2)]);
    await driver.close();
  }
  console.log('\nThe first change of a user after a start (their count), flatfile:');
  console.log(formatTable(['keys of the user', 'first write, ms (median)'], countRows));
} finally {
  await rm(root, { recursive: true, force: true });
}
