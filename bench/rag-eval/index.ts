/**
 * Retrieval quality of the RAG module on Cranfield 1400 (1400 abstracts, 225 queries, graded qrels):
 * nDCG@10, MAP, P@10 and MRR for BM25, for BM25 with RM3 feedback, for BM25 over chunks made by the
 * module's chunker, and for hybrid BM25 + dense (RRF) when an embedder is given — next to the floors the
 * narsil TypeScript BM25 library holds on the same files.
 *
 * Run on its own: `npx node bench/rag-eval/index.ts` (`--k1=… --b=…` to try other BM25 parameters).
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  type Bm25Index,
  type Bm25SearchOptions,
  createBm25Index,
  DEFAULT_BM25,
} from '../../src/modules/rag/bm25.ts';
import { chunkDocument, DEFAULT_CHUNKING } from '../../src/modules/rag/chunker.ts';
import { reciprocalRankFusion } from '../../src/modules/rag/fusion.ts';
import {
  type CranfieldCollection,
  defaultCranfieldDir,
  documentText,
  gradesFor,
  loadCranfield,
} from './cranfield.ts';
import { averagePrecision, mean, ndcgAtK, precisionAtK, quantile, reciprocalRank } from './metrics.ts';

/** Options of one evaluation run. */
export interface RagEvalOptions {
  /** Folder holding cran.all.1400, cran.qry and cranqrel. */
  directory?: string;
  k1?: number;
  b?: number;
  /** Texts → vectors. When given, a hybrid (BM25 + dense, RRF) column is added. */
  embed?: (texts: string[]) => Promise<number[][]>;
}

/** Mean metrics of one retrieval system over the 225 queries. */
export interface SystemResult {
  name: string;
  /** nDCG@10 with gain = grade (trec_eval's ndcg_cut_10). */
  ndcgAt10: number;
  /** nDCG@10 with gain = 2^grade − 1 (the definition behind narsil's floor). */
  ndcgAt10Exponential: number;
  /** MAP over the first 100 results. */
  map: number;
  precisionAt10: number;
  /** MRR over the first 10 results. */
  mrr: number;
  /** Milliseconds to build the index (and to embed, for hybrid). */
  indexMs: number;
  /** Milliseconds per query. */
  queryMs: { mean: number; p50: number; p95: number };
}

/** The result of `run()`: one entry per system, the reference floors, and the printed table. */
export interface RagEvalResult {
  parameters: { k1: number; b: number; chunkSize: number; chunkOverlap: number; depth: number };
  systems: SystemResult[];
  floor: typeof NARSIL_FLOOR;
  table: string;
}

/**
 * The floors of narsil's Cranfield suite: same files, grade = 5 − code, exponential-gain nDCG, MAP over
 * 100 results, MRR over 10 — the definitions our metrics follow.
 */
export const NARSIL_FLOOR = Object.freeze({
  ndcgAt10Exponential: 0.32,
  map: 0.27,
  precisionAt10: 0.21,
  mrr: 0.48,
});

const OWNER = 'cranfield';
/** Results kept per query; MAP is computed over these (narsil uses 100 too). */
const DEPTH = 100;

/** Runs the evaluation and returns the figures and a printable table. */
export async function run(options: RagEvalOptions = {}): Promise<RagEvalResult> {
  const collection = await loadCranfield(options.directory ?? defaultCranfieldDir());
  const k1 = options.k1 ?? DEFAULT_BM25.k1;
  const b = options.b ?? DEFAULT_BM25.b;

  const documents = timed(() => indexDocuments(collection, k1, b));
  const chunks = timed(() => indexChunks(collection, k1, b));
  const search =
    (index: Bm25Index, extra: Partial<Bm25SearchOptions> = {}) =>
    (query: string) =>
      index.search(query, { ownerId: OWNER, topK: DEPTH, ...extra }).map((hit) => hit.docId);

  const bm25 = evaluate('BM25', collection, documents.ms, search(documents.value));
  const systems = [
    bm25.result,
    evaluate('BM25 + RM3', collection, documents.ms, search(documents.value, { feedback: true })).result,
    evaluate(`BM25, ${DEFAULT_CHUNKING.chunkSize}-char chunks`, collection, chunks.ms, (query) =>
      bestDocuments(chunks.value.search(query, { ownerId: OWNER, topK: DEPTH * 3 })),
    ).result,
  ];
  if (options.embed !== undefined)
    systems.push(await evaluateHybrid(collection, bm25.rankings, options.embed));
  const parameters = { k1, b, ...DEFAULT_CHUNKING, depth: DEPTH };
  return { parameters, systems, floor: NARSIL_FLOOR, table: formatTable(systems, parameters) };
}

/** Builds the single-owner index of whole documents (title + abstract) that the figures are about. */
export function indexDocuments(collection: CranfieldCollection, k1: number, b: number): Bm25Index {
  const index = createBm25Index({ k1, b });
  for (const document of collection.documents) {
    index.add({ id: document.id, docId: document.id, text: documentText(document) }, { ownerId: OWNER });
  }
  return index;
}

function indexChunks(collection: CranfieldCollection, k1: number, b: number): Bm25Index {
  const index = createBm25Index({ k1, b });
  for (const document of collection.documents) {
    const chunks = chunkDocument({ docId: document.id, text: documentText(document), format: 'text' });
    for (const chunk of chunks) index.add(chunk, { ownerId: OWNER });
  }
  return index;
}

/** A document ranks by its best chunk. */
function bestDocuments(hits: ReadonlyArray<{ docId: string }>): string[] {
  const documentIds = new Set<string>();
  for (const hit of hits) {
    documentIds.add(hit.docId);
    if (documentIds.size === DEPTH) break;
  }
  return [...documentIds];
}

function timed<Value>(build: () => Value): { value: Value; ms: number } {
  const started = performance.now();
  const value = build();
  return { value, ms: performance.now() - started };
}

/** Runs every query through `rank`, timing each, and scores the rankings. */
export function evaluate(
  name: string,
  collection: CranfieldCollection,
  indexMs: number,
  rank: (query: string) => string[],
): { result: SystemResult; rankings: Map<number, string[]> } {
  const rankings = new Map<number, string[]>();
  const latencies: number[] = [];
  // One untimed pass first, so the latencies are of optimised code rather than of the JIT warming up.
  for (const query of collection.queries) rank(query.text);
  for (const query of collection.queries) {
    const started = performance.now();
    rankings.set(query.id, rank(query.text));
    latencies.push(performance.now() - started);
  }
  return { result: score(name, collection, rankings, indexMs, latencies), rankings };
}

function score(
  name: string,
  collection: CranfieldCollection,
  rankings: Map<number, string[]>,
  indexMs: number,
  latencies: number[],
): SystemResult {
  const per = { linear: [] as number[], exponential: [] as number[], map: [] as number[] };
  const more = { precision: [] as number[], mrr: [] as number[] };
  for (const query of collection.queries) {
    const grades = gradesFor(collection, query.id);
    const ranked = rankings.get(query.id) ?? [];
    per.linear.push(ndcgAtK(ranked, grades, 10, 'linear'));
    per.exponential.push(ndcgAtK(ranked, grades, 10, 'exponential'));
    per.map.push(averagePrecision(ranked.slice(0, DEPTH), grades));
    more.precision.push(precisionAtK(ranked, grades, 10));
    more.mrr.push(reciprocalRank(ranked.slice(0, 10), grades));
  }
  return {
    name,
    ndcgAt10: mean(per.linear),
    ndcgAt10Exponential: mean(per.exponential),
    map: mean(per.map),
    precisionAt10: mean(more.precision),
    mrr: mean(more.mrr),
    indexMs,
    queryMs: { mean: mean(latencies), p50: quantile(latencies, 0.5), p95: quantile(latencies, 0.95) },
  };
}

/** BM25 fused by RRF (k = 60) with an exact cosine ranking of the embeddings. */
async function evaluateHybrid(
  collection: CranfieldCollection,
  bm25Rankings: Map<number, string[]>,
  embed: (texts: string[]) => Promise<number[][]>,
): Promise<SystemResult> {
  const started = performance.now();
  const vectors = (await embed(collection.documents.map(documentText))).map(normalise);
  const indexMs = performance.now() - started;
  const rankings = new Map<number, string[]>();
  const latencies: number[] = [];
  for (const query of collection.queries) {
    const queryStarted = performance.now();
    const [queryVector] = await embed([query.text]);
    const unit = normalise(queryVector ?? []);
    const dense = collection.documents
      .map((document, position) => ({ id: document.id, score: dot(unit, vectors[position] ?? []) }))
      .sort((left, right) => right.score - left.score)
      .slice(0, DEPTH);
    const lexical = (bm25Rankings.get(query.id) ?? []).map((id) => ({ id }));
    const fused = reciprocalRankFusion([lexical, dense], { topK: DEPTH });
    rankings.set(
      query.id,
      fused.map((item) => item.id),
    );
    latencies.push(performance.now() - queryStarted);
  }
  return score('hybrid BM25 + dense (RRF)', collection, rankings, indexMs, latencies);
}

function normalise(vector: number[]): number[] {
  const length = Math.hypot(...vector) || 1;
  return vector.map((value) => value / length);
}

function dot(left: number[], right: number[]): number {
  let sum = 0;
  for (let position = 0; position < left.length; position++) sum += left[position]! * (right[position] ?? 0);
  return sum;
}

function formatTable(systems: SystemResult[], parameters: RagEvalResult['parameters']): string {
  const header = ['metric', ...systems.map((system) => system.name), 'narsil floor'];
  const fixed = (value: number): string => value.toFixed(4);
  const row = (label: string, pick: (system: SystemResult) => string, floor = ''): string[] => [
    label,
    ...systems.map(pick),
    floor,
  ];
  const millis = (value: number): string => `${value.toFixed(3)} ms`;
  const rows: string[][] = [
    row('nDCG@10 (gain = grade, trec_eval)', (system) => fixed(system.ndcgAt10)),
    row('nDCG@10 (gain = 2^grade - 1)', (system) => fixed(system.ndcgAt10Exponential), fixed(0.32)),
    row('MAP (top 100)', (system) => fixed(system.map), fixed(NARSIL_FLOOR.map)),
    row('P@10', (system) => fixed(system.precisionAt10), fixed(NARSIL_FLOOR.precisionAt10)),
    row('MRR (top 10)', (system) => fixed(system.mrr), fixed(NARSIL_FLOOR.mrr)),
    row('query latency, mean', (system) => millis(system.queryMs.mean)),
    row('query latency, p50', (system) => millis(system.queryMs.p50)),
    row('query latency, p95', (system) => millis(system.queryMs.p95)),
    row('index build', (system) => `${system.indexMs.toFixed(0)} ms`),
  ];
  const widths = header.map((_, column) =>
    Math.max(...[header, ...rows].map((cells) => (cells[column] ?? '').length)),
  );
  const line = (cells: string[]): string =>
    `| ${cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(' | ')} |`;
  return [
    `Cranfield 1400: 1400 docs (title + abstract), 225 queries, grade = 5 - code (code -1 = 0); ` +
      `BM25 k1=${parameters.k1} b=${parameters.b}; RM3 10 docs/10 terms/0.5; ` +
      `chunks ${parameters.chunkSize}/${parameters.chunkOverlap} chars; depth ${parameters.depth}`,
    line(header),
    line(widths.map((width) => '-'.repeat(width))),
    ...rows.map(line),
  ].join('\n');
}

/**
 * The embedder of `--embed`: `tiny` is the local stories260K GGUF (real code path, meaningless vectors);
 * `provider-less names` go to the OpenAI-compatible server at `--base-url` (Ollama, vLLM, llama.cpp);
 * `openai:<model>` uses OPENAI_API_KEY.
 */
async function embedderFor(
  name: string,
  baseUrl: string | undefined,
): Promise<{ embed: (texts: string[]) => Promise<number[][]>; label: string; dispose: () => Promise<void> }> {
  const { createEmbeddingRegistry } = await import('../../src/llm/embeddings.ts');
  const tiny = new URL('../../../shared/models/stories260K.gguf', import.meta.url).pathname;
  const config =
    name === 'tiny'
      ? { providers: { local: { models: { tiny: { path: tiny, max_threads: 1, context_size: 512 } } } } }
      : {
          providers: {
            server: { type: 'openai-compatible', base_url: baseUrl ?? 'http://127.0.0.1:11434/v1' },
          },
        };
  const registry = createEmbeddingRegistry(config);
  const model = name === 'tiny' ? 'local:tiny' : name.startsWith('openai:') ? name : `server:${name}`;
  const embedder = registry.embedder(model);
  return {
    label: model,
    embed: async (texts) => (await embedder.embed(texts)).map((vector) => Array.from(vector)),
    dispose: () => registry.dispose(),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({
    options: {
      k1: { type: 'string' },
      b: { type: 'string' },
      embed: { type: 'string' },
      'base-url': { type: 'string' },
    },
  });
  const options: RagEvalOptions = {};
  if (values.k1 !== undefined) options.k1 = Number(values.k1);
  if (values.b !== undefined) options.b = Number(values.b);
  const embedder =
    values.embed === undefined ? undefined : await embedderFor(values.embed, values['base-url']);
  if (embedder !== undefined) options.embed = embedder.embed;
  try {
    const result = await run(options);
    console.log(result.table);
    console.log(
      embedder === undefined
        ? 'hybrid: not run (no embedder; --embed=<model> [--base-url=…] for an OpenAI-compatible server, --embed=tiny for the test GGUF)'
        : `hybrid: dense side embedded with ${embedder.label}`,
    );
  } finally {
    await embedder?.dispose();
  }
}
