/** Liveness and readiness: public, for load balancers and orchestrators. */

import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../server-context.ts';

/** Registers /healthz (the process answers) and /readyz (every module reports healthy). */
export function registerHealthRoutes(app: FastifyInstance, context: ServerContext): void {
  const config = { auth: 'public' } as const;
  const tags = ['health'];

  app.get(
    '/healthz',
    {
      config,
      schema: {
        tags,
        summary: 'Alive',
        security: [],
        response: { 200: { type: 'object', properties: { status: { type: 'string' } } } },
      },
    },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      config,
      schema: {
        tags,
        summary: "Ready: every module's health (503 when one is unhealthy)",
        security: [],
        response: {
          '2xx': {
            type: 'object',
            properties: {
              status: { type: 'string' },
              modules: { type: 'object', additionalProperties: true },
            },
          },
          503: {
            type: 'object',
            properties: {
              status: { type: 'string' },
              modules: { type: 'object', additionalProperties: true },
            },
          },
        },
      },
    },
    async (_request, reply) => {
      const modules = await context.platform.modules.health();
      const ready = Object.values(modules).every((status) => status.healthy);
      return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', modules });
    },
  );
}
