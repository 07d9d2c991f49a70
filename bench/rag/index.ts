/**
 * Dense retrieval of the rag module, measured:
 *
 * 1. Ingest throughput in chunks/s over Cranfield 1400: chunking + BM25 indexing; and, when the tiny
 *    local GGUF model is there, chunking + BM25 + embedding (node-llama-cpp, one thread) + the vector
 *    index. stories260K is a 64-dimension toy: its row shows the pipeline's overhead, not a real
 *    embedding model's speed (that is the model's own figure, on its own hardware).
 * 2. The vector index at 10k and 100k vectors of 384 dimensions (the size of MiniLM/bge-small
 *    embeddings): synthetic, clustered Gaussian data — 100 centres drawn from N(0, 1), each vector a
 *    centre plus N(0, 1) noise, scaled to unit length; queries are fresh draws from the same mixture (so
 *    near neighbours exist, as with real embeddings, unlike uniform noise where every vector is about as
 *    far as any other). For each system: build time, query p50/p99 over 200 queries (one at a time,
 *    after a warm-up), recall@10 against exact search, and what the built structure keeps in memory (V8
 *    heap + buffers, and the resident set, where native memory shows; both after a full collection).
 *    Systems: exact brute force (a typed-array dot-product scan, parley's own fallback), parley's index
 *    (usearch HNSW, f16 graph, M 16, ef_construction 64, ef 128, candidates rescored in float32; filled
 *    with addMany in batches of 256, as embedding batches arrive), and
 *    Orama 3 (a library a user might pick: its vector search is a flat scan).
 * 3. Persistence at 10k and 100k: saving embeddings.npy + index.json + ann.usearch, loading them with the stored
 *    graph, and loading while rebuilding the graph from the embeddings (what a load without the graph
 *    file would cost).
 *
 * Run: `npx node bench/rag/index.ts` (or `npm run bench -- rag`); `--quick` runs 10k only.
 */
import { existsSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { create, insertMultiple, search } from '@orama/orama';
import { createEmbeddingRegistry } from '../../src/llm/embeddings.ts';
import { DEFAULT_ANN } from '../../src/modules/rag/ann.ts';
import { chunkDocument, DEFAULT_CHUNKING } from '../../src/modules/rag/chunker.ts';
import { setDocumentVectors } from '../../src/modules/rag/embed-chunks.ts';
import { createVectorIndex, loadVectorIndex, type VectorIndex } from '../../src/modules/rag/vectors.ts';
import { createBm25Index } from '../../src/retrieval/bm25.ts';
import { createMemoryStorage } from '../../src/storage/drivers/memory.ts';
import { defaultCranfieldDir, documentText, loadCranfield } from '../rag-eval/cranfield.ts';
import { quantile } from '../rag-eval/metrics.ts';

const DIMENSION = 384;
const QUERIES = 200;
const K = 10;
/** Chunks per addMany call: an embedding batch's worth. */
const BATCH = 256;
const MODEL = 'synthetic:clustered-384';
const repoRoot = join(import.meta.dirname, '../..');
const tinyModel = join(repoRoot, '../shared/models/stories260K.gguf');

/** Seeded uniform numbers (mulberry32). */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let mixed = Math.imul(state ^ (state >>> 15), 1 | state);
    mixed = (mixed + Math.imul(mixed ^ (mixed >>> 7), 61 | mixed)) ^ mixed;
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` unit vectors around 100 Gaussian centres, back to back in one Float32Array. */
function clusteredMatrix(count: number, seed: number, centresSeed = 7): Float32Array {
  const centreRandom = random(centresSeed);
  const gaussianFrom = (next: () => number) => () =>
    Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  const centreGaussian = gaussianFrom(centreRandom);
  const centres = Array.from({ length: 100 }, () => Float32Array.from({ length: DIMENSION }, centreGaussian));
  const next = random(seed);
  const gaussian = gaussianFrom(next);
  const matrix = new Float32Array(count * DIMENSION);
  for (let row = 0; row < count; row++) {
    const centre = centres[Math.floor(next() * centres.length)]!;
    let squares = 0;
    const offset = row * DIMENSION;
    for (let column = 0; column < DIMENSION; column++) {
      const value = centre[column]! + gaussian();
      matrix[offset + column] = value;
      squares += value * value;
    }
    const scale = 1 / Math.sqrt(squares);
    for (let column = 0; column < DIMENSION; column++) matrix[offset + column]! *= scale;
  }
  return matrix;
}

const rowOf = (matrix: Float32Array, row: number) => matrix.subarray(row * DIMENSION, (row + 1) * DIMENSION);

/** Exact top-K row numbers by dot product (the vectors are unit length, so by cosine). */
function exactTop(matrix: Float32Array, count: number, query: Float32Array): number[] {
  const best: Array<[number, number]> = [];
  for (let row = 0; row < count; row++) {
    let sum = 0;
    const offset = row * DIMENSION;
    for (let column = 0; column < DIMENSION; column++) sum += query[column]! * matrix[offset + column]!;
    if (best.length < K || sum > best[best.length - 1]![1]) {
      best.push([row, sum]);
      best.sort((left, right) => right[1] - left[1]);
      if (best.length > K) best.pop();
    }
  }
  return best.map(([row]) => row);
}

// A collection before each reading, so the figures are what a structure keeps, not garbage.
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

/** Memory now, after a full collection: V8's heap plus buffers, and the process's resident set. */
function memoryNow(): { heap: number; resident: number } {
  collectGarbage();
  const usage = process.memoryUsage();
  return {
    heap: (usage.heapUsed + usage.external + usage.arrayBuffers) / 2 ** 20,
    resident: usage.rss / 2 ** 20,
  };
}

function memoryGrowth(before: { heap: number; resident: number }): { heap: number; resident: number } {
  const after = memoryNow();
  return { heap: after.heap - before.heap, resident: after.resident - before.resident };
}

interface AnnRow {
  vectors: number;
  system: string;
  buildSeconds: number;
  p50: number;
  p99: number;
  recall: number;
  /** Growth of V8 heap + buffers, and of the resident set (native memory shows only there). */
  memory: { heap: number; resident: number } | undefined;
  queries: number;
}

/** Times `query` over the queries (after a warm-up) and scores recall@10 against the truth. */
function measureQueries(
  queries: Float32Array,
  count: number,
  truth: number[][],
  query: (vector: Float32Array) => number[],
): { p50: number; p99: number; recall: number } {
  for (let position = 0; position < Math.min(20, count); position++) query(rowOf(queries, position));
  const latencies: number[] = [];
  let found = 0;
  for (let position = 0; position < count; position++) {
    const started = performance.now();
    const rows = query(rowOf(queries, position));
    latencies.push(performance.now() - started);
    const expected = new Set(truth[position]);
    found += rows.slice(0, K).filter((row) => expected.has(row)).length;
  }
  return { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), recall: found / (count * K) };
}

async function annAt(vectors: number, results: AnnRow[], persistence: string[]): Promise<void> {
  const generated = performance.now();
  const data = clusteredMatrix(vectors, 1);
  const queries = clusteredMatrix(QUERIES, 2);
  const truthStarted = performance.now();
  const truth = Array.from({ length: QUERIES }, (_, position) =>
    exactTop(data, vectors, rowOf(queries, position)),
  );
  const exactMs = (performance.now() - truthStarted) / QUERIES;
  console.error(
    `  ${vectors} vectors: data ${((truthStarted - generated) / 1000).toFixed(1)} s, ground truth ${((exactMs * QUERIES) / 1000).toFixed(1)} s`,
  );

  // parley's index, built the way ingest and reindex fill it: batches of embedded chunks (addMany).
  let memoryBefore = memoryNow();
  let started = performance.now();
  const index = createVectorIndex({ dimension: DIMENSION, model: MODEL });
  for (let start = 0; start < vectors; start += BATCH) {
    const entries = [];
    for (let row = start; row < Math.min(vectors, start + BATCH); row++) {
      entries.push({ chunkId: `c${row}`, docId: `d${row >> 4}`, vector: rowOf(data, row) });
    }
    index.addMany(entries);
  }
  const parleyBuild = (performance.now() - started) / 1000;
  const parleyMemory = memoryGrowth(memoryBefore);
  const toRow = (hits: ReturnType<VectorIndex['search']>) => hits.map((hit) => Number(hit.chunkId.slice(1)));
  const exact = measureQueries(queries, QUERIES, truth, (query) =>
    toRow(index.search(query, { topK: K, exact: true })),
  );
  results.push({
    vectors,
    system: 'exact scan (typed arrays)',
    buildSeconds: 0,
    memory: undefined,
    queries: QUERIES,
    ...exact,
  });
  const parley = measureQueries(queries, QUERIES, truth, (query) => toRow(index.search(query, { topK: K })));
  results.push({
    vectors,
    system: `parley: usearch HNSW (${DEFAULT_ANN.quantization}, M ${DEFAULT_ANN.connectivity}, ef ${DEFAULT_ANN.expansionSearch})`,
    buildSeconds: parleyBuild,
    memory: parleyMemory,
    queries: QUERIES,
    ...parley,
  });
  console.error(`  parley: built in ${parleyBuild.toFixed(1)} s, recall ${parley.recall.toFixed(4)}`);

  // Orama: documents with a vector[384] field; its vector search scans every vector.
  memoryBefore = memoryNow();
  started = performance.now();
  const database = create({ schema: { embedding: `vector[${DIMENSION}]` } as const });
  const documents = [];
  for (let row = 0; row < vectors; row++)
    documents.push({ id: String(row), embedding: Array.from(rowOf(data, row)) });
  await insertMultiple(database, documents, 1000);
  const oramaBuild = (performance.now() - started) / 1000;
  const oramaMemory = memoryGrowth(memoryBefore);
  // Fewer queries at 100k: each scans everything (about as long as the exact scan, times several).
  const oramaQueries = vectors >= 100_000 ? 50 : QUERIES;
  const orama = measureQueries(queries, oramaQueries, truth, (query) => {
    const found = search(database, {
      mode: 'vector',
      vector: { value: Array.from(query), property: 'embedding' },
      similarity: -1,
      limit: K,
      includeVectors: false,
    }) as { hits: Array<{ id: string }> };
    return found.hits.map((hit) => Number(hit.id));
  });
  results.push({
    vectors,
    system: 'Orama 3.1.18 (flat scan)',
    buildSeconds: oramaBuild,
    memory: oramaMemory,
    queries: oramaQueries,
    ...orama,
  });

  // Persistence last, so the memory figures above are not blurred by the copies it makes.
  const storage = createMemoryStorage();
  started = performance.now();
  await index.save(storage, 'bench');
  const saveSeconds = (performance.now() - started) / 1000;
  const sizes = await Promise.all(
    ['embeddings.npy', 'index.json', 'ann.usearch'].map(async (file) => {
      const bytes = await storage.read(`vectors/bench/${file}`);
      return `${file} ${((bytes?.length ?? 0) / 2 ** 20).toFixed(1)} MB`;
    }),
  );
  started = performance.now();
  const withGraph = await loadVectorIndex(storage, 'bench', { model: MODEL });
  const loadSeconds = (performance.now() - started) / 1000;
  const reloaded = measureQueries(queries, QUERIES, truth, (query) =>
    toRow(withGraph!.search(query, { topK: K })),
  );
  await storage.delete('vectors/bench/ann.usearch');
  started = performance.now();
  const rebuilt = await loadVectorIndex(storage, 'bench', { model: MODEL });
  const rebuildSeconds = (performance.now() - started) / 1000;
  const afterRebuild = measureQueries(queries, QUERIES, truth, (query) =>
    toRow(rebuilt!.search(query, { topK: K })),
  );
  persistence.push(
    `${vectors} vectors (memory storage, so serialisation rather than disk): save ${saveSeconds.toFixed(2)} s ` +
      `(${sizes.join(', ')}); load with the stored graph ${loadSeconds.toFixed(2)} s (recall@10 after ` +
      `${reloaded.recall.toFixed(4)}); load rebuilding the graph from embeddings.npy ${rebuildSeconds.toFixed(1)} s ` +
      `(recall@10 after ${afterRebuild.recall.toFixed(4)})`,
  );
}

interface IngestRow {
  pipeline: string;
  chunks: number;
  seconds: number;
}

async function ingest(): Promise<IngestRow[]> {
  const collection = await loadCranfield(defaultCranfieldDir());
  const rows: IngestRow[] = [];
  // Three passes (fresh index each), the best kept: the first pays for the JIT.
  let best: IngestRow | undefined;
  for (let pass = 0; pass < 3; pass++) {
    const started = performance.now();
    const bm25 = createBm25Index();
    let chunks = 0;
    for (const document of collection.documents) {
      for (const chunk of chunkDocument({
        docId: document.id,
        text: documentText(document),
        format: 'text',
      })) {
        // As rag indexes a chunk: with its document's title in the title field.
        bm25.add({ ...chunk, title: document.title }, { ownerId: 'bench' });
        chunks++;
      }
    }
    const seconds = (performance.now() - started) / 1000;
    if (best === undefined || seconds < best.seconds) {
      best = { pipeline: `chunk + BM25 (${DEFAULT_CHUNKING.chunkSize}-char chunks)`, chunks, seconds };
    }
  }
  rows.push(best!);

  const runtime = await import('node-llama-cpp').then(
    () => true,
    () => false,
  );
  if (!runtime || !existsSync(tinyModel)) {
    console.error('  (no embedding row: node-llama-cpp or ../shared/models/stories260K.gguf is missing)');
    return rows;
  }
  const registry = createEmbeddingRegistry(
    { providers: { local: { models: { tiny: { path: tinyModel, max_threads: 1, context_size: 512 } } } } },
    { env: {} },
  );
  try {
    const embedder = registry.embedder('local:tiny');
    const dimension = await embedder.dimension();
    const subset = collection.documents.slice(0, 150);
    const started = performance.now();
    const bm25 = createBm25Index();
    const index = createVectorIndex({ dimension, model: embedder.name });
    let chunks = 0;
    for (const document of subset) {
      const documentChunks = chunkDocument({
        docId: document.id,
        text: documentText(document),
        format: 'text',
      });
      for (const chunk of documentChunks) bm25.add({ ...chunk, title: document.title }, { ownerId: 'bench' });
      await setDocumentVectors(index, embedder, document.id, documentChunks);
      chunks += documentChunks.length;
    }
    rows.push({
      pipeline: `chunk + BM25 + embed (local GGUF stories260K, ${dimension}-d, 1 thread) + vector index`,
      chunks,
      seconds: (performance.now() - started) / 1000,
    });
  } finally {
    await registry.dispose();
  }
  return rows;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((_, column) =>
    Math.max(...[header, ...rows].map((cells) => (cells[column] ?? '').length)),
  );
  const line = (cells: string[]) =>
    `| ${cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(' | ')} |`;
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

/** Runs the benchmark and returns the printed tables. */
export async function run(options: { quick?: boolean } = {}): Promise<string> {
  console.error('ingest…');
  const ingestRows = await ingest();
  const annRows: AnnRow[] = [];
  const persistence: string[] = [];
  for (const vectors of options.quick === true ? [10_000] : [10_000, 100_000]) {
    console.error(`ANN at ${vectors}…`);
    await annAt(vectors, annRows, persistence);
  }
  return [
    'Ingest, Cranfield 1400 (one owner, in memory):',
    table(
      ['pipeline', 'chunks', 'seconds', 'chunks/s'],
      ingestRows.map((row) => [
        row.pipeline,
        String(row.chunks),
        row.seconds.toFixed(2),
        (row.chunks / row.seconds).toFixed(0),
      ]),
    ),
    '',
    `Vector search, ${DIMENSION}-d clustered Gaussian vectors (100 centres), top ${K}, one query at a time:`,
    table(
      ['vectors', 'system', 'build', 'p50', 'p99', `recall@${K}`, 'heap+buffers', 'RSS', 'queries'],
      annRows.map((row) => [
        row.vectors.toLocaleString('en'),
        row.system,
        row.buildSeconds === 0 ? '—' : `${row.buildSeconds.toFixed(1)} s`,
        `${row.p50.toFixed(2)} ms`,
        `${row.p99.toFixed(2)} ms`,
        row.recall.toFixed(4),
        row.memory === undefined ? '—' : `+${row.memory.heap.toFixed(0)} MB`,
        row.memory === undefined ? '—' : `+${row.memory.resident.toFixed(0)} MB`,
        String(row.queries),
      ]),
    ),
    '',
    ...(persistence.length > 0 ? ['Persistence:', ...persistence.map((line) => `- ${line}`)] : []),
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' } } });
  const started = performance.now();
  console.log(await run({ quick: values.quick === true }));
  const load = loadavg().map((value) => value.toFixed(1));
  console.log(
    `(bench/rag: ${((performance.now() - started) / 1000).toFixed(0)} s on ${process.platform}/${process.arch}, ` +
      `${availableParallelism()} cores, load average at the end ${load.join(' / ')})`,
  );
}
