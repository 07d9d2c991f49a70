/**
 * The rag module's parts put together — per-owner indexes, ingest, retrieval — behind the RagApi that the
 * module's event handlers and `ctx.getModule('rag')` expose. Kept apart from index.ts so tests (and the
 * dense-vector work) can build it with their own storage and retrievers.
 */
import { NotFoundError, ValidationError } from '../../core/errors.ts';
import type { ModuleLogger, ModuleStorage } from '../../core/module.ts';
import { createVectorReindex } from './dense.ts';
import { assertDocId, readContent, summarise } from './documents.ts';
import { assertOwnerId, createIngest } from './ingest.ts';
import { createOwnerIndexes } from './owner-index.ts';
import { createRetrieval, type Retrieval, type Retriever } from './retrieval.ts';
import type { DocumentChangedEvent, IndexChangedEvent, RagApi, RagConfig } from './types.ts';
import type { DenseRetriever } from './vectors-retriever.ts';

export interface RagServiceOptions {
  storage: ModuleStorage;
  config: Readonly<RagConfig>;
  log: ModuleLogger;
  /** Retrievers fused with BM25 (dense vectors); none by default. */
  retrievers?: readonly Retriever[];
  /** The dense retriever (`rag.embedding_model`): fused like `retrievers`, rebuilt by `reindexVectors`. */
  dense?: DenseRetriever;
  /** Told of every document added, updated or deleted. */
  changed?: (event: DocumentChangedEvent) => Promise<void>;
  /** Told after each change of an owner's documents made here (rag broadcasts it to the other nodes). */
  indexChanged?: (event: IndexChangedEvent) => Promise<void>;
  now?: () => Date;
  /** Size that closes an owner's change-log generation (owner-index.ts); tests make it small. */
  logGenerationBytes?: number;
}

/** A running rag: its api, plus what the module's lifecycle needs. */
export interface RagService {
  api: RagApi;
  /** A query's hits, and whether the owner has no documents at all (`knowledge.query`'s `empty`). */
  search: Retrieval['search'];
  /** Owners whose index is in memory. */
  loadedOwners(): number;
  /** Another node changed an owner's documents (`rag.index.changed`): check storage on the next request. */
  indexChanged(event: IndexChangedEvent): void;
  /** Writes pending index snapshots. */
  flush(): Promise<void>;
  dispose(): Promise<void>;
}

/** Builds the rag service over a (module-scoped) storage. */
export function createRagService(options: RagServiceOptions): RagService {
  const { storage, config, log } = options;
  const retrievers = [...(options.retrievers ?? []), ...(options.dense === undefined ? [] : [options.dense])];
  const owners = createOwnerIndexes({
    storage,
    bm25: { k1: config.bm25.k1, b: config.bm25.b, titleWeight: config.bm25.title_weight },
    snapshotEvery: config.index.snapshot_every,
    snapshotDelayMs: config.index.snapshot_delay_ms,
    maxLoadedOwners: config.index.max_loaded_owners,
    versionCheckMs: config.index.version_check_ms ?? 0,
    log,
    ...(options.now === undefined ? {} : { now: () => options.now!().getTime() }),
    ...(options.logGenerationBytes === undefined ? {} : { logGenerationBytes: options.logGenerationBytes }),
    ...(options.indexChanged === undefined ? {} : { changed: options.indexChanged }),
    // Another node changed the owner's documents: its vectors may have changed too.
    ...(options.dense === undefined
      ? {}
      : { refreshed: (ownerId: string) => options.dense!.forget(ownerId) }),
  });
  const retrieval = createRetrieval({
    owners,
    storage,
    config,
    retrievers,
    contentCacheEntries: config.content_cache_entries,
    log,
  });
  const ingest = createIngest({
    owners,
    storage,
    config,
    retrievers,
    retrieval,
    log,
    changed: options.changed ?? (async () => {}),
    ...(options.now === undefined ? {} : { now: options.now }),
  });

  const api: RagApi = {
    addDocument: ingest.addDocument,
    deleteDocument: ingest.deleteDocument,
    deleteSessionDocuments: ingest.deleteSessionDocuments,
    async deleteOwnerDocuments(ownerId) {
      const removed = await ingest.deleteOwnerDocuments(ownerId);
      await owners.erase(ownerId);
      return removed;
    },
    query: retrieval.query,
    reindexVectors: createVectorReindex({
      storage,
      dense: options.dense,
      exclusive: (ownerId, task) =>
        owners.update(ownerId, (transaction) => task(transaction.state.documents)),
    }),

    async listDocuments(request) {
      assertOwnerId(request?.ownerId);
      if (request.sessionId !== undefined && typeof request.sessionId !== 'string') {
        throw new ValidationError('sessionId must be a string', { details: { field: 'sessionId' } });
      }
      const state = await owners.get(request.ownerId);
      return [...state.documents.values()]
        .filter((record) => request.sessionId === undefined || record.sessionId === request.sessionId)
        .sort(
          (left, right) =>
            right.updatedAt.localeCompare(left.updatedAt) || left.docId.localeCompare(right.docId),
        )
        .map(summarise);
    },

    async getDocument(request) {
      assertOwnerId(request?.ownerId);
      assertDocId(request.docId);
      const state = await owners.get(request.ownerId);
      const record = state.documents.get(request.docId);
      if (record === undefined)
        throw new NotFoundError(`no document ${request.docId}`, { details: { docId: request.docId } });
      if (request.includeContent !== true) return summarise(record);
      const content = await readContent(storage, record.docId);
      return { ...summarise(record), content: content ?? '' };
    },
  };

  return {
    api,
    search: retrieval.search,
    loadedOwners: owners.loadedOwners,
    indexChanged: owners.invalidate,
    async flush() {
      await owners.flush();
      await options.dense?.flush();
    },
    async dispose() {
      await owners.dispose();
      await options.dense?.dispose();
    },
  };
}
