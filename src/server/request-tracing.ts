/**
 * An OpenTelemetry span for each HTTP request (observability.tracing): named by method and route pattern,
 * continuing the caller's W3C `traceparent` header when it sent one, and active while the request is
 * handled — so the bus requests and events it causes carry it on to the modules, on any node.
 */

import type { Span } from '@opentelemetry/api';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { HttpTracing } from '../observability/tracing.ts';

/** Probes and scrapes, every few seconds from every load balancer and Prometheus: noise in a trace view. */
const UNTRACED_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);

/** Adds the hooks that trace every request; register it before the other hooks, so they run in its span. */
export function registerRequestTracing(app: FastifyInstance, tracing: HttpTracing): void {
  const spans = new WeakMap<FastifyRequest, Span>();

  app.addHook('onRequest', (request, _reply, done) => {
    const route = request.routeOptions.url;
    if (route !== undefined && UNTRACED_ROUTES.has(route)) return done();
    const header = request.headers.traceparent;
    const span = tracing.startRequest(request.method, route, Array.isArray(header) ? header[0] : header);
    spans.set(request, span);
    // The rest of the request — later hooks, the handler — runs with the span active.
    tracing.within(span, done);
  });

  app.addHook('onResponse', (request, reply, done) => {
    const span = spans.get(request);
    if (span !== undefined) tracing.endRequest(span, reply.statusCode);
    done();
  });
}
