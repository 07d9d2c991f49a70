/** GET /v1/audit: the audit log, newest first (admin). */

import type { FastifyInstance } from 'fastify';
import { NotFoundError } from '../../core/errors.ts';
import { errorResponses, type NewestFirstPage, newestFirstPageQuery } from '../schemas.ts';
import type { ServerContext } from '../server-context.ts';

const entrySchema = {
  type: 'object',
  required: ['chain', 'seq', 'time', 'actor', 'action', 'prev', 'hash'],
  properties: {
    chain: { type: 'string' },
    seq: { type: 'integer' },
    time: { type: 'string' },
    actor: {
      type: 'object',
      properties: { type: { type: 'string' }, id: { type: 'string' }, name: { type: 'string' } },
    },
    action: { type: 'string' },
    target: { type: 'object', additionalProperties: { type: 'string' } },
    details: { type: 'object', additionalProperties: true },
    prev: { type: 'string' },
    hash: { type: 'string' },
  },
} as const;

/** Registers /v1/audit. */
export function registerAuditRoutes(app: FastifyInstance, context: ServerContext): void {
  app.get<{ Querystring: NewestFirstPage }>(
    '/v1/audit',
    {
      config: { auth: 'admin' },
      schema: {
        tags: ['users'],
        summary:
          'The audit log (admin), newest first: users and keys created, keys revoked, sign-ins, refusals',
        querystring: newestFirstPageQuery,
        response: {
          200: {
            type: 'object',
            required: ['entries'],
            properties: { entries: { type: 'array', items: entrySchema } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const audit = context.platform.audit;
      if (audit === undefined) throw new NotFoundError('the audit log is off (security.audit.enabled)');
      const { limit, before } = request.query;
      return {
        entries: await audit.list({
          ...(limit === undefined ? {} : { limit }),
          ...(before === undefined ? {} : { before }),
        }),
      };
    },
  );
}
