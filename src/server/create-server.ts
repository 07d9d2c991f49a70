import Fastify, { type FastifyError, LogController } from 'fastify';
import { toPlatformError } from '../core/errors.ts';
import type { Platform } from '../platform/create-platform.ts';

/** Builds the HTTP app over a running platform (routes are added by the server layer's route files). */
export async function createServer(platform: Platform) {
  const app = Fastify({
    loggerInstance: platform.log.child({ component: 'http' }),
    bodyLimit: platform.config.server.body_limit_bytes,
    // Per-request info lines would double the log volume of a chat turn; errors are logged by the handler.
    logController: new LogController({ disableRequestLogging: true }),
  });

  // One error shape everywhere: { error: { code, message } }, with the PlatformError's HTTP status.
  app.setErrorHandler((error: FastifyError, request, reply) => {
    // Fastify's own 4xx (bad JSON, body too large, schema mismatch) keep their status, in our shape.
    const fastifyStatus = error.statusCode;
    if (fastifyStatus !== undefined && fastifyStatus < 500 && !String(error.code).startsWith('CHAT_ERR_')) {
      return reply
        .status(fastifyStatus)
        .send({ error: { code: 'CHAT_ERR_VALIDATION_INVALID', message: error.message } });
    }
    const platformError = toPlatformError(error);
    if (platformError.status >= 500) request.log.error({ err: error }, 'request failed');
    return reply
      .status(platformError.status)
      .send({ error: { code: platformError.code, message: platformError.message } });
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const modules = await platform.modules.health();
    const ready = Object.values(modules).every((status) => status.healthy);
    return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', modules });
  });

  return app;
}
