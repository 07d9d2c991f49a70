/**
 * /v1/search: the caller's own messages — theirs and the assistant's — across all their chats, best match
 * first, each with a snippet and where the query's words are in it. A request to text_chat
 * (`messages.search`) with the caller's user id, so nobody else's messages are ever searched.
 */

import type { FastifyInstance } from 'fastify';
import { principalOf } from '../auth-hook.ts';
import { errorResponses } from '../schemas.ts';
import type { ServerContext } from '../server-context.ts';

const hitSchema = {
  type: 'object',
  required: ['sessionId', 'sessionTitle', 'messageId', 'role', 'timestamp', 'snippet', 'highlights', 'score'],
  properties: {
    sessionId: { type: 'string' },
    sessionTitle: { type: 'string' },
    messageId: { type: 'string' },
    role: { type: 'string', enum: ['user', 'assistant'] },
    timestamp: { type: 'string' },
    snippet: { type: 'string', description: 'Part of the message around the matched words; … where cut' },
    highlights: {
      type: 'array',
      description: 'The matched words: snippet.slice(start, end)',
      items: {
        type: 'object',
        required: ['start', 'end'],
        properties: { start: { type: 'integer' }, end: { type: 'integer' } },
      },
    },
    score: { type: 'number', description: 'BM25; compares the hits of one answer only' },
  },
} as const;

/** Registers GET /v1/search. */
export function registerSearchRoutes(app: FastifyInstance, context: ServerContext): void {
  app.get<{ Querystring: { q: string; limit?: number } }>(
    '/v1/search',
    {
      schema: {
        tags: ['search'],
        summary: 'Search your messages across all your chats, best match first',
        description:
          '`q`: the words to find (stemmed: "flights" finds "flight"); `limit`: hits, 1 to text_chat.search.max_limit ' +
          '(default text_chat.search.default_limit). An empty query, one over text_chat.search.max_query_length ' +
          'characters or a limit out of range is a 400 naming the problem.',
        querystring: {
          type: 'object',
          additionalProperties: false,
          required: ['q'],
          properties: { q: { type: 'string' }, limit: { type: 'integer' } },
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
    async (request) =>
      context.chat.searchMessages(principalOf(request).userId, request.query.q, request.query.limit),
  );
}
