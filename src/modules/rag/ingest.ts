/**
 * Adding and deleting documents. A document is parsed and chunked outside the owner's lock (parsing a big
 * PDF must not hold up the owner's other changes), then, under the lock: skipped when nothing changed,
 * otherwise handed to the other retrievers, then written (`content.txt`, `metadata.json`, a line in the
 * owner's change log) and indexed by the owner's transaction — in that order, so what is acknowledged
 * survives a crash and what is indexed has its files.
 */
import { NotFoundError, PlatformError, ValidationError } from '../../core/errors.ts';
import type { ModuleLogger, ModuleStorage } from '../../core/module.ts';
import type { MetadataValue } from '../../retrieval/bm25.ts';
import { chunkDocument } from './chunker.ts';
import { assertDocId, contentHash, deriveDocId, readContent } from './documents.ts';
import type { OwnerIndexes, OwnerTransaction } from './owner-index.ts';
import { parseDocument } from './parsers.ts';
import { type Retrieval, type Retriever, retrieverDocument } from './retrieval.ts';
import type {
  DocumentAddRequest,
  DocumentAddResult,
  DocumentChangedEvent,
  DocumentDeleteRequest,
  DocumentDeleteResult,
  DocumentMetadataValue,
  DocumentRecord,
  RagConfig,
  SessionDocumentsDeleteRequest,
  SessionDocumentsDeleteResult,
} from './types.ts';

/** Metadata keys rag sets on every chunk itself; a document's own metadata may not use them. */
export const RESERVED_METADATA_KEYS: readonly string[] = ['docId', 'kind', 'mediaType', 'scope'];

const MAX_TITLE_LENGTH = 300;
const MAX_NAME_LENGTH = 1000;
const MAX_METADATA_KEYS = 32;
const BASE64 = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

export interface IngestOptions {
  owners: OwnerIndexes;
  storage: ModuleStorage;
  config: Readonly<RagConfig>;
  retrievers: readonly Retriever[];
  retrieval: Retrieval;
  log: ModuleLogger;
  /** Told of every change that was made (not of `unchanged`). */
  changed(event: DocumentChangedEvent): Promise<void>;
  now?: () => Date;
}

/** The write side of the module. */
export interface Ingest {
  addDocument(request: DocumentAddRequest): Promise<DocumentAddResult>;
  deleteDocument(request: DocumentDeleteRequest): Promise<DocumentDeleteResult>;
  deleteSessionDocuments(request: SessionDocumentsDeleteRequest): Promise<SessionDocumentsDeleteResult>;
  /** Removes every document of the owner (an erased user). */
  deleteOwnerDocuments(ownerId: string): Promise<{ docIds: string[]; chunks: number }>;
}

function invalid(field: string, message: string): ValidationError {
  return new ValidationError(message, { details: { field } });
}

/** Throws a ValidationError unless `ownerId` is a usable owner id. */
export function assertOwnerId(ownerId: unknown): asserts ownerId is string {
  if (typeof ownerId !== 'string' || ownerId === '' || ownerId.length > 256) {
    throw invalid('ownerId', 'ownerId must be a non-empty string of at most 256 characters');
  }
}

function optionalString(value: unknown, field: string, maxLength: number): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.trim() === '' || value.length > maxLength) {
    throw invalid(field, `${field} must be a non-empty string of at most ${maxLength} characters`);
  }
  return value;
}

function checkMetadata(metadata: unknown): Record<string, DocumentMetadataValue> {
  if (metadata === undefined) return {};
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw invalid('metadata', 'metadata must be an object');
  }
  const entries = Object.entries(metadata);
  if (entries.length > MAX_METADATA_KEYS) {
    throw invalid('metadata', `metadata may have at most ${MAX_METADATA_KEYS} keys`);
  }
  const isScalar = (value: unknown): value is MetadataValue =>
    value === null || ['string', 'number', 'boolean'].includes(typeof value);
  for (const [key, value] of entries) {
    if (RESERVED_METADATA_KEYS.includes(key)) {
      throw invalid(
        'metadata',
        `metadata key "${key}" is set by rag itself (reserved: ${RESERVED_METADATA_KEYS.join(', ')})`,
      );
    }
    if (!(isScalar(value) || (Array.isArray(value) && value.every(isScalar)))) {
      throw invalid(
        'metadata',
        `metadata "${key}" must be a string, number, boolean, null or a list of them`,
      );
    }
  }
  return { ...(metadata as Record<string, DocumentMetadataValue>) };
}

/** The upload as bytes or text, after the size check. */
function payloadOf(
  request: DocumentAddRequest,
  maxBytes: number,
): { bytes?: Uint8Array; text?: string; size: number } {
  const hasText = request.content !== undefined;
  const hasBytes = request.contentBase64 !== undefined;
  if (hasText === hasBytes) {
    throw invalid('content', 'give exactly one of content (text) and contentBase64 (a file’s bytes)');
  }
  const tooLarge = (size: number) =>
    new PlatformError(
      'CHAT_ERR_PAYLOAD_TOO_LARGE',
      `the document is ${size} bytes; rag.max_document_bytes is ${maxBytes}`,
      {
        details: { size, limit: maxBytes },
      },
    );
  if (hasText) {
    if (typeof request.content !== 'string') throw invalid('content', 'content must be a string');
    const size = Buffer.byteLength(request.content);
    if (size > maxBytes) throw tooLarge(size);
    return { text: request.content, size };
  }
  if (typeof request.contentBase64 !== 'string' || !BASE64.test(request.contentBase64)) {
    throw invalid('contentBase64', 'contentBase64 must be base64 text');
  }
  // Checked before decoding, so an oversize upload costs no memory: 4 characters carry 3 bytes.
  if (Math.floor((request.contentBase64.length * 3) / 4) > maxBytes + 3) {
    throw tooLarge(Math.floor((request.contentBase64.length * 3) / 4));
  }
  const bytes = new Uint8Array(Buffer.from(request.contentBase64, 'base64'));
  if (bytes.length > maxBytes) throw tooLarge(bytes.length);
  return { bytes, size: bytes.length };
}

function sameJson(left: unknown, right: unknown): boolean {
  return JSON.stringify(left) === JSON.stringify(right);
}

/** Whether re-ingesting would change nothing a reader can see. */
function unchanged(existing: DocumentRecord, next: DocumentRecord): boolean {
  return (
    existing.contentHash === next.contentHash &&
    existing.title === next.title &&
    existing.kind === next.kind &&
    existing.filename === next.filename &&
    existing.sessionId === next.sessionId &&
    sameJson(existing.chunking, next.chunking) &&
    sameJson(existing.metadata, next.metadata)
  );
}

/** Creates the write side over the owners' indexes. */
export function createIngest(options: IngestOptions): Ingest {
  const { owners, storage, config, retrievers, retrieval, log } = options;
  const now = options.now ?? (() => new Date());

  async function addDocument(request: DocumentAddRequest): Promise<DocumentAddResult> {
    if (typeof request !== 'object' || request === null)
      throw invalid('request', 'the request must be an object');
    assertOwnerId(request.ownerId);
    const ownerId = request.ownerId;
    const filename = optionalString(request.filename, 'filename', MAX_NAME_LENGTH);
    const mediaType = optionalString(request.mediaType, 'mediaType', 200);
    const title = optionalString(request.title, 'title', MAX_TITLE_LENGTH);
    const source = optionalString(request.source, 'source', MAX_NAME_LENGTH);
    const sessionId = optionalString(request.sessionId, 'sessionId', 256);
    if (request.docId !== undefined) assertDocId(request.docId);
    const metadata = checkMetadata(request.metadata);
    const payload = payloadOf(request, config.max_document_bytes);

    const parsed = await parseDocument({
      ...(payload.bytes === undefined ? {} : { bytes: payload.bytes }),
      ...(payload.text === undefined ? {} : { text: payload.text }),
      ...(filename === undefined ? {} : { filename }),
      ...(mediaType === undefined ? {} : { mediaType }),
      limits: {
        maxUncompressedBytes: config.max_uncompressed_bytes,
        maxArchiveEntries: config.max_archive_entries,
      },
    });
    const hash = contentHash(parsed.text);
    const docId = request.docId ?? deriveDocId(ownerId, source ?? filename ?? hash);
    const chunking = {
      chunkSize: config.chunk_size,
      chunkOverlap: config.chunk_overlap,
      format: parsed.format,
    };
    const chunks = chunkDocument({ docId, text: parsed.text, format: parsed.format }, chunking).map(
      ({ id, index, start, end, heading }) =>
        heading === undefined ? { id, index, start, end } : { id, index, start, end, heading },
    );

    const result = await owners.update(ownerId, async (transaction) => {
      const existing = transaction.state.documents.get(docId);
      // Another owner's document id looks exactly like a missing one.
      if (request.docId !== undefined && existing === undefined) {
        throw new NotFoundError(`no document ${docId}`, { details: { docId } });
      }
      const time = now().toISOString();
      const record: DocumentRecord = {
        docId,
        ownerId,
        title: (title ?? parsed.title ?? filename ?? 'Untitled').slice(0, MAX_TITLE_LENGTH),
        source: existing?.source ?? source ?? filename ?? hash,
        kind: parsed.kind,
        mediaType: parsed.mediaType,
        metadata,
        contentHash: hash,
        characters: parsed.text.length,
        bytes: payload.size,
        chunking,
        chunks,
        createdAt: existing?.createdAt ?? time,
        updatedAt: time,
      };
      if (filename !== undefined) record.filename = filename;
      if (sessionId !== undefined) record.sessionId = sessionId;

      // Unchanged only if the stored text is still what the index was built from (a crash can leave an
      // unacknowledged newer content.txt behind; re-ingesting then repairs it).
      if (
        existing !== undefined &&
        unchanged(existing, record) &&
        (await readContent(storage, docId).then((text) => text !== undefined && contentHash(text) === hash))
      ) {
        return {
          docId,
          status: 'unchanged' as const,
          chunks: existing.chunks.length,
          title: record.title,
          kind: parsed.kind,
        };
      }

      const document = retrieverDocument(record, parsed.text);
      for (const retriever of retrievers) await retriever.indexDocument?.(document);
      await transaction.put(record, parsed.text);
      retrieval.remember(record, parsed.text);
      return {
        docId,
        status: existing === undefined ? ('added' as const) : ('updated' as const),
        chunks: chunks.length,
        title: record.title,
        kind: parsed.kind,
      };
    });

    log.info(
      { ownerId, docId, status: result.status, chunks: result.chunks, kind: result.kind },
      'rag: document ingested',
    );
    if (result.status !== 'unchanged') {
      await options.changed({ ownerId, docId, change: result.status, chunks: result.chunks });
    }
    return result;
  }

  async function deleteDocument(request: DocumentDeleteRequest): Promise<DocumentDeleteResult> {
    if (typeof request !== 'object' || request === null)
      throw invalid('request', 'the request must be an object');
    assertOwnerId(request.ownerId);
    assertDocId(request.docId);
    const { ownerId, docId } = request;
    const chunks = await owners.update(ownerId, async (transaction) => {
      const existing = transaction.state.documents.get(docId);
      if (existing === undefined) throw new NotFoundError(`no document ${docId}`, { details: { docId } });
      return removeDocument(transaction, existing);
    });
    await options.changed({ ownerId, docId, change: 'deleted', chunks });
    return { docId, deleted: true, chunks };
  }

  /** Under the owner's lock: the document's files, then other retrievers' entries (its log line ends the change). */
  async function removeDocument(transaction: OwnerTransaction, record: DocumentRecord): Promise<number> {
    const { ownerId, docId } = record;
    await transaction.remove(docId);
    for (const retriever of retrievers) {
      try {
        await retriever.removeDocument?.(ownerId, docId);
      } catch (error) {
        // The document is gone: its leftover vectors can never surface (hits must be current chunks).
        log.error(
          { err: error, retriever: retriever.name, docId },
          'rag: a retriever failed to remove a document',
        );
      }
    }
    log.info({ ownerId, docId, chunks: record.chunks.length }, 'rag: document deleted');
    return record.chunks.length;
  }

  /** Removes the owner's documents `which` picks, under one lock: a query sees all of them or none. */
  async function deleteDocumentsWhere(
    ownerId: string,
    which: (record: DocumentRecord) => boolean,
  ): Promise<{ docIds: string[]; chunks: number }> {
    const removed = await owners.update(ownerId, async (transaction) => {
      const records = [...transaction.state.documents.values()].filter(which);
      const done: Array<{ docId: string; chunks: number }> = [];
      for (const record of records) {
        done.push({ docId: record.docId, chunks: await removeDocument(transaction, record) });
      }
      return done;
    });
    for (const { docId, chunks } of removed) {
      await options.changed({ ownerId, docId, change: 'deleted', chunks });
    }
    return {
      docIds: removed.map((entry) => entry.docId),
      chunks: removed.reduce((sum, entry) => sum + entry.chunks, 0),
    };
  }

  async function deleteSessionDocuments(
    request: SessionDocumentsDeleteRequest,
  ): Promise<SessionDocumentsDeleteResult> {
    if (typeof request !== 'object' || request === null)
      throw invalid('request', 'the request must be an object');
    assertOwnerId(request.ownerId);
    const { ownerId, sessionId } = request;
    if (typeof sessionId !== 'string' || sessionId === '') {
      throw invalid('sessionId', 'sessionId must be a non-empty string');
    }
    return {
      sessionId,
      ...(await deleteDocumentsWhere(ownerId, (record) => record.sessionId === sessionId)),
    };
  }

  async function deleteOwnerDocuments(ownerId: string): Promise<{ docIds: string[]; chunks: number }> {
    assertOwnerId(ownerId);
    return deleteDocumentsWhere(ownerId, () => true);
  }

  return { addDocument, deleteDocument, deleteSessionDocuments, deleteOwnerDocuments };
}
