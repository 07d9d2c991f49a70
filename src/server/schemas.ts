/**
 * The JSON Schemas shared by routes: added to Fastify with `$id`s, referenced as `{ $ref: 'Session#' }`
 * in response schemas (which also makes them named components of /openapi.json).
 */

import type { FastifyInstance } from 'fastify';

const openObject = { type: 'object', additionalProperties: true } as const;

/** `{ error: { code, message } }`: the body of every failed request. */
export const errorSchema = {
  $id: 'Error',
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', description: 'A stable code, CHAT_ERR_<AREA>_<WHAT> (docs/errors.md).' },
        message: { type: 'string' },
      },
    },
  },
} as const;

/** A chat session (core Session). */
export const sessionSchema = {
  $id: 'Session',
  type: 'object',
  required: ['id', 'userId', 'createdAt', 'metadata'],
  properties: {
    id: { type: 'string' },
    userId: { type: 'string' },
    createdAt: { type: 'string', format: 'date-time' },
    metadata: {
      ...openObject,
      description: '{ title, personaId?, model?, updatedAt }',
    },
  },
} as const;

/** One message of a session (core Message). */
export const messageSchema = {
  $id: 'Message',
  type: 'object',
  required: ['id', 'content', 'role', 'timestamp', 'metadata'],
  properties: {
    id: { type: 'string' },
    content: { type: 'string' },
    role: { type: 'string', enum: ['user', 'assistant', 'system', 'tool'] },
    timestamp: { type: 'string', format: 'date-time' },
    metadata: {
      ...openObject,
      description:
        '{ sessionId, turnId?, model?, usage?: { inputTokens, outputTokens }, finishReason?, error?, citations?: [{ docId, title, start, end, chunkId, heading? }], toolCalls?, replaces? (the id of the reply a regenerated reply replaces) }',
    },
  },
} as const;

/** A user (never with keys). */
export const userSchema = {
  $id: 'User',
  type: 'object',
  required: ['id', 'name', 'role', 'createdAt'],
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    role: { type: 'string', enum: ['admin', 'user'] },
    createdAt: { type: 'string', format: 'date-time' },
  },
} as const;

/** An API key's record (the key itself is only in the answer that created it). */
export const apiKeySchema = {
  $id: 'ApiKey',
  type: 'object',
  required: ['id', 'userId', 'name', 'prefix', 'createdAt', 'revoked'],
  properties: {
    id: { type: 'string' },
    userId: { type: 'string' },
    name: { type: 'string' },
    prefix: { type: 'string', description: 'The first characters of the key, to tell keys apart.' },
    createdAt: { type: 'string', format: 'date-time' },
    revoked: { type: 'boolean' },
    revokedAt: { type: 'string', format: 'date-time' },
  },
} as const;

/** Error responses every authenticated route may give. */
export const errorResponses = {
  '4xx': { $ref: 'Error#' },
  '5xx': { $ref: 'Error#' },
} as const;

/** A path parameter holding an id. */
export const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 200 } },
} as const;

/** Registers the shared schemas on `app`. */
export function addSharedSchemas(app: FastifyInstance): void {
  for (const schema of [errorSchema, sessionSchema, messageSchema, userSchema, apiKeySchema]) {
    app.addSchema(schema);
  }
}

/** The query of a list read newest first, a page at a time: `limit` items older than `before`. */
export const newestFirstPageQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
    before: { type: 'string', format: 'date-time', description: 'Only items older than this time' },
  },
} as const;

/** What `newestFirstPageQuery` gives a handler. */
export interface NewestFirstPage {
  limit?: number;
  before?: string;
}
