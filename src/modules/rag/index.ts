import { PlatformError, ValidationError } from '../../core/errors.ts';
import type { EventEnvelope } from '../../core/events.ts';
import { defineModule } from '../../core/module.ts';
import { USER_ERASE, type UserEraseRequest } from '../../core/user-erasure.ts';
import defaults from './config.json' with { type: 'json' };
import configSchema from './config.schema.json' with { type: 'json' };
import { denseRetrieverFromConfig } from './dense.ts';
import { createRagService } from './rag-service.ts';
import type { Retriever } from './retrieval.ts';
import type {
  DocumentAddRequest,
  DocumentDeleteRequest,
  DocumentGetRequest,
  DocumentListRequest,
  IndexChangedEvent,
  KnowledgeQuery,
  KnowledgeResponse,
  RagApi,
  RagConfig,
  RagQueryRequest,
} from './types.ts';

/** The request payload, or a ValidationError when there is none (a reply must say what was wrong). */
function payload<T>(event: EventEnvelope<T>): T {
  if (typeof event.data !== 'object' || event.data === null) {
    throw new ValidationError(`${event.type}: the event data must be an object`);
  }
  return event.data;
}

/**
 * Retrieval-augmented generation: documents (text, Markdown, HTML, PDF, DOCX) are parsed, chunked and
 * indexed per owner; queries return the owner's best chunks with what a citation needs. Answers
 * `knowledge.query` (the seed's aggregation) so a chat turn can gather knowledge from every source.
 */
export default defineModule<RagConfig, RagApi>({
  info: {
    name: 'rag',
    version: '1.0.0',
    // Embedding models behind an API (the dense retriever) are external calls.
    capabilities: ['external_api_calls'],
    dependencies: [],
  },
  configSchema,
  defaults,
  handles: [
    'rag.document.add',
    'rag.document.delete',
    'rag.document.list',
    'rag.document.get',
    'rag.query',
    'knowledge.query',
    // A deleted chat session takes the documents bound to it along (text_chat emits it).
    'session.deleted',
    USER_ERASE,
  ],
  setup(ctx) {
    if (ctx.config.chunk_overlap >= ctx.config.chunk_size) {
      throw new PlatformError('CHAT_ERR_CONFIG_INVALID', 'rag.chunk_overlap must be below rag.chunk_size', {
        details: { chunk_size: ctx.config.chunk_size, chunk_overlap: ctx.config.chunk_overlap },
      });
    }
    // Retrievers fused with BM25 by reciprocal rank (see README "Hybrid retrieval"): dense vectors when
    // rag.embedding_model is set, plus any other retriever listed here.
    const retrievers: Retriever[] = [];
    const dense = denseRetrieverFromConfig(ctx);
    const service = createRagService({
      storage: ctx.storage,
      config: ctx.config,
      log: ctx.log,
      retrievers,
      ...(dense === undefined ? {} : { dense }),
      changed: (event) => ctx.emit('rag.document.changed', event, { userId: event.ownerId }),
      // Also the generic `knowledge.changed`: a chat turn that found the owner without any knowledge
      // stops skipping the gather (text_chat's knowledge-hints.ts).
      indexChanged: async (event) => {
        const options = { userId: event.ownerId };
        await Promise.all([
          ctx.emit('rag.index.changed', event, options),
          ctx.emit('knowledge.changed', { userId: event.ownerId, source: 'rag' }, options),
        ]);
      },
    });
    const { api } = service;

    return {
      api,
      handlers: {
        'rag.document.add': (event: EventEnvelope<DocumentAddRequest>) => api.addDocument(payload(event)),
        'rag.document.delete': (event: EventEnvelope<DocumentDeleteRequest>) =>
          api.deleteDocument(payload(event)),
        'rag.document.list': async (event: EventEnvelope<DocumentListRequest>) => ({
          documents: await api.listDocuments(payload(event)),
        }),
        'rag.document.get': (event: EventEnvelope<DocumentGetRequest>) => api.getDocument(payload(event)),
        'rag.query': async (event: EventEnvelope<RagQueryRequest>) => ({
          hits: await api.query(payload(event)),
        }),
        // text_chat deleted a session: its documents go too (idempotent, so a redelivery is harmless).
        'session.deleted': async (event) => {
          const { userId, sessionId } = payload(event);
          const result = await api.deleteSessionDocuments({ ownerId: userId, sessionId });
          if (result.docIds.length > 0) {
            ctx.log.info(
              { ownerId: userId, sessionId, documents: result.docIds.length, chunks: result.chunks },
              'rag: removed the documents of a deleted session',
            );
          }
        },
        // An erased user: every document of theirs goes.
        [USER_ERASE]: async (event: EventEnvelope<UserEraseRequest>) => {
          const { docIds } = await api.deleteOwnerDocuments(payload(event).userId);
          return { erased: docIds.length };
        },
        // Every node hears every node's changes (not a work event: each node drops its own stale copy).
        'rag.index.changed': {
          mode: 'local',
          handler: (event: EventEnvelope<IndexChangedEvent>) => {
            const { ownerId, version } = event.data ?? ({} as Partial<IndexChangedEvent>);
            if (typeof ownerId === 'string' && typeof version === 'string') {
              service.indexChanged({ ownerId, version });
            }
          },
        },
        // Aggregation: rag's reply to a gather is the seed's `knowledge.response`.
        'knowledge.query': async (event: EventEnvelope<KnowledgeQuery>): Promise<KnowledgeResponse> => {
          const data = payload(event);
          const ownerId = data.userId ?? event.userId;
          if (typeof ownerId !== 'string' || ownerId === '') {
            throw new ValidationError('knowledge.query needs a userId (in the data or the envelope)', {
              details: { field: 'userId' },
            });
          }
          const request: RagQueryRequest = { ownerId, query: data.query };
          // A generic gatherer may ask for more than rag serves: give the most rag serves, not an error.
          if (data.topK !== undefined) request.topK = Math.min(data.topK, ctx.config.max_top_k);
          if (data.sessionId !== undefined) request.sessionId = data.sessionId;
          if (data.filter !== undefined) request.filter = data.filter;
          if (data.context !== undefined) request.context = data.context;
          const { hits, ownerHasNone } = await service.search(request);
          return ownerHasNone
            ? { source: 'rag', results: hits, empty: true }
            : { source: 'rag', results: hits };
        },
      },
      health: () => ({
        healthy: true,
        detail:
          `${service.loadedOwners()} owner indexes in memory; ` +
          (dense === undefined ? 'BM25 only' : `hybrid with ${ctx.config.embedding_model}`),
      }),
      dispose: () => service.dispose(),
    };
  },
});
