/**
 * The approximate nearest-neighbour graph behind the vector index: HNSW from USearch (Unum's `usearch`
 * package), an N-API addon whose npm package ships prebuilt binaries for Linux (x64, arm64) and macOS,
 * so nothing is compiled or downloaded at install. bench/rag and the rag README say why it was chosen
 * over hnswlib-node, a pure-JS HNSW and Orama.
 *
 * The graph stores vectors at reduced precision (f16 by default, half the memory of f32); the vector
 * index rescores its candidates with the exact float32 vectors, so scores are exact cosines. Labels are
 * unsigned integers chosen by the caller. If the addon cannot be loaded on this platform, `annAvailable`
 * is false and the vector index searches exactly — correct, only slower on large collections.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ValidationError } from '../../core/errors.ts';

type Usearch = typeof import('usearch');
type UsearchIndex = InstanceType<Usearch['Index']>;

/** How vectors are stored inside the graph (candidates are rescored in float32 either way). */
export type AnnQuantization = 'f32' | 'f16' | 'i8';

/** HNSW parameters (config `ann.*`). */
export interface AnnOptions {
  /** Below this many vectors an owner's index is searched exactly and no graph is built. */
  minVectors?: number;
  /** Links per node (HNSW's M): more means better recall, more memory and slower inserts. */
  connectivity?: number;
  /** Candidate list while inserting (efConstruction). */
  expansionAdd?: number;
  /** Candidate list while searching (ef): the recall/latency dial. */
  expansionSearch?: number;
  quantization?: AnnQuantization;
  /** Threads for building a graph in bulk (after a load or reindex); 0 means one per core. */
  buildThreads?: number;
}

/**
 * Defaults measured by bench/rag on 384-dimension clustered vectors: recall@10 ≥ 0.95 at 100k vectors
 * (expansionSearch 64 fell short of it there), with a build that stays in tens of seconds on two cores.
 */
export const DEFAULT_ANN: Readonly<Required<AnnOptions>> = Object.freeze({
  minVectors: 2000,
  connectivity: 16,
  expansionAdd: 64,
  expansionSearch: 128,
  quantization: 'f16',
  buildThreads: 0,
});

let usearch: Usearch | undefined;
let loadError: unknown;
try {
  usearch = await import('usearch');
} catch (error) {
  // No prebuilt binary for this platform (or the package is missing): exact search still works.
  loadError = error;
}

/** Whether the ANN library loaded; when false, vector search is exact. */
export const annAvailable: boolean = usearch !== undefined;
/** Why the ANN library did not load, for a startup warning. */
export const annLoadError: unknown = loadError;
/** The library that writes the graph files (recorded in index.json). */
export const ANN_LIBRARY = 'usearch';

/** Labels and cosine distances (1 − cosine) of the nearest vectors, nearest first. */
export interface AnnMatches {
  labels: number[];
  distances: number[];
}

/** An HNSW graph of one owner's vectors. */
export interface AnnGraph {
  /** Vectors in the graph. */
  size(): number;
  /** Adds `labels.length` vectors, given back to back in `vectors` (each label new to the graph). */
  add(labels: readonly number[], vectors: Float32Array, threads?: number): void;
  remove(label: number): void;
  /** The `k` nearest labels to `vector`. */
  search(vector: Float32Array, k: number): AnnMatches;
  /** The graph as bytes (USearch's file format), to store beside the embeddings. */
  serialize(): Uint8Array;
  /** The options it was built with. */
  readonly options: Readonly<Required<AnnOptions>>;
}

/** The `ann` config slice as written in config files (snake_case). */
export interface AnnConfig {
  min_vectors?: number;
  connectivity?: number;
  expansion_add?: number;
  expansion_search?: number;
  quantization?: AnnQuantization;
  build_threads?: number;
}

/** The `ann` config slice's defaults, for the module's config.json. */
export const DEFAULT_ANN_CONFIG: Readonly<Required<AnnConfig>> = Object.freeze({
  min_vectors: DEFAULT_ANN.minVectors,
  connectivity: DEFAULT_ANN.connectivity,
  expansion_add: DEFAULT_ANN.expansionAdd,
  expansion_search: DEFAULT_ANN.expansionSearch,
  quantization: DEFAULT_ANN.quantization,
  build_threads: DEFAULT_ANN.buildThreads,
});

/** Turns the `ann` config slice into AnnOptions (checked). */
export function annOptionsFromConfig(config: AnnConfig = {}): Required<AnnOptions> {
  const options: AnnOptions = {};
  if (config.min_vectors !== undefined) options.minVectors = config.min_vectors;
  if (config.connectivity !== undefined) options.connectivity = config.connectivity;
  if (config.expansion_add !== undefined) options.expansionAdd = config.expansion_add;
  if (config.expansion_search !== undefined) options.expansionSearch = config.expansion_search;
  if (config.quantization !== undefined) options.quantization = config.quantization;
  if (config.build_threads !== undefined) options.buildThreads = config.build_threads;
  return resolveAnnOptions(options);
}

/** Fills in and checks ANN options. */
export function resolveAnnOptions(options: AnnOptions = {}): Required<AnnOptions> {
  const resolved = { ...DEFAULT_ANN } as Required<AnnOptions>;
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined) (resolved as Record<string, unknown>)[key] = value;
  }
  const integers: Array<[keyof AnnOptions, number]> = [
    ['minVectors', 0],
    ['connectivity', 2],
    ['expansionAdd', 1],
    ['expansionSearch', 1],
    ['buildThreads', 0],
  ];
  for (const [key, minimum] of integers) {
    const value = resolved[key] as number;
    if (!Number.isSafeInteger(value) || value < minimum) {
      throw new ValidationError(`ann.${key} must be an integer ≥ ${minimum}`, { details: { [key]: value } });
    }
  }
  if (!['f32', 'f16', 'i8'].includes(resolved.quantization)) {
    throw new ValidationError('ann.quantization must be f32, f16 or i8', {
      details: { quantization: resolved.quantization },
    });
  }
  return resolved;
}

const SCALAR_KINDS = { f32: 'F32', f16: 'F16', i8: 'I8' } as const;

function newIndex(library: Usearch, dimension: number, options: Required<AnnOptions>): UsearchIndex {
  return new library.Index({
    dimensions: dimension,
    metric: library.MetricKind.Cos,
    quantization: library.ScalarKind[SCALAR_KINDS[options.quantization]],
    connectivity: options.connectivity,
    expansion_add: options.expansionAdd,
    expansion_search: options.expansionSearch,
    multi: false,
  });
}

function wrap(index: UsearchIndex, options: Required<AnnOptions>): AnnGraph {
  return {
    options,
    size: () => index.size(),
    add(labels, vectors, threads = 1) {
      if (labels.length === 0) return;
      const keys = new BigUint64Array(labels.length);
      for (let position = 0; position < labels.length; position++) keys[position] = BigInt(labels[position]!);
      index.add(keys, vectors, threads);
    },
    remove(label) {
      index.remove(BigInt(label));
    },
    search(vector, k) {
      // One thread: a single query gains nothing from more, and the event loop's core is already busy.
      const matches = index.search(vector, k, 1);
      const labels: number[] = [];
      const distances: number[] = [];
      for (let position = 0; position < matches.keys.length; position++) {
        labels.push(Number(matches.keys[position]));
        distances.push(matches.distances[position]!);
      }
      return { labels, distances };
    },
    serialize() {
      // USearch saves to a path only; a temporary file carries the bytes to the storage backend.
      const path = join(tmpdir(), `parley-ann-${randomUUID()}.usearch`);
      try {
        index.save(path);
        return new Uint8Array(readFileSync(path));
      } finally {
        rmSync(path, { force: true });
      }
    },
  };
}

/** An empty graph for vectors of `dimension`, or `undefined` when the ANN library is not available. */
export function createAnnGraph(dimension: number, options: AnnOptions = {}): AnnGraph | undefined {
  if (usearch === undefined) return undefined;
  const resolved = resolveAnnOptions(options);
  return wrap(newIndex(usearch, dimension, resolved), resolved);
}

/** A graph read back from `serialize()` bytes; throws when the bytes are not a graph of that dimension. */
export function annGraphFromBytes(
  bytes: Uint8Array,
  dimension: number,
  options: AnnOptions = {},
): AnnGraph | undefined {
  if (usearch === undefined) return undefined;
  const resolved = resolveAnnOptions(options);
  const index = newIndex(usearch, dimension, resolved);
  const path = join(tmpdir(), `parley-ann-${randomUUID()}.usearch`);
  try {
    writeFileSync(path, bytes);
    index.load(path);
  } finally {
    rmSync(path, { force: true });
  }
  if (index.dimensions() !== dimension) {
    throw new ValidationError(`the stored graph has dimension ${index.dimensions()}, expected ${dimension}`);
  }
  // Search-time expansion is not part of what matters in the file: take the configured one.
  return wrap(index, resolved);
}
