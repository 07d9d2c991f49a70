/**
 * One owner's dense-vector index: the chunks' embeddings (unit length, float32, one row each), their chunk
 * and document ids and metadata, and — from `ann.minVectors` vectors on — an HNSW graph (ann.ts) that
 * finds candidates which are then rescored exactly. Below that size, or when the graph library is
 * missing, search is an exact scan, which is both faster and perfect there.
 *
 * Isolation is by construction: the rag module keeps one index per owner (`vectorIndexId(ownerId)`), so a
 * query can only ever see its owner's vectors.
 *
 * Persisted through the module's storage as `vectors/{index_id}/embeddings.npy` (NumPy format, unit-length
 * rows in index order), `index.json` (the model, the dimension, the chunk ids, document ids and metadata
 * of the rows, the graph's settings) and, with a graph, `ann.usearch` (the graph itself: loading it is far
 * faster than rebuilding it, see bench/rag). index.json is written last and carries the SHA-256 of the
 * other files, so a torn save is detected instead of being read as a shorter index.
 */
import { createHash } from 'node:crypto';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { PlatformError, ValidationError } from '../../core/errors.ts';
import {
  type ChunkMetadata,
  type MetadataFilter,
  matchesFilter,
  validateFilter,
} from '../../retrieval/bm25.ts';
import {
  ANN_LIBRARY,
  type AnnGraph,
  type AnnOptions,
  annGraphFromBytes,
  createAnnGraph,
  resolveAnnOptions,
} from './ann.ts';
import { decodeNpy, encodeNpy } from './npy.ts';
import { createTopHeap, dot } from './vectors-math.ts';

/** What the vector index needs of a storage backend (the module's scoped Storage fits). */
export interface VectorStorage {
  read(key: string): Promise<Uint8Array | undefined>;
  write(key: string, data: Uint8Array): Promise<unknown>;
  delete(key: string): Promise<boolean>;
  list(prefix: string): Promise<string[]>;
}

/** Options of `createVectorIndex`. */
export interface VectorIndexOptions {
  /** Length of every vector. */
  dimension: number;
  /** The embedding model, "provider:model"; recorded so a later change of model is caught. */
  model: string;
  /** Only cosine similarity (what embedding models are trained for). */
  metric?: 'cosine';
  ann?: AnnOptions;
}

/** One chunk's vector, for `addMany`. */
export interface VectorEntry {
  chunkId: string;
  docId: string;
  vector: ArrayLike<number>;
  metadata?: ChunkMetadata;
}

/** Options of a search. */
export interface VectorSearchOptions {
  /** How many hits at most. Default 10. */
  topK?: number;
  /** Metadata equality filter, as for BM25 (`{ key: value }`, a list means any of). */
  filter?: MetadataFilter;
  /** Scan every vector instead of using the graph (ground truth, tests). */
  exact?: boolean;
}

/** One ranked chunk: `score` is the cosine similarity, −1 … 1. */
export interface VectorHit {
  chunkId: string;
  docId: string;
  score: number;
}

/** What an index holds, and how it searches. */
export interface VectorIndexStats {
  vectors: number;
  documents: number;
  /** `hnsw` once the graph is built, `exact` below `ann.minVectors` or without the graph library. */
  search: 'hnsw' | 'exact';
}

/** One owner's vectors. Synchronous in memory; `save` and `loadVectorIndex` go through storage. */
export interface VectorIndex {
  readonly model: string;
  readonly dimension: number;
  readonly metric: 'cosine';
  /** Adds (or, for a known chunk id, replaces) a chunk's vector. Throws on a vector of another dimension. */
  add(chunkId: string, docId: string, vector: ArrayLike<number>, metadata?: ChunkMetadata): void;
  /** `add` for many chunks at once: the graph takes them in one multi-threaded call. All or nothing. */
  addMany(entries: ReadonlyArray<VectorEntry>): void;
  /** Removes every chunk of a document; returns how many. */
  remove(docId: string): number;
  /** Removes one chunk; false when it is not there. */
  removeChunk(chunkId: string): boolean;
  /** The chunk ids of a document, in no particular order. */
  chunksOf(docId: string): string[];
  /** The document of a chunk. */
  documentOf(chunkId: string): string | undefined;
  /** The chunk's stored (unit-length) vector, a copy; to reuse embeddings of unchanged chunks. */
  vectorOf(chunkId: string): Float32Array | undefined;
  has(chunkId: string): boolean;
  /** The chunks most similar to `vector`, best first. */
  search(vector: ArrayLike<number>, options?: VectorSearchOptions): VectorHit[];
  /** Number of vectors. */
  size(): number;
  stats(): VectorIndexStats;
  /**
   * Writes `vectors/{indexId}/embeddings.npy`, `index.json` (and `ann.usearch` with a graph). `sequence`
   * (the caller's change counter, e.g. of a journal) is stored with it and read back by `sequence()`.
   */
  save(storage: VectorStorage, indexId: string, options?: { sequence?: number }): Promise<void>;
  /** The sequence number last saved or loaded with the index; 0 for a new one. */
  sequence(): number;
}

/** What `loadVectorIndex` expects to find; a difference is CHAT_ERR_RAG_EMBEDDING_MISMATCH. */
export interface VectorIndexExpectation {
  /** The configured embedding model; when absent, any model is accepted. */
  model?: string;
  /** The configured model's dimension, when known. */
  dimension?: number;
  ann?: AnnOptions;
}

/** index.json: everything about a saved index but the vectors. */
export interface VectorIndexManifest {
  format: 'parley-vectors';
  version: 1;
  model: string;
  dimension: number;
  metric: 'cosine';
  /** Rows are scaled to unit length before they are stored. */
  normalized: true;
  count: number;
  /** The caller's change counter at the save (see `save`). */
  sequence?: number;
  embeddings: { file: 'embeddings.npy'; sha256: string; bytes: number };
  /** Per row of embeddings.npy. */
  chunkIds: string[];
  docIds: string[];
  /** Per row; `null` for none. */
  metadata: Array<ChunkMetadata | null>;
  ann?: {
    library: string;
    options: Required<AnnOptions>;
    file: 'ann.usearch';
    sha256: string;
    bytes: number;
    /** Graph label of each row. */
    labels: number[];
  };
  savedAt: string;
}

/** The storage folder of an index: `vectors/{indexId}/`. */
export function vectorIndexPrefix(indexId: string): string {
  if (!/^[A-Za-z0-9_-]{1,100}$/.test(indexId)) {
    throw new ValidationError('a vector index id is 1–100 letters, digits, "_" or "-"', {
      details: { indexId },
    });
  }
  return `vectors/${indexId}/`;
}

/**
 * The index id of an owner: the owner id itself when it is a safe storage-key segment (readable for an
 * operator), else `h-` and a SHA-256 prefix of it. The `o-`/`h-` prefixes keep the two spaces apart.
 */
export function vectorIndexId(ownerId: string): string {
  if (typeof ownerId !== 'string' || ownerId === '')
    throw new ValidationError('ownerId must be a non-empty string');
  if (/^[A-Za-z0-9_-]{1,64}$/.test(ownerId)) return `o-${ownerId}`;
  return `h-${createHash('sha256').update(ownerId).digest('hex').slice(0, 32)}`;
}

/** Creates an empty index for vectors of one model and dimension. */
export function createVectorIndex(options: VectorIndexOptions): VectorIndex {
  return buildVectorIndex(options).index;
}

/** The stored index.json of `indexId`, or `undefined` when none is stored; does not read the vectors. */
export async function readVectorIndexManifest(
  storage: VectorStorage,
  indexId: string,
): Promise<VectorIndexManifest | undefined> {
  const bytes = await storage.read(`${vectorIndexPrefix(indexId)}index.json`);
  if (bytes === undefined) return undefined;
  let manifest: VectorIndexManifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(bytes)) as VectorIndexManifest;
  } catch (error) {
    throw corrupt(indexId, 'index.json is not valid JSON', error);
  }
  if (manifest?.format !== 'parley-vectors' || manifest.version !== 1) {
    throw corrupt(indexId, 'index.json is not a parley vector index (format parley-vectors, version 1)');
  }
  const rows = manifest.count;
  if (
    !Number.isSafeInteger(rows) ||
    !Number.isSafeInteger(manifest.dimension) ||
    manifest.dimension < 1 ||
    manifest.chunkIds?.length !== rows ||
    manifest.docIds?.length !== rows ||
    manifest.metadata?.length !== rows
  ) {
    throw corrupt(indexId, 'index.json lists a different number of chunks than it says it holds');
  }
  return manifest;
}

/**
 * Loads a saved index, or returns `undefined` when none is stored. A model or dimension other than the
 * expected one throws CHAT_ERR_RAG_EMBEDDING_MISMATCH (the way out is `parley rag reindex`); files that
 * disagree throw CHAT_ERR_RAG_INDEX_CORRUPT. A missing, stale or unreadable graph is rebuilt from the
 * embeddings (yielding to the event loop between batches).
 */
export async function loadVectorIndex(
  storage: VectorStorage,
  indexId: string,
  expected: VectorIndexExpectation = {},
): Promise<VectorIndex | undefined> {
  const manifest = await readVectorIndexManifest(storage, indexId);
  if (manifest === undefined) return undefined;
  const configuredModel = expected.model ?? manifest.model;
  if (
    manifest.model !== configuredModel ||
    (expected.dimension !== undefined && manifest.dimension !== expected.dimension)
  ) {
    throw embeddingMismatch({
      indexId,
      storedModel: manifest.model,
      storedDimension: manifest.dimension,
      model: configuredModel,
      dimension: expected.dimension,
    });
  }
  const prefix = vectorIndexPrefix(indexId);
  const npy = await storage.read(`${prefix}embeddings.npy`);
  if (npy === undefined) throw corrupt(indexId, 'embeddings.npy is missing');
  if (sha256(npy) !== manifest.embeddings.sha256) {
    throw corrupt(indexId, 'embeddings.npy does not match index.json (a save was cut short?)');
  }
  let matrix: ReturnType<typeof decodeNpy>;
  try {
    matrix = decodeNpy(npy);
  } catch (error) {
    throw corrupt(indexId, `embeddings.npy is unreadable: ${(error as Error).message}`, error);
  }
  if (matrix.rows !== manifest.count || matrix.columns !== manifest.dimension) {
    throw corrupt(
      indexId,
      `embeddings.npy is ${matrix.rows}×${matrix.columns}, index.json says ${manifest.count}×${manifest.dimension}`,
    );
  }
  const annOptions = resolveAnnOptions(expected.ann);
  const graph = await restoreGraph(storage, prefix, manifest, annOptions);
  const built = buildVectorIndex(
    { dimension: manifest.dimension, model: manifest.model, ann: annOptions },
    { manifest, vectors: matrix.data, graph },
  );
  // Nobody holds the index yet, so nothing can change it while the graph is built batch by batch.
  if (graph === undefined) await built.buildGraphInBatches();
  return built.index;
}

/** Removes a stored index (every key under `vectors/{indexId}/`); returns how many keys were deleted. */
export async function deleteVectorIndex(storage: VectorStorage, indexId: string): Promise<number> {
  const keys = await storage.list(vectorIndexPrefix(indexId));
  // index.json first: without it the folder reads as "no index", whatever else is left.
  keys.sort((left, right) => Number(right.endsWith('index.json')) - Number(left.endsWith('index.json')));
  let deleted = 0;
  for (const key of keys) if (await storage.delete(key)) deleted++;
  return deleted;
}

/** CHAT_ERR_RAG_EMBEDDING_MISMATCH with the message that names both models and the way out. */
export function embeddingMismatch(facts: {
  indexId?: string;
  storedModel: string;
  storedDimension: number;
  model: string;
  dimension: number | undefined;
}): PlatformError {
  const configured =
    facts.dimension === undefined ? facts.model : `${facts.model} (dimension ${facts.dimension})`;
  const where = facts.indexId === undefined ? 'the vector index' : `vector index "${facts.indexId}"`;
  return new PlatformError(
    'CHAT_ERR_RAG_EMBEDDING_MISMATCH',
    `${where} was built with embedding model ${facts.storedModel} (dimension ${facts.storedDimension}), ` +
      `but ${configured} is configured now; run \`parley rag reindex\` to embed the documents again ` +
      `with the configured model`,
    { details: { ...facts, command: 'parley rag reindex' } },
  );
}

function corrupt(indexId: string, what: string, cause?: unknown): PlatformError {
  return new PlatformError(
    'CHAT_ERR_RAG_INDEX_CORRUPT',
    `vector index "${indexId}": ${what}; run \`parley rag reindex\` to rebuild it from the documents`,
    { details: { indexId, command: 'parley rag reindex' }, cause },
  );
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The stored graph when it is there, intact and built with the configured settings. */
async function restoreGraph(
  storage: VectorStorage,
  prefix: string,
  manifest: VectorIndexManifest,
  options: Required<AnnOptions>,
): Promise<AnnGraph | undefined> {
  const stored = manifest.ann;
  if (stored === undefined || stored.library !== ANN_LIBRARY || stored.labels?.length !== manifest.count)
    return undefined;
  if (manifest.count < options.minVectors) return undefined;
  const built = stored.options;
  if (
    built.connectivity !== options.connectivity ||
    built.expansionAdd !== options.expansionAdd ||
    built.quantization !== options.quantization
  ) {
    return undefined;
  }
  const bytes = await storage.read(`${prefix}${stored.file}`);
  if (bytes === undefined || sha256(bytes) !== stored.sha256) return undefined;
  try {
    const graph = annGraphFromBytes(bytes, manifest.dimension, options);
    return graph?.size() === manifest.count ? graph : undefined;
  } catch {
    // A graph from another library version, say: the embeddings are the truth, rebuild from them.
    return undefined;
  }
}

/** Rows are appended into one growing Float32Array; it doubles, so adding n vectors costs O(n). */
const INITIAL_CAPACITY = 64;
/** Rows per batch when a graph is built in bulk, with a turn of the event loop between batches. */
const BUILD_BATCH = 1024;

interface Restored {
  manifest: VectorIndexManifest;
  vectors: Float32Array;
  graph: AnnGraph | undefined;
}

interface BuiltIndex {
  index: VectorIndex;
  /** Builds the graph a batch at a time, yielding between batches (after a load without a usable graph). */
  buildGraphInBatches(): Promise<void>;
}

function buildVectorIndex(options: VectorIndexOptions, restored?: Restored): BuiltIndex {
  const { dimension, model } = options;
  if (!Number.isSafeInteger(dimension) || dimension < 1) {
    throw new ValidationError('dimension must be a positive integer', { details: { dimension } });
  }
  if (typeof model !== 'string' || model === '')
    throw new ValidationError('model must be a non-empty string');
  if ((options.metric ?? 'cosine') !== 'cosine')
    throw new ValidationError('only the cosine metric is supported');
  const annOptions = resolveAnnOptions(options.ann);

  let matrix = new Float32Array(INITIAL_CAPACITY * dimension);
  let count = 0;
  const chunkIds: string[] = [];
  const docIds: string[] = [];
  const metadata: Array<ChunkMetadata | undefined> = [];
  /** Graph label of each row; labels are never reused, so a removed vector can't be confused with a new one. */
  const labels: number[] = [];
  const rowByChunk = new Map<string, number>();
  const rowsByDoc = new Map<string, Set<number>>();
  const rowByLabel = new Map<number, number>();
  let nextLabel = 0;
  let savedSequence = restored?.manifest.sequence ?? 0;
  let graph: AnnGraph | undefined;
  const query = new Float32Array(dimension);

  function ensureCapacity(rows: number): void {
    if (rows * dimension <= matrix.length) return;
    let capacity = matrix.length / dimension;
    while (capacity < rows) capacity *= 2;
    const grown = new Float32Array(capacity * dimension);
    grown.set(matrix.subarray(0, count * dimension));
    matrix = grown;
  }

  /** Copies `vector` scaled to unit length into `target` at `offset` (a zero vector stays zero). */
  function writeUnit(vector: ArrayLike<number>, target: Float32Array, offset: number): void {
    if (vector.length !== dimension) {
      throw embeddingMismatch({
        storedModel: model,
        storedDimension: dimension,
        model,
        dimension: vector.length,
      });
    }
    let squares = 0;
    for (let position = 0; position < dimension; position++) {
      const value = vector[position]!;
      if (!Number.isFinite(value))
        throw new ValidationError('a vector holds a value that is not a finite number');
      squares += value * value;
    }
    const scale = squares > 0 ? 1 / Math.sqrt(squares) : 0;
    for (let position = 0; position < dimension; position++)
      target[offset + position] = vector[position]! * scale;
  }

  function rowVector(row: number): Float32Array {
    return matrix.subarray(row * dimension, (row + 1) * dimension);
  }

  function linkDoc(row: number, docId: string): void {
    let rows = rowsByDoc.get(docId);
    if (rows === undefined) {
      rows = new Set();
      rowsByDoc.set(docId, rows);
    }
    rows.add(row);
  }

  function unlinkDoc(row: number, docId: string): void {
    const rows = rowsByDoc.get(docId);
    rows?.delete(row);
    if (rows?.size === 0) rowsByDoc.delete(docId);
  }

  /** Puts a validated unit vector into its row (a new one, or the chunk's own); returns the row. */
  function place(
    chunkId: string,
    docId: string,
    unit: Float32Array,
    copied: ChunkMetadata | undefined,
  ): number {
    const existing = rowByChunk.get(chunkId);
    const row = existing ?? count;
    if (existing !== undefined) {
      graph?.remove(labels[row]!);
      rowByLabel.delete(labels[row]!);
      unlinkDoc(row, docIds[row]!);
    } else {
      ensureCapacity(count + 1);
      count++;
      chunkIds.push(chunkId);
      docIds.push(docId);
      metadata.push(undefined);
      labels.push(0);
    }
    matrix.set(unit, row * dimension);
    docIds[row] = docId;
    metadata[row] = copied;
    labels[row] = nextLabel++;
    rowByChunk.set(chunkId, row);
    rowByLabel.set(labels[row]!, row);
    linkDoc(row, docId);
    return row;
  }

  /** Builds the graph over every row at once (the first time the index reaches `minVectors`). */
  function buildGraphNow(): void {
    graph = createAnnGraph(dimension, annOptions);
    graph?.add(labels.slice(0, count), matrix.subarray(0, count * dimension), annOptions.buildThreads);
  }

  function maybeBuildGraph(): void {
    if (graph === undefined && count >= annOptions.minVectors && count > 0) buildGraphNow();
  }

  /** Moves the last row into `row` (rows stay dense, so the matrix is the .npy as it is). */
  function removeRow(row: number): void {
    const last = count - 1;
    const label = labels[row]!;
    graph?.remove(label);
    rowByLabel.delete(label);
    rowByChunk.delete(chunkIds[row]!);
    unlinkDoc(row, docIds[row]!);
    if (row !== last) {
      matrix.copyWithin(row * dimension, last * dimension, (last + 1) * dimension);
      chunkIds[row] = chunkIds[last]!;
      docIds[row] = docIds[last]!;
      metadata[row] = metadata[last];
      labels[row] = labels[last]!;
      rowByChunk.set(chunkIds[row]!, row);
      rowByLabel.set(labels[row]!, row);
      const moved = rowsByDoc.get(docIds[row]!)!;
      moved.delete(last);
      moved.add(row);
    }
    chunkIds.pop();
    docIds.pop();
    metadata.pop();
    labels.pop();
    count--;
  }

  function requireId(value: unknown, name: string): asserts value is string {
    if (typeof value !== 'string' || value === '')
      throw new ValidationError(`${name} must be a non-empty string`);
  }

  function copyMetadata(value: ChunkMetadata | undefined): ChunkMetadata | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'object' || Array.isArray(value))
      throw new ValidationError('metadata must be an object');
    return { ...value };
  }

  /** Exact top-k over `rows` (every row when undefined): dot products with the unit query. */
  function exactSearch(topK: number, rows?: readonly number[]): VectorHit[] {
    const heap = createTopHeap(topK);
    const total = rows === undefined ? count : rows.length;
    for (let position = 0; position < total; position++) {
      const row = rows === undefined ? position : rows[position]!;
      heap.offer(row, dot(query, matrix, row * dimension, dimension));
    }
    return heap.sorted().map(([row, score]) => hitOf(row, score));
  }

  function hitOf(row: number, score: number): VectorHit {
    return { chunkId: chunkIds[row]!, docId: docIds[row]!, score };
  }

  /** Graph candidates (more than asked, for the rescoring and the filter), rescored exactly. */
  function graphSearch(activeGraph: AnnGraph, topK: number, accept?: (row: number) => boolean): VectorHit[] {
    const candidates = Math.min(count, Math.max(topK * 2, topK + 10));
    const { labels: found } = activeGraph.search(query, candidates);
    const heap = createTopHeap(topK);
    for (const label of found) {
      const row = rowByLabel.get(label);
      if (row === undefined || (accept !== undefined && !accept(row))) continue;
      heap.offer(row, dot(query, matrix, row * dimension, dimension));
    }
    return heap.sorted().map(([row, score]) => hitOf(row, score));
  }

  if (restored !== undefined) {
    const { manifest, vectors } = restored;
    ensureCapacity(manifest.count);
    matrix.set(vectors);
    count = manifest.count;
    for (let row = 0; row < count; row++) {
      chunkIds.push(manifest.chunkIds[row]!);
      docIds.push(manifest.docIds[row]!);
      metadata.push(manifest.metadata[row] ?? undefined);
      rowByChunk.set(chunkIds[row]!, row);
      linkDoc(row, docIds[row]!);
    }
    if (restored.graph !== undefined && manifest.ann !== undefined) {
      graph = restored.graph;
      for (let row = 0; row < count; row++) labels.push(manifest.ann.labels[row]!);
    } else {
      for (let row = 0; row < count; row++) labels.push(row);
    }
    for (let row = 0; row < count; row++) rowByLabel.set(labels[row]!, row);
    nextLabel = labels.reduce((highest, label) => Math.max(highest, label + 1), 0);
  }

  const index: VectorIndex = {
    model,
    dimension,
    metric: 'cosine',

    add(chunkId, docId, vector, chunkMetadata) {
      index.addMany([
        { chunkId, docId, vector, ...(chunkMetadata === undefined ? {} : { metadata: chunkMetadata }) },
      ]);
    },

    addMany(entries) {
      // Validate and normalise everything before anything changes, so a bad entry leaves the index as it was.
      const units = new Float32Array(entries.length * dimension);
      const copies = entries.map((entry, position) => {
        requireId(entry.chunkId, 'chunkId');
        requireId(entry.docId, 'docId');
        writeUnit(entry.vector, units, position * dimension);
        return copyMetadata(entry.metadata);
      });
      const placed = new Set<number>();
      entries.forEach((entry, position) => {
        const unit = units.subarray(position * dimension, (position + 1) * dimension);
        placed.add(place(entry.chunkId, entry.docId, unit, copies[position]));
      });
      if (graph === undefined) {
        maybeBuildGraph();
        return;
      }
      // New and replaced rows go into the graph in one call, on `buildThreads` threads when there are many.
      const rows = [...placed];
      const vectors = new Float32Array(rows.length * dimension);
      rows.forEach((row, position) => {
        vectors.set(rowVector(row), position * dimension);
      });
      graph.add(
        rows.map((row) => labels[row]!),
        vectors,
        rows.length > 64 ? annOptions.buildThreads : 1,
      );
    },

    remove(docId) {
      const rows = rowsByDoc.get(docId);
      if (rows === undefined) return 0;
      // Highest row first: removing a row moves the last one into its place.
      const ordered = [...rows].sort((left, right) => right - left);
      for (const row of ordered) removeRow(row);
      return ordered.length;
    },

    removeChunk(chunkId) {
      const row = rowByChunk.get(chunkId);
      if (row === undefined) return false;
      removeRow(row);
      return true;
    },

    chunksOf(docId) {
      return [...(rowsByDoc.get(docId) ?? [])].map((row) => chunkIds[row]!);
    },

    documentOf(chunkId) {
      const row = rowByChunk.get(chunkId);
      return row === undefined ? undefined : docIds[row];
    },

    vectorOf(chunkId) {
      const row = rowByChunk.get(chunkId);
      return row === undefined ? undefined : rowVector(row).slice();
    },

    has: (chunkId) => rowByChunk.has(chunkId),

    search(vector, searchOptions = {}) {
      const topK = searchOptions.topK ?? 10;
      if (!Number.isSafeInteger(topK) || topK < 1) {
        throw new ValidationError('topK must be a positive integer', { details: { topK } });
      }
      writeUnit(vector, query, 0);
      if (count === 0) return [];
      const filter = searchOptions.filter;
      if (filter !== undefined) validateFilter(filter);
      const activeGraph = searchOptions.exact === true ? undefined : graph;
      if (filter === undefined || Object.keys(filter).length === 0) {
        return activeGraph === undefined ? exactSearch(topK) : graphSearch(activeGraph, topK);
      }
      const matching: number[] = [];
      for (let row = 0; row < count; row++) if (matchesFilter(metadata[row], filter)) matching.push(row);
      // A selective filter is answered exactly over the matching rows (few rows: cheap and perfect). A
      // broad one asks the graph for more candidates and falls back to the scan if too few pass.
      if (activeGraph === undefined || matching.length <= annOptions.minVectors) {
        return exactSearch(topK, matching);
      }
      const accepted = new Set(matching);
      const widened = Math.ceil((topK * count) / matching.length);
      const hits = graphSearch(activeGraph, widened, (row) => accepted.has(row)).slice(0, topK);
      return hits.length >= Math.min(topK, matching.length) ? hits : exactSearch(topK, matching);
    },

    size: () => count,

    stats: () => ({
      vectors: count,
      documents: rowsByDoc.size,
      search: graph === undefined ? 'exact' : 'hnsw',
    }),

    sequence: () => savedSequence,

    async save(storage, indexId, saveOptions = {}) {
      const prefix = vectorIndexPrefix(indexId);
      const sequence = saveOptions.sequence ?? savedSequence;
      // Everything is captured synchronously first, so adds during the writes cannot tear the snapshot.
      const npy = encodeNpy({ data: matrix.subarray(0, count * dimension), rows: count, columns: dimension });
      const graphBytes = graph?.serialize();
      const manifest: VectorIndexManifest = {
        format: 'parley-vectors',
        version: 1,
        model,
        dimension,
        metric: 'cosine',
        normalized: true,
        count,
        sequence,
        embeddings: { file: 'embeddings.npy', sha256: sha256(npy), bytes: npy.length },
        chunkIds: chunkIds.slice(),
        docIds: docIds.slice(),
        metadata: metadata.map((value) => value ?? null),
        savedAt: new Date().toISOString(),
      };
      if (graph !== undefined && graphBytes !== undefined) {
        manifest.ann = {
          library: ANN_LIBRARY,
          options: { ...graph.options },
          file: 'ann.usearch',
          sha256: sha256(graphBytes),
          bytes: graphBytes.length,
          labels: labels.slice(),
        };
      }
      const json = new TextEncoder().encode(JSON.stringify(manifest));
      await storage.write(`${prefix}embeddings.npy`, npy);
      if (graphBytes !== undefined) await storage.write(`${prefix}ann.usearch`, graphBytes);
      // index.json last: it is the commit point, and its checksums reject a half-written pair.
      await storage.write(`${prefix}index.json`, json);
      if (graphBytes === undefined) await storage.delete(`${prefix}ann.usearch`);
      savedSequence = sequence;
    },
  };

  async function buildGraphInBatches(): Promise<void> {
    if (graph !== undefined || count < annOptions.minVectors || count === 0) return;
    const building = createAnnGraph(dimension, annOptions);
    if (building === undefined) return;
    for (let done = 0; done < count; ) {
      const end = Math.min(count, done + BUILD_BATCH);
      building.add(
        labels.slice(done, end),
        matrix.subarray(done * dimension, end * dimension),
        annOptions.buildThreads,
      );
      done = end;
      await yieldToEventLoop();
    }
    graph = building;
  }

  if (restored === undefined) maybeBuildGraph();
  return { index, buildGraphInBatches };
}
