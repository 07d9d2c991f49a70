/**
 * What keeping every node's copy of an owner's index current costs, per storage backend: two rag services
 * over one storage stand for two nodes. Node one ingests part of Cranfield as one owner; node two answers.
 *
 * - query, log checked (`index.version_check_ms: 0`, the default: one small read of the owner's change
 *   log before every request) beside the same query without the check (a node that trusts its copy for
 *   an hour) — both loaded and warm, asked in alternating rounds, so the difference is what the check costs;
 * - node two's first query after node one added a document (the log has a new line: the new document is
 *   read), beside its warm query;
 * - node one's add of a small document (two files and one log line, each durable).
 *
 * Backends: flatfile under the read cache (one node's default), Redis (127.0.0.1:6379 or
 * `CHAT_BENCH_REDIS_URL`, keys under a prefix of this run, deleted after), S3 on s3rver (a child process).
 * Run: `npx node bench/rag-nodes/index.ts [flatfile] [redis] [s3]` (or `npm run bench -- rag-nodes`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import defaults from '../../src/modules/rag/config.json' with { type: 'json' };
import { createRagService, type RagService } from '../../src/modules/rag/rag-service.ts';
import type { RagConfig } from '../../src/modules/rag/types.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { cacheStorage } from '../../src/storage/cached.ts';
import { createFlatfileStorage } from '../../src/storage/drivers/flatfile.ts';
import { createRedisStorage } from '../../src/storage/drivers/redis.ts';
import { createS3Storage } from '../../src/storage/drivers/s3.ts';
import { scopeStorage } from '../../src/storage/scoped.ts';
import type { Storage } from '../../src/storage/types.ts';
import { deleteRedisPrefix } from '../../test/helpers/cluster-services.ts';
import { s3rverStorageOptions } from '../../test/helpers/s3rver.ts';
import { documentText, loadCranfield } from '../rag-eval/cranfield.ts';
import { formatTable, quantile } from '../report.ts';

const OWNER = 'bench-owner';
const DOCUMENTS = 300;
const ROUNDS = 4;
const CHANGES = 20;
const log = createLogger({ level: 'silent' });
const { enabled: _enabled, ...base } = defaults;

interface Backend {
  name: string;
  storage: Storage;
  close(): Promise<void>;
}

function node(storage: Storage, versionCheckMs: number): RagService {
  const config = { ...base, index: { ...base.index, version_check_ms: versionCheckMs } } as RagConfig;
  return createRagService({ storage: scopeStorage(storage, 'rag'), config, log });
}

const sorted = (values: number[]) => [...values].sort((left, right) => left - right);
const ms = (value: number) => `${value.toFixed(3)} ms`;

async function flatfile(): Promise<Backend> {
  const root = await mkdtemp(join(tmpdir(), 'parley-bench-rag-nodes-'));
  const storage = cacheStorage(createFlatfileStorage({ root }), { ttlMs: 300_000, maxEntries: 1000 });
  return {
    name: 'flatfile + read cache (one node)',
    storage,
    async close() {
      await storage.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

async function redis(): Promise<Backend> {
  const url = process.env.CHAT_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const prefix = `parley-bench-rag-nodes-${randomBytes(4).toString('hex')}:`;
  const storage = await createRedisStorage({ url, prefix });
  return {
    name: 'redis (no cache, as on several nodes)',
    storage,
    async close() {
      await storage.close();
      await deleteRedisPrefix(url, prefix);
    },
  };
}

async function s3(): Promise<Backend> {
  // In a child process, so s3rver's own work is not counted as parley's.
  const child: ChildProcess = spawn(
    process.execPath,
    [join(import.meta.dirname, '../../test/helpers/s3rver.ts'), 'bench'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const first = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', () => reject(new Error('s3rver exited before it listened')));
  });
  const { endpoint, bucket } = JSON.parse(first) as { endpoint: string; bucket: string };
  const storage = await createS3Storage({ ...s3rverStorageOptions(endpoint, bucket), prefix: 'rag-nodes/' });
  return {
    name: 's3 on s3rver (no cache)',
    storage,
    async close() {
      await storage.close();
      child.kill('SIGTERM');
    },
  };
}

const collection = await loadCranfield();
const requested = process.argv.slice(2).filter((argument) => !argument.startsWith('-'));
const makers: Record<string, () => Promise<Backend>> = { flatfile, redis, s3 };
const rows: string[][] = [];

for (const name of requested.length > 0 ? requested : Object.keys(makers)) {
  const backend = await makers[name]!();
  try {
    const writer = node(backend.storage, 0);
    const documents = collection.documents
      .filter((document) => document.body.trim() !== '')
      .slice(0, DOCUMENTS);
    for (const document of documents) {
      await writer.api.addDocument({
        ownerId: OWNER,
        filename: `cran-${document.id}.txt`,
        content: documentText(document),
        ...(document.title === '' ? {} : { title: document.title }),
      });
    }
    await writer.flush();
    const checked = node(backend.storage, 0);
    const unchecked = node(backend.storage, 3_600_000);
    const latencies = { checked: [] as number[], unchecked: [] as number[] };
    for (const reader of [checked, unchecked]) await reader.api.query({ ownerId: OWNER, query: 'warm up' });
    for (let round = 0; round < ROUNDS; round++) {
      const order =
        round % 2 === 0 ? (['checked', 'unchecked'] as const) : (['unchecked', 'checked'] as const);
      for (const which of order) {
        const reader = which === 'checked' ? checked : unchecked;
        for (const query of collection.queries) {
          const started = performance.now();
          await reader.api.query({ ownerId: OWNER, query: query.text, topK: 10 });
          latencies[which].push(performance.now() - started);
        }
      }
    }
    const afterChange: number[] = [];
    const adds: number[] = [];
    for (let change = 0; change < CHANGES; change++) {
      const added = performance.now();
      await writer.api.addDocument({
        ownerId: OWNER,
        filename: `change-${change}.md`,
        content: `# Change ${change}\n\nA boundary layer note written on another node, number ${change}.\n`,
      });
      adds.push(performance.now() - added);
      const started = performance.now();
      await checked.api.query({ ownerId: OWNER, query: 'boundary layer transition', topK: 10 });
      afterChange.push(performance.now() - started);
    }
    const checkedSorted = sorted(latencies.checked);
    const uncheckedSorted = sorted(latencies.unchecked);
    rows.push([
      backend.name,
      `${ms(quantile(checkedSorted, 0.5))} / ${ms(quantile(checkedSorted, 0.95))}`,
      `${ms(quantile(uncheckedSorted, 0.5))} / ${ms(quantile(uncheckedSorted, 0.95))}`,
      ms(quantile(checkedSorted, 0.5) - quantile(uncheckedSorted, 0.5)),
      ms(quantile(sorted(afterChange), 0.5)),
      ms(quantile(sorted(adds), 0.5)),
    ]);
    for (const service of [writer, checked, unchecked]) await service.dispose();
  } finally {
    await backend.close();
  }
}

console.log(
  `rag on several nodes: ${DOCUMENTS} Cranfield abstracts as one owner; ${collection.queries.length} queries × ` +
    `${ROUNDS} rounds per side; ${CHANGES} changes on node one, each followed by a query on node two`,
);
console.log(
  formatTable(
    [
      'storage',
      'query p50 / p95, log checked',
      'same, not checked',
      'check costs (p50)',
      'first query after another node’s add (p50)',
      'add (p50)',
    ],
    rows,
  ),
);
