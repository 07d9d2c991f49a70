/**
 * The rag module end to end on flat files: ingest throughput (parse, chunk, write, log, index) for the
 * 1400 Cranfield abstracts as one owner, then what an owner's first query costs after a restart — loading
 * the owner's index snapshot (what rag does) side by side with rebuilding it from the stored documents
 * (what it would cost without snapshots) — and warm query latency through the module's api (BM25 plus
 * reading the chunk texts back for citations).
 *
 * Run: `npx node bench/rag-ingest/index.ts` (or `npm run bench -- rag-ingest`).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import defaults from '../../src/modules/rag/config.json' with { type: 'json' };
import { createRagService, type RagService } from '../../src/modules/rag/rag-service.ts';
import type { RagConfig } from '../../src/modules/rag/types.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { cacheStorage } from '../../src/storage/cached.ts';
import { createFlatfileStorage } from '../../src/storage/drivers/flatfile.ts';
import { scopeStorage } from '../../src/storage/scoped.ts';
import type { Storage } from '../../src/storage/types.ts';
import { documentText, loadCranfield } from '../rag-eval/cranfield.ts';
import { quantile } from '../rag-eval/metrics.ts';

const OWNER = 'bench-owner';
const RESTARTS = 5;
const log = createLogger({ level: 'silent' });
const { enabled: _enabled, ...config } = defaults;

/** The storage stack a node runs by default: flat files under the read cache. */
function openStorage(root: string): Storage {
  return cacheStorage(createFlatfileStorage({ root }), { ttlMs: 300_000, maxEntries: 1000 });
}

function service(storage: Storage): RagService {
  return createRagService({ storage: scopeStorage(storage, 'rag'), config: config as RagConfig, log });
}

function milliseconds(start: number): number {
  return performance.now() - start;
}

/** Median of the time `run` takes, each time on a fresh node (new storage stack, new service). */
async function coldFirstQuery(root: string, prepare: () => Promise<void>): Promise<number> {
  const times: number[] = [];
  for (let round = 0; round < RESTARTS; round++) {
    await prepare();
    const storage = openStorage(root);
    const node = service(storage);
    const start = performance.now();
    await node.api.query({ ownerId: OWNER, query: 'boundary layer transition' });
    times.push(milliseconds(start));
    await storage.close();
  }
  return quantile(times, 0.5);
}

const collection = await loadCranfield();
const root = await mkdtemp(join(tmpdir(), 'parley-bench-rag-'));
try {
  const storage = openStorage(root);
  const node = service(storage);
  let chunks = 0;
  let failed = 0;
  const ingestStart = performance.now();
  for (const document of collection.documents) {
    try {
      const result = await node.api.addDocument({
        ownerId: OWNER,
        filename: `cran-${document.id}.txt`,
        content: documentText(document),
        ...(document.title === '' ? {} : { title: document.title }),
      });
      chunks += result.chunks;
    } catch {
      failed++; // two Cranfield abstracts are empty
    }
  }
  const ingestSeconds = milliseconds(ingestStart) / 1000;
  await node.dispose();
  await storage.close();

  const snapshotKey = join(root, 'rag', 'index', 'bm25', `${OWNER}.json`);
  const fromSnapshot = await coldFirstQuery(root, async () => {});
  const rebuilt = await coldFirstQuery(root, async () => {
    // An unreadable snapshot makes rag rebuild the owner from the documents: the no-snapshot alternative.
    await writeFile(snapshotKey, '{ not a snapshot');
  });

  const warmStorage = openStorage(root);
  const warm = service(warmStorage);
  await warm.api.query({ ownerId: OWNER, query: 'warm up' });
  const latencies: number[] = [];
  for (const query of collection.queries) {
    const start = performance.now();
    await warm.api.query({ ownerId: OWNER, query: query.text, topK: 10 });
    latencies.push(milliseconds(start));
  }
  await warm.dispose();
  await warmStorage.close();

  const documents = collection.documents.length - failed;
  console.log(`rag ingest and load, Cranfield 1400 as one owner (${documents} documents, ${chunks} chunks)`);
  console.table([
    {
      measure: 'ingest (flatfile, fsynced log line)',
      value: `${(documents / ingestSeconds).toFixed(0)} docs/s`,
      total: `${ingestSeconds.toFixed(1)} s`,
    },
    {
      measure: 'first query after restart: load snapshot',
      value: `${fromSnapshot.toFixed(0)} ms`,
      total: 'median of 5',
    },
    {
      measure: 'first query after restart: rebuild from documents',
      value: `${rebuilt.toFixed(0)} ms`,
      total: 'median of 5',
    },
    {
      measure: 'warm query, top 10 with texts (mean / p50 / p95)',
      value: `${(latencies.reduce((sum, value) => sum + value, 0) / latencies.length).toFixed(2)} / ${quantile(latencies, 0.5).toFixed(2)} / ${quantile(latencies, 0.95).toFixed(2)} ms`,
      total: `${latencies.length} queries`,
    },
  ]);
} finally {
  await rm(root, { recursive: true, force: true });
}
