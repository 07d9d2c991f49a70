import type { MetadataFilter, MetadataValue } from '../../retrieval/bm25.ts';
import type { AnnConfig } from './ann.ts';
import type { ChunkFormat } from './chunker.ts';
import type { DocumentKind } from './parsers.ts';

/** rag's config slice (defaults in config.json, schema in config.schema.json). */
export interface RagConfig {
  /** Largest chunk, in characters. */
  chunk_size: number;
  /** Characters repeated from one chunk into the next (0 … chunk_size − 1). */
  chunk_overlap: number;
  bm25: {
    /** Term-frequency saturation. */
    k1: number;
    /** Length normalisation, 0 … 1. */
    b: number;
    /** Weight of a term in a chunk's title field (document title, heading path) against its text. */
    title_weight: number;
    /** RM3 pseudo-relevance feedback on every query. */
    feedback: boolean;
  };
  /** Hits a query returns when it asks for no number. */
  top_k: number;
  /** Most hits a query may ask for. */
  max_top_k: number;
  /** Largest document accepted, in bytes (of the upload, before parsing). */
  max_document_bytes: number;
  /** Most bytes a compressed document (DOCX entries, PDF streams) may inflate to, all together. */
  max_uncompressed_bytes: number;
  /** Most entries a DOCX (ZIP) archive may have. */
  max_archive_entries: number;
  /** How long `parley ingest` waits for one document (parsing a big PDF, embedding later). */
  ingest_timeout_ms: number;
  /** Document texts kept in memory to build hits without reading `content.txt` again. */
  content_cache_entries: number;
  fusion: {
    /** Reciprocal-rank-fusion damping constant, used once more than one retriever runs. */
    k: number;
    /** Weight of each retriever by name (`bm25`, …); absent ones weigh 1. */
    weights: Record<string, number>;
    /** Each retriever is asked for topK × this many candidates before fusion. */
    candidates_factor: number;
  };
  index: {
    /** Document changes after which an owner's index snapshot is written at once. */
    snapshot_every: number;
    /** An owner's index snapshot is written this long after its last change. */
    snapshot_delay_ms: number;
    /** Owners whose index is kept in memory; idle, saved ones beyond are dropped (reloaded on use). */
    max_loaded_owners: number;
    /**
     * How long a node answers an owner's requests without reading the owner's change log again, in
     * milliseconds; 0: before every request (one small read). `rag.index.changed` ends the wait early.
     */
    version_check_ms: number;
  };
  /** "provider:model" of the embedding model; unset: BM25 only (no dense vectors). */
  embedding_model?: string;
  vectors: {
    /** Texts per embedding call. */
    batch_size: number;
    /** Journal lines after which an owner's vector snapshot is written at once. */
    snapshot_every: number;
    /** An owner's vector snapshot is written this long after its last change. */
    snapshot_delay_ms: number;
    /** Owners whose vector index is kept in memory. */
    max_loaded_owners: number;
  };
  /** HNSW parameters of the vector indexes (ann.ts). */
  ann: AnnConfig;
}

/** A metadata value a document may carry (and queries filter by). */
export type DocumentMetadataValue = MetadataValue | MetadataValue[];

/** One chunk of a stored document: where it lies in `content.txt`. */
export interface ChunkRecord {
  id: string;
  index: number;
  start: number;
  end: number;
  heading?: string;
}

/** A document as stored in `rag/documents/{doc_id}/metadata.json`. */
export interface DocumentRecord {
  docId: string;
  ownerId: string;
  title: string;
  /** What identifies the document for its owner (a path, a file name): the same source is the same doc. */
  source: string;
  filename?: string;
  kind: DocumentKind;
  mediaType: string;
  /** Bound to one chat session: found by that session's queries only (plus owner-wide listings). */
  sessionId?: string;
  /** The caller's metadata, for filters. */
  metadata: Record<string, DocumentMetadataValue>;
  /** `sha256:<hex>` of `content.txt`. */
  contentHash: string;
  /** Characters of `content.txt`. */
  characters: number;
  /** Bytes of the upload. */
  bytes: number;
  chunking: { chunkSize: number; chunkOverlap: number; format: ChunkFormat };
  chunks: ChunkRecord[];
  /** ISO-8601. */
  createdAt: string;
  /** ISO-8601. */
  updatedAt: string;
}

/** A document as listed (the record without its chunk list). */
export type DocumentSummary = Omit<DocumentRecord, 'chunks'> & { chunkCount: number };

/** `rag.document.add`: adds or replaces a document. Reply: DocumentAddResult. */
export interface DocumentAddRequest {
  ownerId: string;
  /** Text content (plain, Markdown or HTML). Exactly one of `content` and `contentBase64`. */
  content?: string;
  /** The file's bytes, base64 (PDF, DOCX, or any text file). */
  contentBase64?: string;
  /** Decides the parser with `mediaType`; also the default title and source. */
  filename?: string;
  mediaType?: string;
  /** Default: found in the file (HTML title, PDF Info, first heading), else the filename, else "Untitled". */
  title?: string;
  /** Stable identity for the owner (default `filename`, else the content hash): same source → same doc. */
  source?: string;
  /** Replace this existing document (it must be the owner's). */
  docId?: string;
  sessionId?: string;
  metadata?: Record<string, DocumentMetadataValue>;
}

/** What adding a document did. */
export type DocumentAddStatus = 'added' | 'updated' | 'unchanged';

/** Reply to `rag.document.add`. */
export interface DocumentAddResult {
  docId: string;
  status: DocumentAddStatus;
  /** Chunks the document has now. */
  chunks: number;
  title: string;
  kind: DocumentKind;
}

/** `rag.document.delete`: removes a document, its chunks and vectors. Reply: DocumentDeleteResult. */
export interface DocumentDeleteRequest {
  ownerId: string;
  docId: string;
}

/** Reply to `rag.document.delete`. */
export interface DocumentDeleteResult {
  docId: string;
  deleted: true;
  /** Chunks removed. */
  chunks: number;
}

/** Removes every document bound to a chat session (rag does it on `session.deleted`). */
export interface SessionDocumentsDeleteRequest {
  ownerId: string;
  sessionId: string;
}

/** What removing a session's documents did (nothing, for a session without documents). */
export interface SessionDocumentsDeleteResult {
  sessionId: string;
  docIds: string[];
  /** Chunks removed, over all the documents. */
  chunks: number;
}

/** `rag.document.list`: the owner's documents, newest change first. Reply: `{ documents }`. */
export interface DocumentListRequest {
  ownerId: string;
  /** Only documents bound to this session. */
  sessionId?: string;
}

/** `rag.document.get`: one document's record. Reply: DocumentSummary (+ `content` when asked). */
export interface DocumentGetRequest {
  ownerId: string;
  docId: string;
  includeContent?: boolean;
}

/** `rag.query`: the owner's best chunks for a question. Reply: `{ hits }`. */
export interface RagQueryRequest {
  ownerId: string;
  query: string;
  /**
   * The conversation before the question, newest first (a chat's previous user messages): a follow-up
   * ("and its weight?") is searched with the subject of the turns before it. The nth entry weighs 0.5^n
   * against the question's 1 and only re-orders the chunks that have a word of the question. At most
   * `MAX_CONTEXT_ENTRIES` entries of `MAX_CONTEXT_CHARACTERS` characters.
   */
  context?: string[];
  topK?: number;
  /** Equality filter on document metadata (and `docId`, `kind`, `mediaType`); a list means any of. */
  filter?: MetadataFilter;
  /** Search owner-wide documents plus those bound to this session. Without it: all of the owner's. */
  sessionId?: string;
}

/** One retrieved chunk, with what a citation needs. */
export interface RagHit {
  chunkId: string;
  docId: string;
  title: string;
  filename?: string;
  /** The chunk's text: `content.txt` of the document, sliced `[start, end)`. */
  text: string;
  start: number;
  end: number;
  /** Position of the chunk in the document, from 0. */
  chunkIndex: number;
  heading?: string;
  /** BM25 score, or the fused (reciprocal-rank) score when several retrievers ran. Higher is better. */
  score: number;
}

/**
 * `knowledge.query` (the seed's aggregation): asked with `ctx.gather`; every knowledge source replies with
 * a `KnowledgeResponse` (the seed's `knowledge.response` event is the gather reply).
 */
export interface KnowledgeQuery {
  /** Whose knowledge to search (the envelope's `userId` when absent). */
  userId?: string;
  query: string;
  /** Earlier user messages of the conversation, newest first (`RagQueryRequest.context`). */
  context?: string[];
  sessionId?: string;
  topK?: number;
  filter?: MetadataFilter;
}

/** rag's reply to `knowledge.query`. */
export interface KnowledgeResponse {
  source: 'rag';
  results: RagHit[];
  /**
   * The owner has no documents at all. A source that says so promises to emit `knowledge.changed` for the
   * user when that ends, so a gatherer may skip asking until then (text_chat does).
   */
  empty?: true;
}

/** Emitted by a knowledge source when a user's knowledge changed (rag: a document added, updated, deleted). */
export interface KnowledgeChanged {
  userId: string;
  /** The source that changed (`rag`). */
  source: string;
}

/** Broadcast after a document was added, updated or deleted (not for `unchanged`). */
export interface DocumentChangedEvent {
  ownerId: string;
  docId: string;
  change: 'added' | 'updated' | 'deleted';
  chunks: number;
}

/**
 * Broadcast (every node's rag listens locally) after a node changed an owner's documents: other nodes
 * holding the owner read its change log on their next request, whatever `index.version_check_ms`.
 * `version` is the id of the change's first line in the log (`index/log/{owner}/…`).
 */
export interface IndexChangedEvent {
  ownerId: string;
  version: string;
}

/** What `reindexVectors` rebuilds: one owner, or every owner with documents. */
export interface VectorReindexRequest {
  ownerId?: string;
  signal?: AbortSignal;
  /** Called after each embedding batch of an owner. */
  onProgress?: (ownerId: string, done: number, total: number) => void;
}

/** What a reindex did for one owner. */
export interface VectorReindexReport {
  ownerId: string;
  model: string;
  /** Absent when the owner has no chunks (its vector index is then deleted). */
  dimension?: number;
  chunks: number;
  embedded: number;
  reused: number;
  /** The index stored before, when there was a readable one. */
  previous?: { model: string; dimension: number; count: number };
  milliseconds: number;
}

/** What other modules get from `ctx.getModule('rag')`: the events' operations as functions. */
export interface RagApi {
  addDocument(request: DocumentAddRequest): Promise<DocumentAddResult>;
  deleteDocument(request: DocumentDeleteRequest): Promise<DocumentDeleteResult>;
  /** Removes the documents bound to a session (chunks, vectors, files); what `session.deleted` triggers. */
  deleteSessionDocuments(request: SessionDocumentsDeleteRequest): Promise<SessionDocumentsDeleteResult>;
  /**
   * Removes every document of the owner (an erased user: `platform.user.erase`), then the owner's index
   * files (change log, snapshot): nothing of the owner stays.
   */
  deleteOwnerDocuments(ownerId: string): Promise<{ docIds: string[]; chunks: number }>;
  listDocuments(request: DocumentListRequest): Promise<DocumentSummary[]>;
  getDocument(request: DocumentGetRequest): Promise<DocumentSummary & { content?: string }>;
  query(request: RagQueryRequest): Promise<RagHit[]>;
  /**
   * Re-embeds owners' chunks with `rag.embedding_model` (`parley rag reindex`): the way out of
   * CHAT_ERR_RAG_EMBEDDING_MISMATCH. In process only (progress is a callback); CHAT_ERR_CONFIG_INVALID
   * when no embedding model is configured.
   */
  reindexVectors(request?: VectorReindexRequest): Promise<VectorReindexReport[]>;
}

declare module '../../core/events.ts' {
  interface EventMap {
    'rag.document.add': DocumentAddRequest;
    'rag.document.delete': DocumentDeleteRequest;
    'rag.document.list': DocumentListRequest;
    'rag.document.get': DocumentGetRequest;
    'rag.document.changed': DocumentChangedEvent;
    'rag.index.changed': IndexChangedEvent;
    'rag.query': RagQueryRequest;
    'knowledge.query': KnowledgeQuery;
    'knowledge.changed': KnowledgeChanged;
  }
}
