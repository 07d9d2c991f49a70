/**
 * /v1/memories: what the memory module remembers of the caller — listed newest first, forgotten one by one
 * or all at once. Each user sees and forgets only their own (the user id is the caller's, never a
 * parameter). With the module off (`memory.enabled`, the default), 404 saying how to turn it on.
 */

import type { FastifyInstance } from 'fastify';
import { NotFoundError } from '../../core/errors.ts';
import { principalOf } from '../auth-hook.ts';
import { requestOptionalModule } from '../optional-module.ts';
import { errorResponses, idParams, type NewestFirstPage, newestFirstPageQuery } from '../schemas.ts';
import type { ServerContext } from '../server-context.ts';

const memorySchema = {
  type: 'object',
  required: ['id', 'sessionId', 'time', 'text'],
  properties: {
    id: { type: 'string' },
    sessionId: { type: 'string', description: 'The chat it was said in' },
    time: { type: 'string' },
    text: { type: 'string' },
  },
} as const;

const forgottenSchema = {
  type: 'object',
  required: ['forgotten'],
  properties: { forgotten: { type: 'integer' } },
} as const;

/** Registers /v1/memories. */
export function registerMemoryRoutes(app: FastifyInstance, context: ServerContext): void {
  const tags = ['memories'];

  /** Asks the memory module (on any node) for the caller. */
  const ask = <Reply>(type: string, data: Record<string, unknown>, userId: string) =>
    requestOptionalModule<Reply>(
      context.platform.bus,
      type,
      { ...data, userId },
      {
        userId,
        whenOff: 'memory is off: set memory.enabled to true (CHAT_MEMORY__ENABLED=true)',
      },
    );

  app.get<{ Querystring: NewestFirstPage }>(
    '/v1/memories',
    {
      schema: {
        tags,
        summary: 'What the memory module remembers of you, newest first',
        querystring: newestFirstPageQuery,
        response: {
          200: {
            type: 'object',
            required: ['memories'],
            properties: { memories: { type: 'array', items: memorySchema } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { limit, before } = request.query;
      return ask(
        'memory.list',
        { limit, ...(before === undefined ? {} : { before }) },
        principalOf(request).userId,
      );
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/memories/:id',
    {
      schema: {
        tags,
        summary: 'Forget one memory',
        params: idParams,
        response: { 200: forgottenSchema, ...errorResponses },
      },
    },
    async (request) => {
      const result = await ask<{ forgotten: number }>(
        'memory.forget',
        { memoryId: request.params.id },
        principalOf(request).userId,
      );
      // Another user's memory id answers like a missing one.
      if (result.forgotten === 0) throw new NotFoundError(`no memory "${request.params.id}"`);
      return result;
    },
  );

  app.delete(
    '/v1/memories',
    {
      schema: {
        tags,
        summary: 'Forget everything the memory module remembers of you',
        response: { 200: forgottenSchema, ...errorResponses },
      },
    },
    async (request) => ask('memory.forget', { all: true }, principalOf(request).userId),
  );
}
