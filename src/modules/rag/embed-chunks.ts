/**
 * Embedding chunks into a vector index: what is embedded for a chunk, in batches, and reuse of vectors
 * the index already has. Chunk ids are hashes of their content (chunker.ts), so a chunk id already in an
 * index of the same model has the right vector: re-ingesting an edited document embeds only the chunks
 * that changed.
 */
import { ValidationError } from '../../core/errors.ts';
import type { ChunkMetadata } from '../../retrieval/bm25.ts';
import type { VectorIndex } from './vectors.ts';

/** Default texts per embedding call, when the embedder says none. */
export const DEFAULT_EMBED_BATCH_SIZE = 64;

/** What embedding needs of a model (the `Embedder` of src/llm fits, e.g. `ctx.llm.embedder(name)`). */
export interface ChunkEmbedder {
  /** "provider:model", recorded in the index. */
  readonly name: string;
  /** Texts per call. */
  readonly batchSize?: number;
  embed(texts: readonly string[], options?: { signal?: AbortSignal }): Promise<Float32Array[]>;
}

/** A chunk to embed (a `Chunk` from the chunker fits), with the metadata filters match. */
export interface EmbeddableChunk {
  id: string;
  docId: string;
  text: string;
  heading?: string;
  metadata?: ChunkMetadata;
}

/** Options of `embedChunks`. */
export interface EmbedChunksOptions {
  /** Vectors already known by chunk id (from this index, or an older one of the same model). */
  reuse?: (chunkId: string) => Float32Array | undefined;
  signal?: AbortSignal;
  /** Called after each batch with the chunks done so far. */
  onProgress?: (done: number, total: number) => void;
}

/** What `embedChunks` and `indexChunkVectors` did. */
export interface EmbedChunksResult {
  /** One vector per chunk, in order. */
  vectors: Float32Array[];
  /** Chunks sent to the model. */
  embedded: number;
  /** Chunks whose vector was reused. */
  reused: number;
}

/** The text embedded for a chunk: its heading path, then its text (as BM25 indexes it). */
export function embeddingText(chunk: { text: string; heading?: string }): string {
  return chunk.heading === undefined || chunk.heading === ''
    ? chunk.text
    : `${chunk.heading}\n\n${chunk.text}`;
}

/** Embeds chunks in batches, reusing known vectors; returns one vector per chunk, in order. */
export async function embedChunks(
  embedder: ChunkEmbedder,
  chunks: readonly EmbeddableChunk[],
  options: EmbedChunksOptions = {},
): Promise<EmbedChunksResult> {
  const vectors = new Array<Float32Array | undefined>(chunks.length);
  const missing: number[] = [];
  chunks.forEach((chunk, position) => {
    const known = options.reuse?.(chunk.id);
    if (known === undefined) missing.push(position);
    else vectors[position] = known;
  });
  const reused = chunks.length - missing.length;
  const batchSize = embedder.batchSize ?? DEFAULT_EMBED_BATCH_SIZE;
  let done = reused;
  for (let start = 0; start < missing.length; start += batchSize) {
    const positions = missing.slice(start, start + batchSize);
    const texts = positions.map((position) => embeddingText(chunks[position]!));
    const embedded = await embedder.embed(
      texts,
      options.signal === undefined ? {} : { signal: options.signal },
    );
    positions.forEach((position, offset) => {
      vectors[position] = embedded[offset];
    });
    done += positions.length;
    options.onProgress?.(done, chunks.length);
  }
  return { vectors: vectors as Float32Array[], embedded: missing.length, reused };
}

/**
 * Makes `chunks` the vectors of document `docId` in the owner's index: chunks the index already holds
 * keep their vector (only new or changed chunks are embedded), chunks of the document that are no longer
 * listed are removed. Everything is embedded before the index changes, so a failed call leaves it as it
 * was. An empty list removes the document.
 */
export async function setDocumentVectors(
  index: VectorIndex,
  embedder: ChunkEmbedder,
  docId: string,
  chunks: readonly EmbeddableChunk[],
  options: Omit<EmbedChunksOptions, 'reuse'> = {},
): Promise<Omit<EmbedChunksResult, 'vectors'>> {
  const foreign = chunks.find((chunk) => chunk.docId !== docId);
  if (foreign !== undefined) {
    throw new ValidationError(`chunk ${foreign.id} belongs to document ${foreign.docId}, not ${docId}`);
  }
  const { vectors, embedded, reused } = await embedChunks(embedder, chunks, {
    ...options,
    reuse: (chunkId) => (index.documentOf(chunkId) === docId ? index.vectorOf(chunkId) : undefined),
  });
  const kept = new Set(chunks.map((chunk) => chunk.id));
  for (const chunkId of index.chunksOf(docId)) if (!kept.has(chunkId)) index.removeChunk(chunkId);
  index.addMany(
    chunks.map((chunk, position) => ({
      chunkId: chunk.id,
      docId: chunk.docId,
      vector: vectors[position]!,
      ...(chunk.metadata === undefined ? {} : { metadata: chunk.metadata }),
    })),
  );
  return { embedded, reused };
}
