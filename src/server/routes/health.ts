/** Liveness and readiness: public, for load balancers and orchestrators. */

import type { FastifyInstance } from 'fastify';
import { toPlatformError } from '../../core/errors.ts';
import type { Platform } from '../../platform/create-platform.ts';
import type { ServerContext } from '../server-context.ts';

/** What /readyz says about the storage backend. */
interface StorageReadiness {
  healthy: boolean;
  backend: string;
  message?: string;
}

// A folder no module writes to: listing it is one cheap round trip on every backend (a Redis ZRANGEBYLEX,
// an S3 LIST, a readdir), answered by the backend itself — unlike a read, which the cache could answer.
const PROBE_PREFIX = 'readyz-probe/';

/**
 * Asks the storage backend one question, bounded by `server.readiness_timeout_ms`: a node whose backend is
 * down or frozen is not ready, so the load balancer sends its traffic elsewhere.
 */
async function probeStorage(platform: Platform): Promise<StorageReadiness> {
  const backend = platform.config.storage.backend;
  const timeoutMs = platform.config.server.readiness_timeout_ms;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${timeoutMs} ms (server.readiness_timeout_ms)`)),
      timeoutMs,
    );
  });
  try {
    await Promise.race([platform.storage.list(PROBE_PREFIX), timedOut]);
    return { healthy: true, backend };
  } catch (error) {
    return { healthy: false, backend, message: toPlatformError(error).message };
  } finally {
    clearTimeout(timer);
  }
}

const dependencySchema = {
  type: 'object',
  properties: {
    healthy: { type: 'boolean' },
    backend: { type: 'string' },
    transport: { type: 'string' },
    message: { type: 'string' },
  },
} as const;

const readinessSchema = {
  type: 'object',
  properties: {
    status: { type: 'string' },
    modules: { type: 'object', additionalProperties: true },
    storage: dependencySchema,
    bus: dependencySchema,
  },
} as const;

/** Registers /healthz (the process answers) and /readyz (modules, storage and bus are healthy). */
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
        summary: "Ready: every module's health, the storage backend and the bus (503 when one is unhealthy)",
        security: [],
        response: { '2xx': readinessSchema, 503: readinessSchema },
      },
    },
    async (_request, reply) => {
      const { platform } = context;
      const [modules, storage] = await Promise.all([platform.modules.health(), probeStorage(platform)]);
      const bus = platform.bus.health?.() ?? { healthy: true, transport: platform.config.bus.transport };
      const ready =
        storage.healthy && bus.healthy && Object.values(modules).every((status) => status.healthy);
      return reply
        .status(ready ? 200 : 503)
        .send({ status: ready ? 'ready' : 'not ready', modules, storage, bus });
    },
  );
}
