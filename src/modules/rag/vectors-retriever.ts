/**
 * The dense retriever the rag service fuses with BM25 (the `Retriever` hook of retrieval.ts): one vector
 * index per owner, embedded with the configured model, loaded on the owner's first request.
 *
 * Durability follows the BM25 index's design: a change is appended to the owner's journal
 * (`vectors/{index_id}/journal.jsonl`, one fsynced line with the new chunks' vectors) before
 * `indexDocument` resolves, so an acknowledged add survives a crash; the index snapshot (embeddings.npy,
 * index.json, ann.usearch) is rewritten after `snapshotEvery` changes or `snapshotDelayMs` after the
 * last one, and on `flush()`, then the journal is emptied. Loading replays journal lines newer than the
 * snapshot's sequence number. Calls for one owner run one at a time.
 *
 * A stored index made by another embedding model fails the owner's loads with
 * CHAT_ERR_RAG_EMBEDDING_MISMATCH until `reindex(ownerId, chunks)` (`parley rag reindex`) rebuilds it.
 */
import { PlatformError } from '../../core/errors.ts';
import type { MetadataFilter } from '../../retrieval/bm25.ts';
import type { AnnOptions } from './ann.ts';
import { type ChunkEmbedder, type EmbeddableChunk, embedChunks } from './embed-chunks.ts';
import type { Retriever, RetrieverDocument, RetrieverHit } from './retrieval.ts';
import {
  createVectorIndex,
  embeddingMismatch,
  loadVectorIndex,
  type VectorIndex,
  type VectorStorage,
  vectorIndexId,
  vectorIndexPrefix,
} from './vectors.ts';
import { type ReindexResult, reindexOwner } from './vectors-reindex.ts';

/** Storage the retriever needs: the vector index's, plus append for the journal. */
export interface DenseRetrieverStorage extends VectorStorage {
  append(key: string, data: Uint8Array): Promise<void>;
}

/** Options of `createDenseRetriever`. */
export interface DenseRetrieverOptions {
  storage: DenseRetrieverStorage;
  /** The configured embedding model (`ctx.llm.embedder(name, { batchSize })`). */
  embedder: ChunkEmbedder & { dimension?: () => Promise<number> };
  ann?: AnnOptions;
  /** Its name in `fusion.weights`. Default `dense`. */
  name?: string;
  /** Journal lines after which an owner's snapshot is rewritten at once. Default 100. */
  snapshotEvery?: number;
  /** An owner's snapshot is rewritten this long after its last change. Default 5000 ms. */
  snapshotDelayMs?: number;
  /** Owners kept in memory; idle, saved ones beyond are dropped (reloaded on use). Default 100. */
  maxLoadedOwners?: number;
  /** Receives snapshot failures (the journal still holds the changes). */
  onError?: (error: unknown, context: { ownerId: string; operation: string }) => void;
}

/** The dense retriever, with what `parley rag reindex` and shutdown need. */
export interface DenseRetriever extends Retriever {
  indexDocument(document: RetrieverDocument): Promise<void>;
  removeDocument(ownerId: string, docId: string): Promise<void>;
  /** Rebuilds an owner's vectors from `chunks` with the configured model (the `parley rag reindex` step). */
  reindex(
    ownerId: string,
    chunks: Iterable<EmbeddableChunk> | AsyncIterable<EmbeddableChunk>,
    options?: { signal?: AbortSignal; onProgress?: (done: number, total: number) => void },
  ): Promise<ReindexResult>;
  /**
   * Forgets the owner's vectors in memory (not in storage), after its in-flight calls: the next call loads
   * what storage holds — after another node changed the owner's documents. Nothing is lost: every change
   * of this node is in the journal before its call resolved.
   */
  forget(ownerId: string): Promise<void>;
  /** Writes every owner's pending snapshot now (shutdown). */
  flush(): Promise<void>;
  /** Flushes, then forgets every loaded owner. */
  dispose(): Promise<void>;
}

/** One journal line. Vectors are base64 of little-endian float32. */
type JournalLine =
  | {
      seq: number;
      op: 'put';
      model: string;
      docId: string;
      chunks: Array<{ id: string; metadata?: Record<string, unknown>; vector: string }>;
    }
  | { seq: number; op: 'delete'; docId: string };

interface OwnerVectors {
  ownerId: string;
  indexId: string;
  /** Undefined until the owner's first vector (the dimension comes from the model). */
  index: VectorIndex | undefined;
  /** Last journal sequence number applied. */
  sequence: number;
  /** Journal lines since the last snapshot. */
  unsaved: number;
  timer: NodeJS.Timeout | undefined;
  /** Calls for this owner, chained one after another. */
  queue: Promise<unknown>;
  lastUsed: number;
}

/** Creates the dense retriever for the rag service's `retrievers` list. */
export function createDenseRetriever(options: DenseRetrieverOptions): DenseRetriever {
  const { storage, embedder } = options;
  const snapshotEvery = options.snapshotEvery ?? 100;
  const snapshotDelayMs = options.snapshotDelayMs ?? 5000;
  const maxLoadedOwners = options.maxLoadedOwners ?? 100;
  const owners = new Map<string, Promise<OwnerVectors>>();

  const journalKey = (indexId: string) => `${vectorIndexPrefix(indexId)}journal.jsonl`;

  async function loadOwner(ownerId: string): Promise<OwnerVectors> {
    const indexId = vectorIndexId(ownerId);
    const index = await loadVectorIndex(storage, indexId, {
      model: embedder.name,
      ...(options.ann === undefined ? {} : { ann: options.ann }),
    });
    const state: OwnerVectors = {
      ownerId,
      indexId,
      index,
      sequence: index?.sequence() ?? 0,
      unsaved: 0,
      timer: undefined,
      queue: Promise.resolve(),
      lastUsed: Date.now(),
    };
    const journal = await storage.read(journalKey(indexId));
    if (journal !== undefined) {
      for (const text of new TextDecoder().decode(journal).split('\n')) {
        if (text.trim() === '') continue;
        let line: JournalLine;
        try {
          line = JSON.parse(text) as JournalLine;
        } catch {
          continue; // a torn last line: its change was never acknowledged
        }
        if (line.seq <= state.sequence) continue;
        apply(state, line);
        state.sequence = line.seq;
        state.unsaved++;
      }
    }
    return state;
  }

  function apply(state: OwnerVectors, line: JournalLine): void {
    if (line.op === 'delete') {
      state.index?.remove(line.docId);
      return;
    }
    if (line.model !== embedder.name) {
      throw embeddingMismatch({
        indexId: state.indexId,
        storedModel: line.model,
        storedDimension: line.chunks[0] === undefined ? 0 : decodeVector(line.chunks[0].vector).length,
        model: embedder.name,
        dimension: undefined,
      });
    }
    const vectors = line.chunks.map((chunk) => decodeVector(chunk.vector));
    if (state.index === undefined && vectors[0] !== undefined) {
      state.index = createVectorIndex({ dimension: vectors[0].length, model: embedder.name, ...annOption() });
    }
    const kept = new Set(line.chunks.map((chunk) => chunk.id));
    for (const chunkId of state.index?.chunksOf(line.docId) ?? []) {
      if (!kept.has(chunkId)) state.index?.removeChunk(chunkId);
    }
    state.index?.addMany(
      line.chunks.map((chunk, position) => ({
        chunkId: chunk.id,
        docId: line.docId,
        vector: vectors[position]!,
        ...(chunk.metadata === undefined ? {} : { metadata: chunk.metadata }),
      })),
    );
  }

  function annOption(): { ann?: AnnOptions } {
    return options.ann === undefined ? {} : { ann: options.ann };
  }

  function owner(ownerId: string): Promise<OwnerVectors> {
    let entry = owners.get(ownerId);
    if (entry === undefined) {
      entry = loadOwner(ownerId);
      // A failed load (a model mismatch, say) is not cached: a reindex or a fixed config must work at once.
      entry.catch(() => owners.delete(ownerId));
      owners.set(ownerId, entry);
    }
    return entry;
  }

  /** Runs `task` after the owner's earlier calls, one at a time. */
  async function serialised<Value>(
    ownerId: string,
    task: (state: OwnerVectors) => Promise<Value>,
  ): Promise<Value> {
    const state = await owner(ownerId);
    state.lastUsed = Date.now();
    const run = state.queue.then(() => task(state));
    state.queue = run.catch(() => undefined);
    return run;
  }

  async function appendLine(state: OwnerVectors, line: JournalLine): Promise<void> {
    await storage.append(journalKey(state.indexId), new TextEncoder().encode(`${JSON.stringify(line)}\n`));
    state.sequence = line.seq;
    state.unsaved++;
  }

  /** After a change is journaled and applied in memory: snapshot now, or later. */
  async function changed(state: OwnerVectors): Promise<void> {
    if (state.unsaved >= snapshotEvery) await snapshot(state);
    else scheduleSnapshot(state);
  }

  function scheduleSnapshot(state: OwnerVectors): void {
    if (state.timer !== undefined) clearTimeout(state.timer);
    state.timer = setTimeout(() => {
      state.timer = undefined;
      serialised(state.ownerId, snapshot).catch((error: unknown) =>
        options.onError?.(error, { ownerId: state.ownerId, operation: 'snapshot' }),
      );
    }, snapshotDelayMs);
    state.timer.unref();
  }

  /** Writes the owner's index with the journal's sequence, then empties the journal (under the owner's turn). */
  async function snapshot(state: OwnerVectors): Promise<void> {
    if (state.timer !== undefined) clearTimeout(state.timer);
    state.timer = undefined;
    if (state.unsaved === 0) return;
    if (state.index !== undefined)
      await state.index.save(storage, state.indexId, { sequence: state.sequence });
    await storage.delete(journalKey(state.indexId));
    state.unsaved = 0;
    evictIdle();
  }

  /** Drops the least recently used owners beyond `maxLoadedOwners` that have nothing unsaved. */
  function evictIdle(): void {
    if (owners.size <= maxLoadedOwners) return;
    void Promise.allSettled(owners.values()).then((loaded) => {
      const idle = loaded
        .filter((result): result is PromiseFulfilledResult<OwnerVectors> => result.status === 'fulfilled')
        .map((result) => result.value)
        .filter((state) => state.unsaved === 0 && state.timer === undefined)
        .sort((left, right) => left.lastUsed - right.lastUsed);
      for (const state of idle) {
        if (owners.size <= maxLoadedOwners) break;
        owners.delete(state.ownerId);
      }
    });
  }

  const retriever: DenseRetriever = {
    name: options.name ?? 'dense',

    indexDocument(document) {
      return serialised(document.ownerId, async (state) => {
        const chunks: EmbeddableChunk[] = document.chunks.map((chunk) => ({
          id: chunk.id,
          docId: document.docId,
          text: chunk.text,
          ...(chunk.heading === undefined ? {} : { heading: chunk.heading }),
          metadata: chunk.metadata,
        }));
        if (state.index === undefined) {
          if (chunks.length === 0) return;
          const dimension =
            embedder.dimension === undefined
              ? (await embedder.embed([chunks[0]!.text]))[0]!.length
              : await embedder.dimension();
          state.index = createVectorIndex({ dimension, model: embedder.name, ...annOption() });
        }
        // Embedded first, journaled second, applied last: a failure at any step leaves memory as it was.
        const staging = state.index;
        const before = new Set(staging.chunksOf(document.docId));
        const vectors = new Map<string, Float32Array>();
        for (const chunk of chunks) {
          const known = before.has(chunk.id) ? staging.vectorOf(chunk.id) : undefined;
          if (known !== undefined) vectors.set(chunk.id, known);
        }
        const missing = chunks.filter((chunk) => !vectors.has(chunk.id));
        const embedded = await embedChunks(embedder, missing);
        missing.forEach((chunk, position) => {
          const vector = embedded.vectors[position]!;
          if (vector.length !== staging.dimension) {
            throw embeddingMismatch({
              indexId: state.indexId,
              storedModel: embedder.name,
              storedDimension: staging.dimension,
              model: embedder.name,
              dimension: vector.length,
            });
          }
          vectors.set(chunk.id, vector);
        });
        await appendLine(state, {
          seq: state.sequence + 1,
          op: 'put',
          model: embedder.name,
          docId: document.docId,
          chunks: chunks.map((chunk) => ({
            id: chunk.id,
            ...(chunk.metadata === undefined ? {} : { metadata: chunk.metadata }),
            vector: encodeVector(vectors.get(chunk.id)!),
          })),
        });
        for (const chunkId of before) if (!vectors.has(chunkId)) staging.removeChunk(chunkId);
        staging.addMany(
          chunks.map((chunk) => ({
            chunkId: chunk.id,
            docId: chunk.docId,
            vector: vectors.get(chunk.id)!,
            ...(chunk.metadata === undefined ? {} : { metadata: chunk.metadata }),
          })),
        );
        await changed(state);
      });
    },

    removeDocument(ownerId, docId) {
      return serialised(ownerId, async (state) => {
        if (state.index === undefined || state.index.chunksOf(docId).length === 0) return;
        await appendLine(state, { seq: state.sequence + 1, op: 'delete', docId });
        state.index.remove(docId);
        await changed(state);
      });
    },

    async search(query, searchOptions: { ownerId: string; topK: number; filter?: MetadataFilter }) {
      const state = await owner(searchOptions.ownerId);
      state.lastUsed = Date.now();
      if (state.index === undefined || state.index.size() === 0) return [];
      const [vector] = await embedder.embed([query]);
      if (vector === undefined) {
        throw new PlatformError(
          'CHAT_ERR_LLM_PROVIDER_FAILED',
          `embedding model ${embedder.name} returned no vector`,
        );
      }
      const hits = state.index.search(vector, {
        topK: searchOptions.topK,
        ...(searchOptions.filter === undefined ? {} : { filter: searchOptions.filter }),
      });
      return hits.map((hit): RetrieverHit => ({ chunkId: hit.chunkId, score: hit.score }));
    },

    async reindex(ownerId, chunks, reindexOptions = {}) {
      // Not through owner(): its load is what fails on a model mismatch, and a reindex replaces it anyway.
      const previous = owners.get(ownerId);
      const state = previous === undefined ? undefined : await previous.catch(() => undefined);
      await state?.queue;
      if (state?.timer !== undefined) clearTimeout(state.timer);
      owners.delete(ownerId);
      const result = await reindexOwner({
        storage,
        ownerId,
        embedder,
        chunks,
        ...annOption(),
        ...(reindexOptions.signal === undefined ? {} : { signal: reindexOptions.signal }),
        ...(reindexOptions.onProgress === undefined ? {} : { onProgress: reindexOptions.onProgress }),
      });
      // The journal described the old index: the new one replaces all of it.
      await storage.delete(journalKey(result.indexId));
      // A query during the reindex may have loaded the old index again: the next call reads the new one.
      owners.delete(ownerId);
      return result;
    },

    async forget(ownerId) {
      const entry = owners.get(ownerId);
      if (entry === undefined) return;
      const state = await entry.catch(() => undefined);
      await state?.queue;
      if (state?.timer !== undefined) clearTimeout(state.timer);
      if (owners.get(ownerId) === entry) owners.delete(ownerId);
    },

    async flush() {
      const loaded = await Promise.allSettled(owners.values());
      for (const result of loaded) {
        if (result.status !== 'fulfilled') continue;
        await serialised(result.value.ownerId, snapshot);
      }
    },

    async dispose() {
      await retriever.flush();
      owners.clear();
    },
  };
  return retriever;
}

function encodeVector(vector: Float32Array): string {
  return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64');
}

function decodeVector(text: string): Float32Array {
  const bytes = Buffer.from(text, 'base64');
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return new Float32Array(copy.buffer);
}
