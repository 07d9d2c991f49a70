/**
 * The seed's document layout, relative to rag's storage root: `documents/{doc_id}/content.txt` (the parsed
 * text, which chunk offsets point into) and `documents/{doc_id}/metadata.json` (the DocumentRecord).
 */
import { createHash } from 'node:crypto';
import { ValidationError } from '../../core/errors.ts';
import type { ModuleStorage } from '../../core/module.ts';
import { chargeStorageTo } from '../../storage/quota.ts';
import type { DocumentRecord, DocumentSummary } from './types.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Caller-visible document ids: what `deriveDocId` makes, and safe as one storage key segment. */
export const DOC_ID_PATTERN = /^doc_[0-9a-f]{32}$/;

/**
 * A document's id: a hash of its owner and its source, so the same file ingested again by the same owner
 * is the same document (and updates it), while two owners' files never share an id or a storage folder.
 */
export function deriveDocId(ownerId: string, source: string): string {
  return `doc_${createHash('sha256').update(`${ownerId}\u0000${source}`).digest('hex').slice(0, 32)}`;
}

/** `sha256:<hex>` of a text. */
export function contentHash(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}

/** Throws a ValidationError unless `docId` has the shape of a rag document id. */
export function assertDocId(docId: unknown): asserts docId is string {
  if (typeof docId !== 'string' || !DOC_ID_PATTERN.test(docId)) {
    throw new ValidationError('docId must be a rag document id (doc_ and 32 hex digits)', {
      details: { field: 'docId' },
    });
  }
}

function contentKey(docId: string): string {
  return `documents/${docId}/content.txt`;
}

function metadataKey(docId: string): string {
  return `documents/${docId}/metadata.json`;
}

/**
 * A metadata.json's revision: 16 hex digits of its SHA-256. Every write of a document makes a new one (the
 * record carries `updatedAt`), so nodes tell whether they hold what storage holds by comparing revisions.
 */
export function revisionOf(metadataBytes: Uint8Array): string {
  return createHash('sha256').update(metadataBytes).digest('hex').slice(0, 16);
}

/**
 * Writes the text first, then the record, so a record on disk has its content beside it (unless another
 * writer's text came in between: `readStoredDocument` tells). Returns the record's revision. The files are
 * charged to the owner's storage quota (their keys do not name the owner: storage/quota.ts): an owner
 * without room is refused (CHAT_ERR_STORAGE_QUOTA_EXCEEDED) before the text is written — or, when only
 * the record does not fit, after it, which leaves a text without a record as a crash between them would.
 */
export async function writeDocument(
  storage: ModuleStorage,
  record: DocumentRecord,
  text: string,
): Promise<string> {
  const metadata = encoder.encode(`${JSON.stringify(record, null, 2)}\n`);
  await chargeStorageTo(record.ownerId, async () => {
    await storage.write(contentKey(record.docId), encoder.encode(text));
    await storage.write(metadataKey(record.docId), metadata);
  });
  return revisionOf(metadata);
}

/**
 * A document's files as storage holds them now: both, consistent (`stored`); none (`missing`); or a record
 * whose text is not the one it was made for, or is missing (`torn`: a write cut short, or two writers of
 * the document at once whose files crossed).
 */
export type StoredDocument =
  | { state: 'stored'; record: DocumentRecord; text: string; revision: string }
  | { state: 'missing' }
  | { state: 'torn'; revision: string };

/** Reads a document's record and text and checks that they belong together. */
export async function readStoredDocument(storage: ModuleStorage, docId: string): Promise<StoredDocument> {
  const metadata = await storage.read(metadataKey(docId));
  if (metadata === undefined) return { state: 'missing' };
  const revision = revisionOf(metadata);
  let record: DocumentRecord;
  try {
    record = JSON.parse(decoder.decode(metadata)) as DocumentRecord;
  } catch {
    return { state: 'torn', revision };
  }
  const text = await readContent(storage, docId);
  if (text === undefined || contentHash(text) !== record.contentHash) return { state: 'torn', revision };
  return { state: 'stored', record, text, revision };
}

/** The stored record, or `undefined`. */
export async function readRecord(storage: ModuleStorage, docId: string): Promise<DocumentRecord | undefined> {
  const bytes = await storage.read(metadataKey(docId));
  return bytes === undefined ? undefined : (JSON.parse(decoder.decode(bytes)) as DocumentRecord);
}

/** The stored text, or `undefined`. */
export async function readContent(storage: ModuleStorage, docId: string): Promise<string | undefined> {
  const bytes = await storage.read(contentKey(docId));
  return bytes === undefined ? undefined : decoder.decode(bytes);
}

/** Deletes both files of a document. */
export async function deleteDocumentFiles(storage: ModuleStorage, docId: string): Promise<void> {
  await storage.delete(metadataKey(docId));
  await storage.delete(contentKey(docId));
}

/** The record without its chunk list (what listings return). */
export function summarise(record: DocumentRecord): DocumentSummary {
  const { chunks, ...rest } = record;
  return { ...rest, chunkCount: chunks.length };
}
