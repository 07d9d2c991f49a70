/**
 * GET /metrics: the platform's Prometheus metrics in the text exposition format. Not public by default —
 * request counts by route and model names say something about who uses the platform — so it takes an
 * admin's API key, or `observability.metrics.bearer_token` (which opens this route and nothing else, for a
 * scraper), unless `observability.metrics.public` is true. Each request is also timed here, by route
 * pattern, status code and method.
 */

import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { PlatformMetrics } from '../../observability/metrics.ts';
import { bearerToken, requireRole } from '../../security/auth.ts';
import type { ServerContext } from '../server-context.ts';

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Registers /metrics and the hook that times every request; nothing when metrics are off. */
export function registerMetricsRoutes(app: FastifyInstance, context: ServerContext): void {
  const metrics: PlatformMetrics | undefined = context.platform.metrics;
  if (metrics === undefined) return;
  const settings = context.platform.config.observability.metrics;
  // Compared as digests in constant time: equal lengths, and no timing hint of how much of it matched.
  const tokenDigest = settings.bearer_token === undefined ? undefined : digest(settings.bearer_token);

  app.addHook('onResponse', (request, reply, done) => {
    metrics.http.requestCompleted(
      request.method,
      request.routeOptions.url,
      reply.statusCode,
      reply.elapsedTime / 1000,
    );
    done();
  });

  async function authorize(request: FastifyRequest): Promise<void> {
    if (settings.public) return;
    const offered = bearerToken(request.headers.authorization);
    if (tokenDigest !== undefined && offered !== undefined && timingSafeEqual(digest(offered), tokenDigest)) {
      return;
    }
    requireRole(await context.auth.authenticate(offered), 'admin');
  }

  app.get(
    '/metrics',
    {
      // Checked in the handler: the metrics token is not an API key the auth hook knows.
      config: { auth: 'public' },
      schema: {
        tags: ['health'],
        summary: 'Prometheus metrics (text exposition format)',
        description:
          'An admin API key, or observability.metrics.bearer_token; no key when observability.metrics.public is true.',
        response: { 200: { type: 'string' } },
      },
    },
    async (request, reply) => {
      await authorize(request);
      const { contentType, body } = await metrics.render();
      return reply.type(contentType).send(body);
    },
  );
}
