/**
 * Retrieval quality of the RAG module on Cranfield 1400 (1400 abstracts, 225 queries, graded qrels):
 * nDCG@10, MAP, P@10 and MRR for the module's default retrieval (BM25F with a title field, request words
 * dropped from queries, RM3 feedback), for the steps that lead there from plain BM25, for the default over
 * chunks made by the module's chunker, and for hybrid BM25 + dense (RRF) when an embedder is given — next
 * to the floors the narsil TypeScript BM25 library holds on the same files. Every figure is given for all
 * 225 queries, for the odd-numbered ones (the half the defaults were chosen on) and for the even-numbered
 * ones (held out).
 *
 * Run on its own: `npx node bench/rag-eval/index.ts` (`--k1= --b= --title-weight= --fb-docs= --fb-terms=
 * --fb-weight=` to try other settings; `--tune` searches the settings on the odd queries).
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { chunkDocument, DEFAULT_CHUNKING } from '../../src/modules/rag/chunker.ts';
import { reciprocalRankFusion } from '../../src/modules/rag/fusion.ts';
import {
  type Bm25Feedback,
  type Bm25Index,
  type Bm25SearchOptions,
  createBm25Index,
  DEFAULT_BM25,
  DEFAULT_FEEDBACK,
} from '../../src/retrieval/bm25.ts';
import {
  type CranfieldCollection,
  type CranfieldDocument,
  defaultCranfieldDir,
  documentText,
  gradesFor,
  loadCranfield,
} from './cranfield.ts';
import { averagePrecision, mean, ndcgAtK, precisionAtK, quantile, reciprocalRank } from './metrics.ts';

/** BM25 settings of one run (the module's defaults where absent). */
export interface RetrievalSettings {
  k1?: number;
  b?: number;
  titleWeight?: number;
  feedback?: Bm25Feedback;
}

/** Options of one evaluation run. */
export interface RagEvalOptions extends RetrievalSettings {
  /** Folder holding cran.all.1400, cran.qry and cranqrel. */
  directory?: string;
  /** Texts → vectors. When given, a hybrid (BM25 + dense, RRF) column is added. */
  embed?: (texts: string[]) => Promise<number[][]>;
}

/** Mean metrics of one retrieval system over a set of queries. */
export interface Metrics {
  /** nDCG@10 with gain = grade (trec_eval's ndcg_cut_10). */
  ndcgAt10: number;
  /** nDCG@10 with gain = 2^grade − 1 (the definition behind narsil's floor). */
  ndcgAt10Exponential: number;
  /** MAP over the first 100 results. */
  map: number;
  precisionAt10: number;
  /** MRR over the first 10 results. */
  mrr: number;
}

/** One system's figures: all 225 queries, and the two halves. */
export interface SystemResult extends Metrics {
  name: string;
  /** Odd-numbered queries (1, 3 … 225): the half the defaults were chosen on. */
  tuning: Metrics;
  /** Even-numbered queries (2, 4 … 224): held out. */
  heldOut: Metrics;
  /** Milliseconds to build the index (and to embed, for hybrid). */
  indexMs: number;
  /** Milliseconds per query. */
  queryMs: { mean: number; p50: number; p95: number };
}

/** The result of `run()`: one entry per system, the reference floors, and the printed table. */
export interface RagEvalResult {
  parameters: {
    k1: number;
    b: number;
    titleWeight: number;
    feedback: Required<Bm25Feedback>;
    chunkSize: number;
    chunkOverlap: number;
    depth: number;
  };
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

/** The settings with the module's defaults filled in. */
function resolveSettings(settings: RetrievalSettings): RagEvalResult['parameters'] {
  return {
    k1: settings.k1 ?? DEFAULT_BM25.k1,
    b: settings.b ?? DEFAULT_BM25.b,
    titleWeight: settings.titleWeight ?? DEFAULT_BM25.titleWeight,
    feedback: { ...DEFAULT_FEEDBACK, ...settings.feedback },
    ...DEFAULT_CHUNKING,
    depth: DEPTH,
  };
}

/** Runs the evaluation and returns the figures and a printable table. */
export async function run(options: RagEvalOptions = {}): Promise<RagEvalResult> {
  const collection = await loadCranfield(options.directory ?? defaultCranfieldDir());
  const parameters = resolveSettings(options);
  const { k1, b, titleWeight, feedback } = parameters;

  // The steps from plain BM25 (one field, every query word, one pass) to the module's default.
  const plain = timed(() => indexDocuments(collection, { k1, b, fields: false }));
  const fielded = timed(() => indexDocuments(collection, { k1, b, titleWeight }));
  const chunks = timed(() => indexChunks(collection, { k1, b, titleWeight }));
  const search =
    (index: Bm25Index, extra: Partial<Bm25SearchOptions>) =>
    (query: string): string[] =>
      index.search(query, { ownerId: OWNER, topK: DEPTH, ...extra }).map((hit) => hit.docId);
  const literal = { dropRequestWords: false };

  const parleyDefault = evaluate(
    '+ RM3 = parley default',
    collection,
    fielded.ms,
    search(fielded.value, { feedback }),
  );
  const systems = [
    evaluate('plain BM25', collection, plain.ms, search(plain.value, literal)).result,
    evaluate('+ title field', collection, fielded.ms, search(fielded.value, literal)).result,
    evaluate('+ request words dropped', collection, fielded.ms, search(fielded.value, {})).result,
    parleyDefault.result,
    evaluate(`default, ${DEFAULT_CHUNKING.chunkSize}-char chunks`, collection, chunks.ms, (query) =>
      bestDocuments(chunks.value.search(query, { ownerId: OWNER, topK: DEPTH * 3, feedback })),
    ).result,
  ];
  if (options.embed !== undefined)
    systems.push(await evaluateHybrid(collection, parleyDefault.rankings, options.embed));
  return { parameters, systems, floor: NARSIL_FLOOR, table: formatTable(systems, parameters) };
}

/** How the abstracts are indexed. */
export interface IndexSettings {
  k1?: number;
  b?: number;
  titleWeight?: number;
  /**
   * True (default): the title in the chunk's title field and the abstract as its text, as the module
   * indexes a document (its title and a chunk of its text). False: title and abstract as one text.
   */
  fields?: boolean;
}

/** The chunk the module would index for a whole abstract. */
function abstractChunk(document: CranfieldDocument, fields: boolean) {
  return fields
    ? { id: document.id, docId: document.id, title: document.title, text: document.body }
    : { id: document.id, docId: document.id, text: documentText(document) };
}

/** Builds the single-owner index of whole documents (title + abstract) that the figures are about. */
export function indexDocuments(collection: CranfieldCollection, settings: IndexSettings = {}): Bm25Index {
  const { fields = true, ...options } = settings;
  const index = createBm25Index(fields ? options : { ...options, titleWeight: 0 });
  for (const document of collection.documents) index.add(abstractChunk(document, fields), { ownerId: OWNER });
  return index;
}

/** The module's chunks of each abstract, each with its document's title (as `owner-index.ts` adds them). */
function indexChunks(collection: CranfieldCollection, settings: IndexSettings): Bm25Index {
  const index = createBm25Index(settings);
  for (const document of collection.documents) {
    const chunks = chunkDocument({ docId: document.id, text: document.body, format: 'text' });
    for (const chunk of chunks) index.add({ ...chunk, title: document.title }, { ownerId: OWNER });
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

/** Whether a query is in the half the defaults were chosen on (odd-numbered) or held out (even). */
export function isTuningQuery(queryId: number): boolean {
  return queryId % 2 === 1;
}

/** Mean metrics of `rankings` over the queries `include` accepts. */
export function metricsOf(
  collection: CranfieldCollection,
  rankings: ReadonlyMap<number, string[]>,
  include: (queryId: number) => boolean = () => true,
): Metrics {
  const per = { linear: [] as number[], exponential: [] as number[], map: [] as number[] };
  const more = { precision: [] as number[], mrr: [] as number[] };
  for (const query of collection.queries) {
    if (!include(query.id)) continue;
    const grades = gradesFor(collection, query.id);
    const ranked = rankings.get(query.id) ?? [];
    per.linear.push(ndcgAtK(ranked, grades, 10, 'linear'));
    per.exponential.push(ndcgAtK(ranked, grades, 10, 'exponential'));
    per.map.push(averagePrecision(ranked.slice(0, DEPTH), grades));
    more.precision.push(precisionAtK(ranked, grades, 10));
    more.mrr.push(reciprocalRank(ranked.slice(0, 10), grades));
  }
  return {
    ndcgAt10: mean(per.linear),
    ndcgAt10Exponential: mean(per.exponential),
    map: mean(per.map),
    precisionAt10: mean(more.precision),
    mrr: mean(more.mrr),
  };
}

function score(
  name: string,
  collection: CranfieldCollection,
  rankings: Map<number, string[]>,
  indexMs: number,
  latencies: number[],
): SystemResult {
  return {
    name,
    ...metricsOf(collection, rankings),
    tuning: metricsOf(collection, rankings, isTuningQuery),
    heldOut: metricsOf(collection, rankings, (queryId) => !isTuningQuery(queryId)),
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
  const metricRows = (label: string, of: (system: SystemResult) => Metrics, floors: boolean): string[][] => [
    row(`${label}nDCG@10 (gain = grade, trec_eval)`, (system) => fixed(of(system).ndcgAt10)),
    row(
      `${label}nDCG@10 (gain = 2^grade - 1)`,
      (system) => fixed(of(system).ndcgAt10Exponential),
      floors ? fixed(NARSIL_FLOOR.ndcgAt10Exponential) : '',
    ),
    row(`${label}MAP (top 100)`, (system) => fixed(of(system).map), floors ? fixed(NARSIL_FLOOR.map) : ''),
    row(
      `${label}P@10`,
      (system) => fixed(of(system).precisionAt10),
      floors ? fixed(NARSIL_FLOOR.precisionAt10) : '',
    ),
    row(`${label}MRR (top 10)`, (system) => fixed(of(system).mrr), floors ? fixed(NARSIL_FLOOR.mrr) : ''),
  ];
  const rows: string[][] = [
    ...metricRows('all 225: ', (system) => system, true),
    ...metricRows('held out (even, 112): ', (system) => system.heldOut, false),
    ...metricRows('tuning (odd, 113): ', (system) => system.tuning, false),
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
  const { feedback } = parameters;
  return [
    `Cranfield 1400: 1400 docs (title + abstract), 225 queries, grade = 5 - code (code -1 = 0); ` +
      `BM25 k1=${parameters.k1} b=${parameters.b}; title weight ${parameters.titleWeight}; ` +
      `RM3 ${feedback.documents} docs/${feedback.terms} terms/${feedback.originalWeight}; ` +
      `chunks ${parameters.chunkSize}/${parameters.chunkOverlap} chars; depth ${parameters.depth}`,
    line(header),
    line(widths.map((width) => '-'.repeat(width))),
    ...rows.map(line),
  ].join('\n');
}

/**
 * The settings search behind the defaults: every combination of a small grid, scored by nDCG@10 (trec_eval
 * gain) on the odd-numbered queries only; the even-numbered ones are shown beside, never used to choose.
 */
export async function tune(directory = defaultCranfieldDir()): Promise<string> {
  const collection = await loadCranfield(directory);
  const results: Array<{ settings: string; tuning: Metrics; heldOut: Metrics; isDefault: boolean }> = [];
  const defaults = resolveSettings({});
  for (const k1 of [0.9, 1.2, 1.6, 2.0]) {
    for (const b of [0.5, 0.75]) {
      for (const titleWeight of [1, 2, 3]) {
        const index = indexDocuments(collection, { k1, b, titleWeight });
        for (const feedback of TUNING_FEEDBACK) {
          const rankings = new Map<number, string[]>();
          for (const query of collection.queries) {
            const hits = index.search(query.text, {
              ownerId: OWNER,
              topK: DEPTH,
              feedback: feedback ?? false,
            });
            rankings.set(
              query.id,
              hits.map((hit) => hit.docId),
            );
          }
          const rm3 =
            feedback === undefined
              ? 'no RM3'
              : `RM3 ${feedback.documents}/${feedback.terms}/${feedback.originalWeight}`;
          const isDefault =
            k1 === defaults.k1 &&
            b === defaults.b &&
            titleWeight === defaults.titleWeight &&
            feedback?.documents === defaults.feedback.documents &&
            feedback.terms === defaults.feedback.terms &&
            feedback.originalWeight === defaults.feedback.originalWeight;
          results.push({
            settings: `k1 ${k1}, b ${b}, title ${titleWeight}, ${rm3}`,
            tuning: metricsOf(collection, rankings, isTuningQuery),
            heldOut: metricsOf(collection, rankings, (queryId) => !isTuningQuery(queryId)),
            isDefault,
          });
        }
      }
    }
  }
  results.sort((left, right) => right.tuning.ndcgAt10 - left.tuning.ndcgAt10);
  const format = (entry: (typeof results)[number], rank: number): string =>
    `${String(rank + 1).padStart(3)}. ${entry.settings.padEnd(40)} odd nDCG@10 ${entry.tuning.ndcgAt10.toFixed(4)}` +
    ` | even nDCG@10 ${entry.heldOut.ndcgAt10.toFixed(4)} (2^g-1: ${entry.heldOut.ndcgAt10Exponential.toFixed(4)})` +
    `${entry.isDefault ? '  <- default' : ''}`;
  const shown = results.map(format).filter((line, rank) => rank < 15 || line.endsWith('<- default'));
  return [
    `${results.length} settings, ranked by nDCG@10 on the 113 odd-numbered queries (even ones held out):`,
    ...shown,
  ].join('\n');
}

/** RM3 settings of the grid (`undefined`: no feedback). */
const TUNING_FEEDBACK: ReadonlyArray<Required<Bm25Feedback> | undefined> = [
  undefined,
  ...[5, 10].flatMap((documents) =>
    [10, 20].flatMap((terms) => [0.3, 0.5].map((originalWeight) => ({ documents, terms, originalWeight }))),
  ),
];

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
      'title-weight': { type: 'string' },
      'fb-docs': { type: 'string' },
      'fb-terms': { type: 'string' },
      'fb-weight': { type: 'string' },
      tune: { type: 'boolean' },
      embed: { type: 'string' },
      'base-url': { type: 'string' },
    },
  });
  if (values.tune === true) {
    console.log(await tune());
    process.exit(0);
  }
  const options: RagEvalOptions = {};
  const number = (value: string | undefined): number | undefined =>
    value === undefined ? undefined : Number(value);
  const set = <Key extends keyof RetrievalSettings>(key: Key, value: RetrievalSettings[Key] | undefined) => {
    if (value !== undefined) options[key] = value;
  };
  set('k1', number(values.k1));
  set('b', number(values.b));
  set('titleWeight', number(values['title-weight']));
  const feedback: Bm25Feedback = {};
  if (values['fb-docs'] !== undefined) feedback.documents = Number(values['fb-docs']);
  if (values['fb-terms'] !== undefined) feedback.terms = Number(values['fb-terms']);
  if (values['fb-weight'] !== undefined) feedback.originalWeight = Number(values['fb-weight']);
  options.feedback = feedback;
  const embedder =
    values.embed === undefined ? undefined : await embedderFor(values.embed, values['base-url']);
  if (embedder !== undefined) options.embed = embedder.embed;
  try {
    const result = await run(options);
    console.log(result.table);
    console.log(
      embedder === undefined
        ? 'hybrid: not run (no embedder; --embed=<model> [--base-url=…] for an OpenAI-compatible server, --embed=tiny for the test GGUF)'
        : `hybrid: the default's ranking fused with the dense side, embedded with ${embedder.label}`,
    );
  } finally {
    await embedder?.dispose();
  }
}
