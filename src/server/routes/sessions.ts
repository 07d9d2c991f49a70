/** Sessions: create, list, read, change, delete. Each is a request to text_chat with the caller's user id. */

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { NotFoundError } from '../../core/errors.ts';
import { isIdSegment } from '../../core/ids.ts';
import { principalOf } from '../auth-hook.ts';
import type { SessionInput } from '../chat-gateway.ts';
import { errorResponses, idParams } from '../schemas.ts';
import type { ServerContext } from '../server-context.ts';

// Ids are UUIDs; anything else cannot name a session, and is answered like a missing one.

/** Throws NotFoundError (404) for an id that cannot name a session, before it goes anywhere. */
export function checkSessionId(id: string): string {
  if (!isIdSegment(id)) throw new NotFoundError(`no session "${id}"`);
  return id;
}

/** A POST whose fields are all optional may come without a body (`curl -X POST`): that is `{}`. */
export async function emptyBodyIsObject(request: FastifyRequest): Promise<void> {
  request.body ??= {};
}

const sessionBody = {
  title: { type: 'string', maxLength: 1000 },
  personaId: { type: ['string', 'null'], minLength: 1, maxLength: 200 },
  model: { type: ['string', 'null'], minLength: 1, maxLength: 200, description: '"provider:model"' },
} as const;

/** Registers /v1/sessions routes. */
export function registerSessionRoutes(app: FastifyInstance, context: ServerContext): void {
  const { chat } = context;
  const tags = ['sessions'];

  app.post<{ Body: SessionInput }>(
    '/v1/sessions',
    {
      preValidation: emptyBodyIsObject,
      schema: {
        tags,
        summary: 'Start a session',
        body: { type: 'object', additionalProperties: false, properties: sessionBody },
        response: { 201: { $ref: 'Session#' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      const session = await chat.startSession(principalOf(request).userId, request.body);
      return reply.status(201).send(session);
    },
  );

  app.get(
    '/v1/sessions',
    {
      schema: {
        tags,
        summary: "The caller's sessions, newest first",
        response: {
          200: {
            type: 'object',
            required: ['sessions'],
            properties: { sessions: { type: 'array', items: { $ref: 'Session#' } } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => ({ sessions: await chat.listSessions(principalOf(request).userId) }),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/sessions/:id',
    {
      schema: {
        tags,
        summary: 'One session',
        params: idParams,
        response: { 200: { $ref: 'Session#' }, ...errorResponses },
      },
    },
    async (request) => chat.getSession(principalOf(request).userId, checkSessionId(request.params.id)),
  );

  app.patch<{ Params: { id: string }; Body: SessionInput }>(
    '/v1/sessions/:id',
    {
      schema: {
        tags,
        summary: 'Change title, persona or model (null goes back to the default)',
        params: idParams,
        body: { type: 'object', additionalProperties: false, minProperties: 1, properties: sessionBody },
        response: { 200: { $ref: 'Session#' }, ...errorResponses },
      },
    },
    async (request) =>
      chat.updateSession(principalOf(request).userId, checkSessionId(request.params.id), request.body),
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/sessions/:id',
    {
      schema: {
        tags,
        summary: 'Delete a session and its messages',
        params: idParams,
        response: { 204: { type: 'null', description: 'Deleted' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      await chat.deleteSession(principalOf(request).userId, checkSessionId(request.params.id));
      return reply.status(204).send();
    },
  );
}
