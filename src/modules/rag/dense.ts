/**
 * Dense retrieval as the rag module configures it: the dense retriever (vectors-retriever.ts) built from
 * `rag.embedding_model` and fused with BM25, and `parley rag reindex` — re-embedding owners' chunks from
 * their stored documents, under each owner's lock, after the embedding model changed.
 */
import { PlatformError } from '../../core/errors.ts';
import type { ModuleContext, ModuleStorage } from '../../core/module.ts';
import { annOptionsFromConfig } from './ann.ts';
import { readContent, readRecord } from './documents.ts';
import type { EmbeddableChunk } from './embed-chunks.ts';
import { retrieverDocument } from './retrieval.ts';
import type { DocumentRecord, RagConfig, VectorReindexReport, VectorReindexRequest } from './types.ts';
import { createDenseRetriever, type DenseRetriever } from './vectors-retriever.ts';

/**
 * The dense retriever of `rag.embedding_model`, or `undefined` when none is configured (BM25 only). An
 * unknown model or provider fails here, at startup, with the model layer's error.
 */
export function denseRetrieverFromConfig(ctx: ModuleContext<RagConfig>): DenseRetriever | undefined {
  const { config } = ctx;
  if (config.embedding_model === undefined) return undefined;
  // Embedding APIs are outside calls; a deployment that withholds the capability gets BM25 or a clear no.
  ctx.requireCapability('external_api_calls', `embed documents with ${config.embedding_model}`);
  const embedder = ctx.llm.embedder(config.embedding_model, { batchSize: config.vectors.batch_size });
  const log = ctx.log;
  return createDenseRetriever({
    storage: ctx.storage,
    embedder,
    ann: annOptionsFromConfig(config.ann),
    snapshotEvery: config.vectors.snapshot_every,
    snapshotDelayMs: config.vectors.snapshot_delay_ms,
    maxLoadedOwners: config.vectors.max_loaded_owners,
    onError: (error, context) => log.error({ err: error, ...context }, 'rag: vector index snapshot failed'),
  });
}

/** Every owner that has a document, found from the stored records (`documents/{doc_id}/metadata.json`). */
export async function storedOwnerIds(storage: ModuleStorage): Promise<string[]> {
  const owners = new Set<string>();
  for (const key of await storage.list('documents/')) {
    if (!key.endsWith('/metadata.json')) continue;
    const record = await readRecord(storage, key.split('/')[1]!).catch(() => undefined);
    if (record !== undefined) owners.add(record.ownerId);
  }
  return [...owners].sort();
}

/** Options of `createVectorReindex`. */
export interface VectorReindexOptions {
  storage: ModuleStorage;
  /** Runs `task` with the owner's documents while no other change of that owner runs. */
  exclusive<T>(
    ownerId: string,
    task: (documents: ReadonlyMap<string, DocumentRecord>) => Promise<T>,
  ): Promise<T>;
  /** Undefined when no embedding model is configured: a reindex then says so. */
  dense: DenseRetriever | undefined;
}

/**
 * `reindexVectors` of the rag api: for each owner (one, or every owner with documents), the chunks of its
 * current documents are embedded again with the configured model and replace its vector index. The owner's
 * documents cannot change meanwhile (its lock is held), so the new index matches them exactly.
 */
export function createVectorReindex(
  options: VectorReindexOptions,
): (request?: VectorReindexRequest) => Promise<VectorReindexReport[]> {
  const { storage, exclusive, dense } = options;
  return async (request = {}) => {
    if (dense === undefined) {
      throw new PlatformError(
        'CHAT_ERR_CONFIG_INVALID',
        'rag.embedding_model is not set, so there are no vectors to rebuild (retrieval is BM25 only); ' +
          'set it to an embedding model ("provider:model") first',
        { details: { field: 'rag.embedding_model' } },
      );
    }
    const ownerIds = request.ownerId === undefined ? await storedOwnerIds(storage) : [request.ownerId];
    const reports: VectorReindexReport[] = [];
    for (const ownerId of ownerIds) {
      const result = await exclusive(ownerId, async (documents) => {
        const chunks: EmbeddableChunk[] = [];
        for (const record of documents.values()) {
          const text = await readContent(storage, record.docId);
          if (text === undefined) continue;
          for (const chunk of retrieverDocument(record, text).chunks) {
            chunks.push({
              id: chunk.id,
              docId: record.docId,
              text: chunk.text,
              ...(chunk.heading === undefined ? {} : { heading: chunk.heading }),
              metadata: chunk.metadata,
            });
          }
        }
        return dense.reindex(ownerId, chunks, {
          ...(request.signal === undefined ? {} : { signal: request.signal }),
          ...(request.onProgress === undefined
            ? {}
            : { onProgress: (done: number, total: number) => request.onProgress?.(ownerId, done, total) }),
        });
      });
      const report: VectorReindexReport = {
        ownerId,
        model: result.model,
        chunks: result.chunks,
        embedded: result.embedded,
        reused: result.reused,
        milliseconds: Math.round(result.milliseconds),
      };
      if (result.dimension !== undefined) report.dimension = result.dimension;
      if (result.previous !== undefined) report.previous = result.previous;
      reports.push(report);
    }
    return reports;
  };
}
