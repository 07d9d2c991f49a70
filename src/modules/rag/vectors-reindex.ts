/**
 * `parley rag reindex`: rebuilds an owner's vector index from its chunks with the configured embedding
 * model — the way out of CHAT_ERR_RAG_EMBEDDING_MISMATCH after the model or its dimension changed, and of
 * CHAT_ERR_RAG_INDEX_CORRUPT. When the stored index was made by the same model (a reindex after a
 * re-chunking, say), vectors of chunks whose id is unchanged are reused instead of embedded again.
 */
import { isPlatformError } from '../../core/errors.ts';
import type { AnnOptions } from './ann.ts';
import { type ChunkEmbedder, type EmbeddableChunk, embedChunks } from './embed-chunks.ts';
import {
  createVectorIndex,
  deleteVectorIndex,
  loadVectorIndex,
  readVectorIndexManifest,
  type VectorIndex,
  type VectorStorage,
  vectorIndexId,
} from './vectors.ts';

/** Options of `reindexOwner`. */
export interface ReindexOptions {
  /** The rag module's storage (keys `vectors/{index_id}/…`). */
  storage: VectorStorage;
  ownerId: string;
  /** The configured embedding model. */
  embedder: ChunkEmbedder & { dimension?: () => Promise<number> };
  /** Every chunk the owner has now, with its metadata (from the stored documents). */
  chunks: Iterable<EmbeddableChunk> | AsyncIterable<EmbeddableChunk>;
  ann?: AnnOptions;
  signal?: AbortSignal;
  /** Called after each embedding batch. */
  onProgress?: (done: number, total: number) => void;
}

/** What a reindex did. */
export interface ReindexResult {
  ownerId: string;
  indexId: string;
  model: string;
  /** Undefined when the owner has no chunks (the stored index is then deleted). */
  dimension: number | undefined;
  chunks: number;
  embedded: number;
  reused: number;
  /** The index that was stored before, when there was a readable one. */
  previous?: { model: string; dimension: number; count: number };
  /** The new index (already saved), to swap in for the one in memory; undefined for no chunks. */
  index: VectorIndex | undefined;
  milliseconds: number;
}

/** Re-embeds an owner's chunks with `embedder` and replaces the stored vector index. */
export async function reindexOwner(options: ReindexOptions): Promise<ReindexResult> {
  const started = performance.now();
  const { storage, ownerId, embedder } = options;
  const indexId = vectorIndexId(ownerId);
  const chunks: EmbeddableChunk[] = [];
  for await (const chunk of options.chunks) chunks.push(chunk);

  const previousManifest = await readVectorIndexManifest(storage, indexId).catch((error: unknown) => {
    // A corrupt index is exactly what a reindex replaces.
    if (isPlatformError(error) && error.code === 'CHAT_ERR_RAG_INDEX_CORRUPT') return undefined;
    throw error;
  });
  const previous =
    previousManifest === undefined
      ? undefined
      : {
          model: previousManifest.model,
          dimension: previousManifest.dimension,
          count: previousManifest.count,
        };

  const result = {
    ownerId,
    indexId,
    model: embedder.name,
    chunks: chunks.length,
    ...(previous ? { previous } : {}),
  };
  if (chunks.length === 0) {
    await deleteVectorIndex(storage, indexId);
    const milliseconds = performance.now() - started;
    return { ...result, dimension: undefined, embedded: 0, reused: 0, index: undefined, milliseconds };
  }

  const old = await reusableIndex(options, indexId, previous);
  const { vectors, embedded, reused } = await embedChunks(embedder, chunks, {
    ...(old === undefined ? {} : { reuse: (chunkId: string) => old.vectorOf(chunkId) }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
  });
  const dimension = vectors[0]!.length;
  const index = createVectorIndex({
    dimension,
    model: embedder.name,
    ...(options.ann === undefined ? {} : { ann: options.ann }),
  });
  index.addMany(
    chunks.map((chunk, position) => ({
      chunkId: chunk.id,
      docId: chunk.docId,
      vector: vectors[position]!,
      ...(chunk.metadata === undefined ? {} : { metadata: chunk.metadata }),
    })),
  );
  await index.save(storage, indexId);
  return { ...result, dimension, embedded, reused, index, milliseconds: performance.now() - started };
}

/** The stored index, when it was made by the same model with the same dimension (its vectors still fit). */
async function reusableIndex(
  options: ReindexOptions,
  indexId: string,
  previous: { model: string; dimension: number } | undefined,
): Promise<VectorIndex | undefined> {
  if (previous?.model !== options.embedder.name) return undefined;
  // The same name can serve another dimension (a server whose model was swapped): ask once, to be sure.
  if (
    options.embedder.dimension !== undefined &&
    (await options.embedder.dimension()) !== previous.dimension
  ) {
    return undefined;
  }
  // Nothing reusable is not a failure: everything is embedded again.
  return loadVectorIndex(options.storage, indexId, {
    model: previous.model,
    dimension: previous.dimension,
    // The graph is not needed to read vectors back: skip building it.
    ann: { ...options.ann, minVectors: Number.MAX_SAFE_INTEGER },
  }).catch(() => undefined);
}
