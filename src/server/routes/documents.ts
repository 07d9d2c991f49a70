/**
 * Documents (the rag module) over HTTP: multipart upload of one or more files, listing, metadata and text,
 * the passage a citation points at, deletion, and retrieval queries. The owner is always the authenticated
 * user; another user's document id answers exactly like a missing one (404).
 *
 * Uploads go to the rag module of this node through its API (`getModule('rag')`): a file's bytes do not
 * fit the bus's message size on NATS. The small requests (list, metadata, delete, query) go over the bus.
 */

import multipart, { type MultipartFile, type MultipartValue } from '@fastify/multipart';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  isPlatformError,
  NotFoundError,
  PlatformError,
  toPlatformError,
  ValidationError,
} from '../../core/errors.ts';
import type {
  DocumentAddRequest,
  DocumentAddResult,
  DocumentDeleteResult,
  DocumentMetadataValue,
  DocumentSummary,
  RagApi,
  RagHit,
} from '../../modules/rag/types.ts';
import { principalOf } from '../auth-hook.ts';
import { errorResponses } from '../schemas.ts';
import type { ServerContext } from '../server-context.ts';
import { checkSessionId } from './sessions.ts';

// rag's document ids (documents.ts): anything else cannot name a document, and is answered like a missing one.
const DOC_ID = /^doc_[0-9a-f]{32}$/;
/** Form fields besides the files; any other field name is refused (a typo should not be ignored). */
const UPLOAD_FIELDS = new Set(['title', 'sessionId', 'metadata']);
/** Longest form field value, in bytes (metadata is JSON). */
const MAX_FIELD_BYTES = 16_384;
/** Room for the multipart framing and the fields when the Content-Length is checked up front. */
const FORM_OVERHEAD_BYTES = UPLOAD_FIELDS.size * MAX_FIELD_BYTES + 65_536;
/** The most surrounding text a passage request may ask for, each side. */
const MAX_PASSAGE_CONTEXT = 10_000;

/** One file of an upload, as its result lists it. */
export interface UploadResult {
  filename?: string;
  status: DocumentAddResult['status'] | 'failed';
  docId?: string;
  title?: string;
  chunks?: number;
  kind?: DocumentAddResult['kind'];
  /** Why the file was not stored (its HTTP status had it been uploaded alone). */
  error?: { code: string; message: string; status: number };
}

interface UploadedFile {
  filename: string | undefined;
  mediaType: string | undefined;
  bytes: Buffer;
}

function checkDocId(id: string): string {
  if (!DOC_ID.test(id)) throw new NotFoundError(`no document ${id}`);
  return id;
}

function tooLarge(limit: number): PlatformError {
  return new PlatformError(
    'CHAT_ERR_PAYLOAD_TOO_LARGE',
    `the upload is larger than the limit of ${limit} bytes (server.upload_limit_bytes)`,
    { details: { limit } },
  );
}

/** The metadata form field: a JSON object of scalars or lists of them (rag checks the details). */
function parseMetadata(text: string): Record<string, DocumentMetadataValue> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ValidationError('the metadata field must be a JSON object', { details: { field: 'metadata' } });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ValidationError('the metadata field must be a JSON object', { details: { field: 'metadata' } });
  }
  return value as Record<string, DocumentMetadataValue>;
}

/**
 * Reads every part of a multipart upload into memory, counting the files' bytes against the limit: the
 * whole upload is refused (413) before any file is stored, so a client never gets half an upload.
 */
async function readUpload(
  request: FastifyRequest,
  limits: { bytes: number; files: number },
): Promise<{ files: UploadedFile[]; fields: Map<string, string> }> {
  const declared = Number(request.headers['content-length']);
  // Fast path: nothing is read, and Node discards the body after the answer.
  if (Number.isFinite(declared) && declared > limits.bytes + FORM_OVERHEAD_BYTES)
    throw tooLarge(limits.bytes);
  const files: UploadedFile[] = [];
  const fields = new Map<string, string>();
  let total = 0;
  const discardRest = () => {
    // The rest of the body is read and dropped, so the client (still sending) gets the answer.
    request.raw.resume();
  };
  try {
    for await (const part of request.parts()) {
      if (part.type === 'file') {
        const file = part as MultipartFile;
        const chunks: Buffer[] = [];
        for await (const chunk of file.file as AsyncIterable<Buffer>) {
          total += chunk.length;
          if (total > limits.bytes) {
            discardRest();
            throw tooLarge(limits.bytes);
          }
          chunks.push(chunk);
        }
        files.push({
          filename: file.filename === '' ? undefined : file.filename,
          mediaType: file.mimetype === '' ? undefined : file.mimetype,
          bytes: Buffer.concat(chunks),
        });
        continue;
      }
      const field = part as MultipartValue<unknown>;
      if (!UPLOAD_FIELDS.has(field.fieldname)) {
        discardRest();
        throw new ValidationError(
          `unknown form field "${field.fieldname}"; an upload has files and the fields ${[...UPLOAD_FIELDS].join(', ')}`,
          { details: { field: field.fieldname } },
        );
      }
      if (field.valueTruncated) {
        discardRest();
        throw new ValidationError(`the ${field.fieldname} field is longer than ${MAX_FIELD_BYTES} bytes`, {
          details: { field: field.fieldname },
        });
      }
      fields.set(field.fieldname, String(field.value));
    }
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (code === 'FST_FILES_LIMIT' || code === 'FST_PARTS_LIMIT' || code === 'FST_FIELDS_LIMIT') {
      discardRest();
      throw new PlatformError(
        'CHAT_ERR_PAYLOAD_TOO_LARGE',
        `an upload may have at most ${limits.files} files (server.upload_max_files)`,
        { details: { limit: limits.files } },
      );
    }
    // What the multipart parser (busboy) throws is about the body the client sent: a missing boundary, a
    // part cut short. Ours (PlatformError) and Fastify's own (a code) already say what they are.
    if (!(error instanceof PlatformError) && code === undefined && error instanceof Error) {
      discardRest();
      throw new ValidationError(`the upload is not well-formed multipart/form-data: ${error.message}`);
    }
    throw error;
  }
  return { files, fields };
}

const documentSchema = {
  type: 'object',
  additionalProperties: true,
  required: ['docId', 'title', 'kind', 'createdAt', 'updatedAt'],
  description:
    'A document: { docId, title, filename?, kind, mediaType, sessionId?, metadata, characters, bytes, chunkCount, contentHash, createdAt, updatedAt }; `content` (the stored text, which citation offsets point into) with ?content=1.',
  properties: {
    docId: { type: 'string' },
    title: { type: 'string' },
    filename: { type: 'string' },
    kind: { type: 'string', enum: ['text', 'markdown', 'html', 'pdf', 'docx'] },
    mediaType: { type: 'string' },
    sessionId: { type: 'string' },
    metadata: { type: 'object', additionalProperties: true },
    characters: { type: 'integer' },
    bytes: { type: 'integer' },
    chunkCount: { type: 'integer' },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
    content: { type: 'string' },
  },
} as const;

const uploadResultSchema = {
  type: 'object',
  required: ['status'],
  properties: {
    filename: { type: 'string' },
    status: { type: 'string', enum: ['added', 'updated', 'unchanged', 'failed'] },
    docId: { type: 'string' },
    title: { type: 'string' },
    chunks: { type: 'integer' },
    kind: { type: 'string' },
    error: {
      type: 'object',
      required: ['code', 'message', 'status'],
      properties: { code: { type: 'string' }, message: { type: 'string' }, status: { type: 'integer' } },
    },
  },
} as const;

const uploadResponse = {
  type: 'object',
  required: ['documents'],
  properties: { documents: { type: 'array', items: uploadResultSchema } },
} as const;

const hitSchema = {
  type: 'object',
  required: ['chunkId', 'docId', 'title', 'text', 'start', 'end', 'score'],
  description: '`text` is the document text sliced [start, end).',
  properties: {
    chunkId: { type: 'string' },
    docId: { type: 'string' },
    title: { type: 'string' },
    filename: { type: 'string' },
    text: { type: 'string' },
    start: { type: 'integer' },
    end: { type: 'integer' },
    chunkIndex: { type: 'integer' },
    heading: { type: 'string' },
    score: { type: 'number' },
  },
} as const;

const docParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 200 } },
} as const;

const scalar = { type: ['string', 'number', 'boolean', 'null'] } as const;

/** Whether a file of an upload went into storage (added or updated; unchanged ones took nothing new). */
function isStored(result: UploadResult): boolean {
  return result.status === 'added' || result.status === 'updated';
}

/** Registers /v1/documents routes (in a scope of their own, where multipart bodies are parsed). */
export function registerDocumentRoutes(app: FastifyInstance, context: ServerContext): void {
  const { platform, chat } = context;
  const { upload_limit_bytes: uploadLimit, upload_max_files: maxFiles } = platform.config.server;
  const tags = ['documents'];

  /** rag on this node (uploads and texts), or `undefined` when it runs elsewhere. */
  const localRag = () => platform.modules.getModule<RagApi>('rag');
  const viaBus = <Reply>(type: string, data: Record<string, unknown>, ownerId: string) =>
    platform.bus.request<Reply>(type, data, { userId: ownerId });

  async function addDocument(request: DocumentAddRequest): Promise<DocumentAddResult> {
    const rag = await localRag();
    if (rag !== undefined) return rag.addDocument(request);
    return viaBus<DocumentAddResult>(
      'rag.document.add',
      request as unknown as Record<string, unknown>,
      request.ownerId,
    );
  }

  async function documentWithContent(ownerId: string, docId: string) {
    const rag = await localRag();
    const request = { ownerId, docId, includeContent: true };
    return rag !== undefined
      ? rag.getDocument(request)
      : viaBus<DocumentSummary & { content?: string }>('rag.document.get', request, ownerId);
  }

  app.register(async (scope) => {
    await scope.register(multipart, {
      // One byte over the limit reaches the counting in readUpload, which answers 413 with the limit.
      limits: {
        fileSize: uploadLimit + 1,
        files: maxFiles,
        fields: UPLOAD_FIELDS.size,
        fieldSize: MAX_FIELD_BYTES,
      },
      throwFileSizeLimit: false,
    });

    scope.post(
      '/v1/documents',
      {
        schema: {
          tags,
          summary: 'Upload documents (multipart/form-data): text, Markdown, HTML, PDF, DOCX',
          description:
            'One or more file parts (any field name), and optional fields `title` (one file only), `sessionId` ' +
            '(bind the documents to one chat session: only its turns and queries see them) and `metadata` ' +
            '(a JSON object, for query filters). Each file is stored or refused on its own: the answer lists ' +
            'every file with `status` added | updated | unchanged | failed (with `error`: code, message and ' +
            'the status the file alone would have had). 200 when every file was stored, 207 when at least ' +
            'one failed. The same file name uploaded again (in the same session) replaces that document. ' +
            '413 for an upload over server.upload_limit_bytes (all files together) or with more than ' +
            'server.upload_max_files files; nothing is stored then. 413 CHAT_ERR_STORAGE_QUOTA_EXCEEDED when the first ' +
            'file refused would take the user past resource_limits.max_storage_per_user (files after one stored are ' +
            'reported per file instead).',
          consumes: ['multipart/form-data'],
          response: { 200: uploadResponse, 207: uploadResponse, ...errorResponses },
        },
      },
      async (request, reply) => {
        const ownerId = principalOf(request).userId;
        if (!request.isMultipart()) {
          throw new PlatformError(
            'CHAT_ERR_VALIDATION_INVALID',
            'upload documents as multipart/form-data (curl -F file=@notes.md …)',
            { status: 415 },
          );
        }
        const { files, fields } = await readUpload(request, { bytes: uploadLimit, files: maxFiles });
        if (files.length === 0) {
          throw new ValidationError('the upload has no file part', { details: { field: 'file' } });
        }
        const title = fields.get('title');
        if (title !== undefined && files.length > 1) {
          throw new ValidationError(
            'title applies to a single file; it would give every document one title',
            {
              details: { field: 'title' },
            },
          );
        }
        const sessionId = fields.get('sessionId');
        // Binding to a session that is not the caller's is refused like any other use of it.
        if (sessionId !== undefined) await chat.getSession(ownerId, checkSessionId(sessionId));
        const metadataText = fields.get('metadata');
        const metadata = metadataText === undefined ? undefined : parseMetadata(metadataText);

        const results: UploadResult[] = [];
        for (const file of files) {
          const add: DocumentAddRequest = { ownerId, contentBase64: file.bytes.toString('base64') };
          if (file.filename !== undefined) {
            add.filename = file.filename;
            // The same name is the same document — per session, so two chats' "notes.md" stay apart.
            add.source = sessionId === undefined ? file.filename : `session/${sessionId}/${file.filename}`;
          }
          if (file.mediaType !== undefined) add.mediaType = file.mediaType;
          if (title !== undefined) add.title = title;
          if (sessionId !== undefined) add.sessionId = sessionId;
          if (metadata !== undefined) add.metadata = metadata;
          const named = file.filename === undefined ? {} : { filename: file.filename };
          try {
            const result = await addDocument(add);
            results.push({ ...named, ...result });
          } catch (caught) {
            const error = toPlatformError(caught);
            // A failing backend is the request's failure (a retry is safe: same names, same documents). So
            // is a full storage quota while nothing of the upload was stored: it is the user's, not the file's.
            if (error.status >= 500) throw error;
            if (isPlatformError(error, 'CHAT_ERR_STORAGE_QUOTA_EXCEEDED') && !results.some(isStored))
              throw error;
            results.push({
              ...named,
              status: 'failed',
              error: { code: error.code, message: error.message, status: error.status },
            });
          }
        }
        const failed = results.some((result) => result.status === 'failed');
        return reply.status(failed ? 207 : 200).send({ documents: results });
      },
    );

    scope.get<{ Querystring: { sessionId?: string } }>(
      '/v1/documents',
      {
        schema: {
          tags,
          summary: "The caller's documents, latest change first (?sessionId: only those bound to it)",
          querystring: {
            type: 'object',
            additionalProperties: false,
            properties: { sessionId: { type: 'string', minLength: 1, maxLength: 200 } },
          },
          response: {
            200: {
              type: 'object',
              required: ['documents'],
              properties: { documents: { type: 'array', items: documentSchema } },
            },
            ...errorResponses,
          },
        },
      },
      async (request) => {
        const ownerId = principalOf(request).userId;
        const { sessionId } = request.query;
        return viaBus<{ documents: DocumentSummary[] }>(
          'rag.document.list',
          { ownerId, ...(sessionId === undefined ? {} : { sessionId }) },
          ownerId,
        );
      },
    );

    scope.get<{ Params: { id: string }; Querystring: { content?: '1' | 'true' | '0' | 'false' } }>(
      '/v1/documents/:id',
      {
        schema: {
          tags,
          summary: 'One document (?content=1: with its stored text)',
          params: docParams,
          querystring: {
            type: 'object',
            additionalProperties: false,
            properties: { content: { type: 'string', enum: ['1', 'true', '0', 'false'] } },
          },
          response: { 200: documentSchema, ...errorResponses },
        },
      },
      async (request) => {
        const ownerId = principalOf(request).userId;
        const docId = checkDocId(request.params.id);
        const { content } = request.query;
        if (content === '1' || content === 'true') return documentWithContent(ownerId, docId);
        return viaBus<DocumentSummary>('rag.document.get', { ownerId, docId }, ownerId);
      },
    );

    scope.get<{ Params: { id: string }; Querystring: { start: number; end: number; context?: number } }>(
      '/v1/documents/:id/passage',
      {
        schema: {
          tags,
          summary:
            'The passage a citation points at: the text [start, end), with `context` characters around it',
          params: docParams,
          querystring: {
            type: 'object',
            additionalProperties: false,
            required: ['start', 'end'],
            properties: {
              start: { type: 'integer', minimum: 0 },
              end: { type: 'integer', minimum: 0 },
              context: { type: 'integer', minimum: 0, maximum: MAX_PASSAGE_CONTEXT, default: 0 },
            },
          },
          response: {
            200: {
              type: 'object',
              required: ['docId', 'title', 'start', 'end', 'text', 'before', 'after', 'characters'],
              properties: {
                docId: { type: 'string' },
                title: { type: 'string' },
                filename: { type: 'string' },
                start: { type: 'integer' },
                end: { type: 'integer' },
                text: { type: 'string' },
                before: { type: 'string', description: 'Up to `context` characters before the passage.' },
                after: { type: 'string', description: 'Up to `context` characters after it.' },
                characters: { type: 'integer', description: 'Length of the whole document text.' },
              },
            },
            ...errorResponses,
          },
        },
      },
      async (request) => {
        const ownerId = principalOf(request).userId;
        const docId = checkDocId(request.params.id);
        const { start, end, context: around = 0 } = request.query;
        const document = await documentWithContent(ownerId, docId);
        const text = document.content ?? '';
        if (start > end || end > text.length) {
          throw new ValidationError(
            `start and end must satisfy 0 ≤ start ≤ end ≤ ${text.length} (the document's length in characters)`,
            { details: { field: start > end ? 'start' : 'end', characters: text.length } },
          );
        }
        return {
          docId,
          title: document.title,
          ...(document.filename === undefined ? {} : { filename: document.filename }),
          start,
          end,
          text: text.slice(start, end),
          before: text.slice(Math.max(0, start - around), start),
          after: text.slice(end, end + around),
          characters: text.length,
        };
      },
    );

    scope.delete<{ Params: { id: string } }>(
      '/v1/documents/:id',
      {
        schema: {
          tags,
          summary: 'Delete a document (its text, chunks and vectors)',
          params: docParams,
          response: { 204: { type: 'null', description: 'Deleted' }, ...errorResponses },
        },
      },
      async (request, reply) => {
        const ownerId = principalOf(request).userId;
        const docId = checkDocId(request.params.id);
        await viaBus<DocumentDeleteResult>('rag.document.delete', { ownerId, docId }, ownerId);
        return reply.status(204).send();
      },
    );

    scope.post<{
      Body: { query: string; topK?: number; filter?: Record<string, unknown>; sessionId?: string };
    }>(
      '/v1/documents/query',
      {
        schema: {
          tags,
          summary: "Search the caller's documents: the best chunks, with what a citation needs",
          description:
            '`filter` is an equality filter on document metadata (and docId, kind, mediaType); a list means ' +
            'any of. With `sessionId`: the library plus that session’s documents. topK defaults to rag.top_k ' +
            'and may not exceed rag.max_top_k.',
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['query'],
            properties: {
              query: { type: 'string', minLength: 1, maxLength: 10_000 },
              topK: { type: 'integer', minimum: 1 },
              filter: {
                type: 'object',
                additionalProperties: { anyOf: [scalar, { type: 'array', items: scalar }] },
              },
              sessionId: { type: 'string', minLength: 1, maxLength: 200 },
            },
          },
          response: {
            200: {
              type: 'object',
              required: ['hits'],
              properties: { hits: { type: 'array', items: hitSchema } },
            },
            ...errorResponses,
          },
        },
      },
      async (request) => {
        const ownerId = principalOf(request).userId;
        return viaBus<{ hits: RagHit[] }>('rag.query', { ...request.body, ownerId }, ownerId);
      },
    );
  });
}
