/**
 * Messages of a session: list them (paged), post one and get the reply — whole as JSON, or streamed as
 * server-sent events with `?stream=sse` or `Accept: text/event-stream` — ask for another reply to the
 * last one (regenerate, answered the same two ways), and stop a streaming reply.
 * A client that disconnects mid-turn cancels the turn (`chat.cancel`); text_chat stores the partial reply.
 * With an `Idempotency-Key` header every repeat of the key is the same turn (idempotency-key.ts), and a
 * disconnect does not cancel it: the client that gave up is expected to ask again, and gets the reply.
 */

import type { FastifyInstance } from 'fastify';
import { principalOf } from '../auth-hook.ts';
import { abortOnDisconnect } from '../client-disconnect.ts';
import {
  IDEMPOTENCY_KEY_HEADER,
  MAX_IDEMPOTENCY_KEY_LENGTH,
  parseIdempotencyKey,
} from '../idempotency-key.ts';
import { errorResponses } from '../schemas.ts';
import type { ServerContext } from '../server-context.ts';
import { streamTurnAsSse } from '../turn-sse.ts';
import { checkSessionId, emptyBodyIsObject } from './sessions.ts';

interface RegenerateBody {
  model?: string;
  temperature?: number;
}

interface PostMessageBody {
  content: string;
  model?: string;
  temperature?: number;
}

const sessionParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 200 } },
} as const;

/** Whether the client asked for an SSE stream. */
function wantsStream(query: { stream?: string }, accept: string | undefined): boolean {
  if (query.stream !== undefined) return query.stream === 'sse';
  return accept?.includes('text/event-stream') === true;
}

/** Registers /v1/sessions/:id/messages and the cancel route. */
export function registerMessageRoutes(app: FastifyInstance, context: ServerContext): void {
  const { chat } = context;
  const tags = ['messages'];

  app.get<{
    Params: { id: string };
    Querystring: { limit?: number; before?: string; include?: 'replaced' };
  }>(
    '/v1/sessions/:id/messages',
    {
      schema: {
        tags,
        summary: 'A page of messages, oldest first; pass nextCursor as `before` for the older page',
        params: sessionParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            limit: { type: 'integer', minimum: 1, maximum: 1000 },
            before: { type: 'string', minLength: 1, maxLength: 200, description: 'A message id' },
            include: {
              type: 'string',
              enum: ['replaced'],
              description: 'List the replies a regeneration replaced (and failed regenerations) too',
            },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['messages'],
            properties: {
              messages: { type: 'array', items: { $ref: 'Message#' } },
              nextCursor: { type: 'string' },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { limit, before, include } = request.query;
      return chat.listMessages(principalOf(request).userId, checkSessionId(request.params.id), {
        ...(limit === undefined ? {} : { limit }),
        ...(before === undefined ? {} : { before }),
        ...(include === undefined ? {} : { include }),
      });
    },
  );

  app.post<{ Params: { id: string }; Body: PostMessageBody; Querystring: { stream?: string } }>(
    '/v1/sessions/:id/messages',
    {
      schema: {
        tags,
        summary:
          'Send a message and get the reply (JSON, or SSE with ?stream=sse / Accept: text/event-stream)',
        description:
          'SSE events: `start` {turnId, sessionId}, `delta` {text}, then `end` {message} or `error` {error}; ' +
          'the deltas add up to the message. ' +
          'A failure before the first event answers with its HTTP status and the JSON error instead.\n\n' +
          `\`${IDEMPOTENCY_KEY_HEADER}\` (1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters, chosen by the client, ` +
          'one per message): a request sent again with the same key, by the same user to the same session, is the ' +
          'same turn: the user message is stored once and the reply generated once. A repeat after the reply was ' +
          'stored gets that reply (SSE: `start`, the whole text as one `delta`, `end`); a repeat while the turn is ' +
          'still being answered waits for it and gets its outcome. A turn that failed (its reply has ' +
          '`metadata.error`, or none was stored) is answered again by a repeat, without storing the message twice. ' +
          'The same key with a different `content` → 422 `CHAT_ERR_IDEMPOTENCY_KEY_REUSED`; a malformed key → 400. ' +
          'A keyed request is not cancelled when its client disconnects (the cancel route stops it). ' +
          'Two repeats reaching two different nodes at the same instant are not joined (docs/api.md).',
        params: sessionParams,
        headers: {
          type: 'object',
          properties: {
            'idempotency-key': {
              type: 'string',
              description: `Names this message so that sending it again never makes a second turn (1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters)`,
            },
          },
        },
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { stream: { type: 'string', enum: ['sse', 'none'] } },
        },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['content'],
          properties: {
            content: { type: 'string', minLength: 1 },
            model: { type: 'string', minLength: 1, maxLength: 200, description: '"provider:model"' },
            temperature: { type: 'number', minimum: 0, maximum: 2 },
          },
        },
        response: { 200: { $ref: 'Message#' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      const userId = principalOf(request).userId;
      const sessionId = checkSessionId(request.params.id);
      const idempotencyKey = parseIdempotencyKey(request.headers['idempotency-key']);
      const input = {
        userId,
        sessionId,
        ...request.body,
        ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
      };
      if (!wantsStream(request.query, request.headers.accept)) {
        return chat.send(input, { signal: abortOnDisconnect(reply) });
      }

      return streamTurnAsSse(request, reply, context, sessionId, (handlers, signal) =>
        chat.stream(input, handlers, { signal }),
      );
    },
  );

  app.post<{ Params: { id: string }; Body: RegenerateBody; Querystring: { stream?: string } }>(
    '/v1/sessions/:id/regenerate',
    {
      schema: {
        tags,
        summary:
          "Another reply to the session's last message, replacing the newest reply (JSON, or SSE as a message)",
        description:
          'Generates a new assistant reply to the last user message of the session, from the history that ' +
          'message had (the reply it replaces is not in it), optionally with another `model` or ' +
          '`temperature`. The new reply is stored with `metadata.replaces` = the id of the reply it replaces; ' +
          'from then on that reply is left out of the history of later turns and of the message list (unless ' +
          '`?include=replaced`). Regenerating again replaces the newest. Streams (SSE) exactly like a ' +
          'message, can be stopped with the cancel route, and counts against the rate limit. A failed ' +
          'regeneration replaces nothing. 409 `CHAT_ERR_NOTHING_TO_REGENERATE` when the session has no user ' +
          'message; 409 `CHAT_ERR_TURN_IN_PROGRESS` while a reply of the session is being generated.',
        params: sessionParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { stream: { type: 'string', enum: ['sse', 'none'] } },
        },
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            model: { type: 'string', minLength: 1, maxLength: 200, description: '"provider:model"' },
            temperature: { type: 'number', minimum: 0, maximum: 2 },
          },
        },
        response: { 200: { $ref: 'Message#' }, ...errorResponses },
      },
      preValidation: emptyBodyIsObject,
    },
    async (request, reply) => {
      const input = {
        userId: principalOf(request).userId,
        sessionId: checkSessionId(request.params.id),
        ...request.body,
      };
      if (!wantsStream(request.query, request.headers.accept)) {
        return chat.regenerate(input, { signal: abortOnDisconnect(reply) });
      }
      return streamTurnAsSse(request, reply, context, input.sessionId, (handlers, signal) =>
        chat.streamRegenerate(input, handlers, { signal }),
      );
    },
  );

  app.post<{ Params: { id: string; turnId: string } }>(
    '/v1/sessions/:id/turns/:turnId/cancel',
    {
      schema: {
        tags,
        summary: 'Stop a reply that is being generated (the partial reply is stored)',
        params: {
          type: 'object',
          required: ['id', 'turnId'],
          properties: {
            id: { type: 'string', minLength: 1, maxLength: 200 },
            turnId: { type: 'string', minLength: 1, maxLength: 200 },
          },
        },
        response: {
          202: {
            type: 'object',
            required: ['turnId', 'cancelRequested'],
            properties: { turnId: { type: 'string' }, cancelRequested: { type: 'boolean' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      // The session must be the caller's (404 otherwise); the turn id is the one the `start` event gave,
      // and text_chat stops it only when it is this user's turn.
      const userId = principalOf(request).userId;
      await chat.getSession(userId, checkSessionId(request.params.id));
      await chat.cancel(request.params.turnId, userId);
      return reply.status(202).send({ turnId: request.params.turnId, cancelRequested: true });
    },
  );
}
