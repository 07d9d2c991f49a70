/**
 * Answers a query from one owner's documents: BM25 over the owner's own index, fused by reciprocal rank
 * with any other retriever plugged in (dense vectors), then turned into hits that carry what a citation
 * needs — document id, title, chunk offsets and the chunk's text read back from `content.txt`.
 */
import { ValidationError } from '../../core/errors.ts';
import type { ModuleLogger, ModuleStorage } from '../../core/module.ts';
import {
  type MetadataFilter,
  matchesFilter,
  validateFilter,
  type WeightedText,
} from '../../retrieval/bm25.ts';
import { contentHash, readContent } from './documents.ts';
import { reciprocalRankFusion } from './fusion.ts';
import { chunkMetadata, type OwnerIndexes, type OwnerState } from './owner-index.ts';
import type { DocumentRecord, RagConfig, RagHit, RagQueryRequest } from './types.ts';

/** A chunk handed to a retriever for indexing. */
export interface RetrieverChunk {
  id: string;
  text: string;
  heading?: string;
  /** What queries filter by (the document's metadata plus docId, kind, mediaType, scope). */
  metadata: Record<string, unknown>;
}

/**
 * A document handed to a retriever: every chunk it has now. Chunk ids are stable, so a retriever can keep
 * (not re-embed) the ones it has, and must drop this document's chunks that are no longer listed.
 */
export interface RetrieverDocument {
  ownerId: string;
  docId: string;
  record: DocumentRecord;
  chunks: RetrieverChunk[];
}

/** One ranked chunk from a retriever. */
export interface RetrieverHit {
  chunkId: string;
  score: number;
}

/**
 * A ranked-list source besides BM25 — the hook for dense vectors. `indexDocument` runs before an add is
 * acknowledged (a failure fails the add, nothing is stored), `removeDocument` when a document is deleted or
 * replaced by one without those chunks, `search` on every query. A retriever must search the owner's chunks
 * only; rag also drops any hit that is not a chunk of the owner's current documents or fails the filter.
 */
export interface Retriever {
  /** Its name in `fusion.weights`. */
  readonly name: string;
  indexDocument?(document: RetrieverDocument): Promise<void>;
  removeDocument?(ownerId: string, docId: string): Promise<void>;
  search(
    query: string,
    options: { ownerId: string; topK: number; filter?: MetadataFilter },
  ): Promise<RetrieverHit[]>;
}

/** The chunks of a document as a retriever receives them. */
export function retrieverDocument(record: DocumentRecord, text: string): RetrieverDocument {
  const metadata = chunkMetadata(record);
  return {
    ownerId: record.ownerId,
    docId: record.docId,
    record,
    chunks: record.chunks.map((chunk) => {
      const item: RetrieverChunk = { id: chunk.id, text: text.slice(chunk.start, chunk.end), metadata };
      if (chunk.heading !== undefined) item.heading = chunk.heading;
      return item;
    }),
  };
}

export interface RetrievalOptions {
  owners: OwnerIndexes;
  storage: ModuleStorage;
  config: Readonly<RagConfig>;
  /** Retrievers fused with BM25. */
  retrievers: readonly Retriever[];
  /** Most document texts kept in memory for building hits. */
  contentCacheEntries: number;
  log: ModuleLogger;
}

/** Query answering over the owners' indexes. */
export interface Retrieval {
  query(request: RagQueryRequest): Promise<RagHit[]>;
  /** `query`, and whether the owner has no documents at all (not merely none that match). */
  search(request: RagQueryRequest): Promise<{ hits: RagHit[]; ownerHasNone: boolean }>;
  /** Remembers a document's text just written, so the next hits from it need no storage read. */
  remember(record: DocumentRecord, text: string): void;
}

/** Most earlier turns a query may carry, and the longest one (characters): a follow-up needs a few lines. */
export const MAX_CONTEXT_ENTRIES = 8;
export const MAX_CONTEXT_CHARACTERS = 4000;

/** The weight of earlier turn n (0 = the newest) against the question's 1: each turn back halves it. */
function contextWeight(position: number): number {
  return 0.5 ** (position + 1);
}

/** Validates a query request; returns the effective topK. */
function checkQuery(request: RagQueryRequest, config: Readonly<RagConfig>): number {
  if (typeof request?.ownerId !== 'string' || request.ownerId === '') {
    throw new ValidationError('ownerId must be a non-empty string', { details: { field: 'ownerId' } });
  }
  if (typeof request.query !== 'string' || request.query.trim() === '') {
    throw new ValidationError('query must be a non-empty string', { details: { field: 'query' } });
  }
  const topK = request.topK ?? config.top_k;
  if (!Number.isInteger(topK) || topK < 1 || topK > config.max_top_k) {
    throw new ValidationError(`topK must be an integer from 1 to ${config.max_top_k} (rag.max_top_k)`, {
      details: { field: 'topK', value: request.topK },
    });
  }
  if (
    request.sessionId !== undefined &&
    (typeof request.sessionId !== 'string' || request.sessionId === '')
  ) {
    throw new ValidationError('sessionId must be a non-empty string', { details: { field: 'sessionId' } });
  }
  if (request.filter !== undefined) validateFilter(request.filter);
  if (request.context !== undefined) {
    const { context } = request;
    if (
      !Array.isArray(context) ||
      context.length > MAX_CONTEXT_ENTRIES ||
      !context.every((entry) => typeof entry === 'string' && entry.length <= MAX_CONTEXT_CHARACTERS)
    ) {
      throw new ValidationError(
        `context must be a list of at most ${MAX_CONTEXT_ENTRIES} strings of at most ${MAX_CONTEXT_CHARACTERS} characters (earlier turns, newest first)`,
        { details: { field: 'context' } },
      );
    }
  }
  return topK;
}

/** The caller's filter, narrowed to owner-wide documents plus the session's when a session is given. */
function effectiveFilter(request: RagQueryRequest): MetadataFilter | undefined {
  if (request.sessionId === undefined) return request.filter;
  return { ...request.filter, scope: ['library', `session:${request.sessionId}`] };
}

/** Creates the query side of the module. */
export function createRetrieval(options: RetrievalOptions): Retrieval {
  const { owners, storage, config, retrievers, log } = options;
  // Texts by content hash: a text found here is known to be the one the chunk offsets were made for.
  const texts = new Map<string, string>();

  function remember(record: DocumentRecord, text: string): void {
    const key = `${record.docId}\u0000${record.contentHash}`;
    texts.delete(key);
    texts.set(key, text);
    while (texts.size > options.contentCacheEntries) texts.delete(texts.keys().next().value!);
  }

  /** The text the record's chunks point into, or `undefined` when the stored file has moved on. */
  async function textOf(record: DocumentRecord): Promise<string | undefined> {
    const key = `${record.docId}\u0000${record.contentHash}`;
    const cached = texts.get(key);
    if (cached !== undefined) return cached;
    const text = await readContent(storage, record.docId);
    // The document is being replaced right now (its new text is written before its record is swapped).
    if (text === undefined || contentHash(text) !== record.contentHash) return undefined;
    remember(record, text);
    return text;
  }

  async function ranked(
    state: OwnerState,
    request: RagQueryRequest,
    topK: number,
    filter: MetadataFilter | undefined,
  ): Promise<Array<{ chunkId: string; score: number }>> {
    const candidates = retrievers.length === 0 ? topK : topK * config.fusion.candidates_factor;
    const searchOptions = { ownerId: request.ownerId, topK: candidates };
    const context: WeightedText[] = (request.context ?? [])
      .map((text, position) => ({ text, weight: contextWeight(position) }))
      .filter((entry) => entry.text.trim() !== '');
    const bm25 = state.index.search(request.query, {
      ...searchOptions,
      ...(filter === undefined ? {} : { filter }),
      ...(context.length === 0 ? {} : { context }),
      feedback: config.bm25.feedback,
    });
    if (retrievers.length === 0) return bm25;
    // An embedding takes one text: the question after the turns before it (oldest first), as it was said.
    const denseQuery = [...context.map((entry) => entry.text).reverse(), request.query].join('\n');
    const lists = await Promise.all(
      retrievers.map(async (retriever) => {
        try {
          const hits = await retriever.search(denseQuery, {
            ...searchOptions,
            ...(filter === undefined ? {} : { filter }),
          });
          // Defence in depth: only the owner's current chunks that pass the filter count.
          return hits.filter((hit) => {
            const entry = state.chunks.get(hit.chunkId);
            return (
              entry !== undefined &&
              (filter === undefined || matchesFilter(chunkMetadata(entry.record), filter))
            );
          });
        } catch (error) {
          // One retriever down (an embedding API, say) degrades the answer to the others', it doesn't fail it.
          log.warn(
            { err: error, retriever: retriever.name },
            'rag: a retriever failed; answering without it',
          );
          return [];
        }
      }),
    );
    const weights = ['bm25', ...retrievers.map((retriever) => retriever.name)].map(
      (name) => config.fusion.weights[name] ?? 1,
    );
    const fused = reciprocalRankFusion(
      [bm25, ...lists].map((list) => list.map((hit) => ({ id: hit.chunkId }))),
      { k: config.fusion.k, weights, topK },
    );
    return fused.map((item) => ({ chunkId: item.id, score: item.score }));
  }

  async function search(request: RagQueryRequest): Promise<{ hits: RagHit[]; ownerHasNone: boolean }> {
    const topK = checkQuery(request, config);
    const state = await owners.get(request.ownerId);
    if (state.documents.size === 0) return { hits: [], ownerHasNone: true };
    const filter = effectiveFilter(request);
    const best = await ranked(state, request, topK, filter);
    // Look the chunks up now: the texts are read next, and the owner's documents may change meanwhile.
    const found = best.flatMap(({ chunkId, score }) => {
      const entry = state.chunks.get(chunkId);
      return entry === undefined ? [] : [{ ...entry, score }];
    });
    const records = [...new Set(found.map((hit) => hit.record))];
    const textByRecord = new Map(
      await Promise.all(records.map(async (record) => [record, await textOf(record)] as const)),
    );
    const hits: RagHit[] = [];
    for (const { record, chunk, score } of found) {
      const text = textByRecord.get(record);
      if (text === undefined) continue;
      const hit: RagHit = {
        chunkId: chunk.id,
        docId: record.docId,
        title: record.title,
        text: text.slice(chunk.start, chunk.end),
        start: chunk.start,
        end: chunk.end,
        chunkIndex: chunk.index,
        score,
      };
      if (record.filename !== undefined) hit.filename = record.filename;
      if (chunk.heading !== undefined) hit.heading = chunk.heading;
      hits.push(hit);
    }
    return { hits, ownerHasNone: false };
  }

  return {
    remember,
    search,
    query: async (request) => (await search(request)).hits,
  };
}
