import swagger from '@fastify/swagger';
import websocket from '@fastify/websocket';
import { Ajv } from 'ajv';
import Fastify, { type FastifyError, type FastifyInstance, LogController } from 'fastify';
import { addFormats } from '../core/config-validate.ts';
import { NotFoundError, PlatformError } from '../core/errors.ts';
import type { Platform } from '../platform/create-platform.ts';
import { type Auth, createAuth, UnauthenticatedError } from '../security/auth.ts';
import { registerAuthHook } from './auth-hook.ts';
import { type ChatGateway, chatGatewayOptionsFrom, createChatGateway } from './chat-gateway.ts';
import { createClientErrorHandler } from './client-errors.ts';
import { createFailedAuthAudit, failedAuthentication } from './failed-auth-audit.ts';
import { formatSchemaErrors, toHttpError } from './http-errors.ts';
import { lazyRequestLogger } from './lazy-request-logger.ts';
import { cachePrincipals } from './principal-cache.ts';
import { registerRequestTracing } from './request-tracing.ts';
import { registerAgentRoutes } from './routes/agents.ts';
import { registerAuditRoutes } from './routes/audit.ts';
import { registerDocumentRoutes } from './routes/documents.ts';
import { registerFeedbackRoutes } from './routes/feedback.ts';
import { registerHealthRoutes } from './routes/health.ts';
import { registerHookRoutes } from './routes/hooks.ts';
import { registerMemoryRoutes } from './routes/memories.ts';
import { registerMessageRoutes } from './routes/messages.ts';
import { registerMetricsRoutes } from './routes/metrics.ts';
import { registerOpenAIRoutes } from './routes/openai.ts';
import { registerSearchRoutes } from './routes/search.ts';
import { registerSessionExportRoutes } from './routes/session-export.ts';
import { registerSessionRoutes } from './routes/sessions.ts';
import { registerUserRoutes } from './routes/users.ts';
import { registerWebSocketRoutes } from './routes/websocket.ts';
import { addSharedSchemas } from './schemas.ts';
import type { ServerContext } from './server-context.ts';
import { createWebAccess } from './web-client.ts';

/** Options of createServer besides the platform. */
export interface CreateServerOptions {
  /** Users and keys; by default those in the platform storage (`users/`, `keys/`). */
  auth?: Auth;
}

/** How often Node looks for requests past the timeout: Node's 30 s, more often for a short timeout. */
function timeoutCheckInterval(requestTimeoutMs: number): number {
  if (requestTimeoutMs === 0) return 30_000;
  return Math.min(30_000, Math.max(100, Math.floor(requestTimeoutMs / 4)));
}

/**
 * Builds the HTTP app over a running platform: REST sessions and messages, SSE and WebSocket streaming,
 * the OpenAI-compatible API, users and keys, health, and /openapi.json. Every route but health and the
 * OpenAPI document needs `Authorization: Bearer <key>`. Closing the app stops its bus subscription; the
 * platform is the caller's to close.
 */
export async function createServer(
  platform: Platform,
  options: CreateServerOptions = {},
): Promise<FastifyInstance> {
  const { server } = platform.config;
  const app = Fastify({
    loggerInstance: platform.log.child({ component: 'http' }),
    childLoggerFactory: lazyRequestLogger,
    bodyLimit: server.body_limit_bytes,
    // Per-request info lines would double the log volume of a chat turn; errors are logged by the handler.
    logController: new LogController({ disableRequestLogging: true }),
    schemaErrorFormatter: formatSchemaErrors,
    // A client that takes longer to send its request is answered 408 and cut off (client-errors.ts), so
    // slow-loris connections cannot hold request slots for ever. Node looks for them every
    // connectionsCheckingInterval. Given to Node's server at its creation too: set afterwards (all that
    // Fastify's own option does), it bounds the headers but not a body still trickling in.
    requestTimeout: server.request_timeout_ms,
    http: {
      requestTimeout: server.request_timeout_ms,
      connectionsCheckingInterval: timeoutCheckInterval(server.request_timeout_ms),
    },
    clientErrorHandler: createClientErrorHandler(server.request_timeout_ms),
  }) as unknown as FastifyInstance;

  // Bodies are validated as sent: `{ "content": 5 }` is a 400, not the string "5" (Fastify's default
  // coerces types). Query strings and path parameters are text on the wire, so they are coerced.
  const bodyAjv = new Ajv({ coerceTypes: false, useDefaults: true, allErrors: false, strict: false });
  const textAjv = new Ajv({ coerceTypes: 'array', useDefaults: true, allErrors: false, strict: false });
  // `format: "date-time"` and the like are checked, not ignored (`?before=` of the audit log and memories).
  addFormats(bodyAjv);
  addFormats(textAjv);
  app.setValidatorCompiler(({ schema, httpPart }) =>
    (httpPart === 'body' ? bodyAjv : textAjv).compile(schema as object),
  );

  // Every request and every revocation of this server go through the key cache (principal-cache.ts).
  const { ttl_ms: keyCacheTtlMs, max_entries: keyCacheEntries } = server.auth.key_cache;
  const auth = cachePrincipals(options.auth ?? createAuth(platform.storage), {
    ttlMs: keyCacheTtlMs,
    maxEntries: keyCacheEntries,
  });
  const chat: ChatGateway = createChatGateway(platform.bus, chatGatewayOptionsFrom(platform.config));
  const context: ServerContext = {
    platform,
    auth,
    chat,
    bodyLimitBytes: server.body_limit_bytes,
    sseHeartbeatMs: server.sse_heartbeat_ms,
  };
  app.addHook('onClose', async () => chat.close());
  // Refused credentials in the audit log, gathered per address (failed-auth-audit.ts).
  const failedAuth =
    platform.audit === undefined
      ? undefined
      : createFailedAuthAudit(platform.audit, (error) =>
          app.log.error({ err: error }, 'the audit log could not record a refused credential'),
        );
  if (failedAuth !== undefined) app.addHook('onClose', () => failedAuth.flush());

  // One error shape everywhere: { error: { code, message } }, with the PlatformError's HTTP status.
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const failure = toHttpError(error, context);
    if (failure.status >= 500) request.log.error({ err: error }, 'request failed');
    if (failedAuth !== undefined && error instanceof UnauthenticatedError) {
      const attempt = failedAuthentication(request, error);
      if (attempt !== undefined) failedAuth.failed(attempt);
    }
    return reply.status(failure.status).headers(failure.headers).send(failure.body);
  });
  app.setNotFoundHandler((request) => {
    throw new NotFoundError(`no route ${request.method} ${request.url.split('?', 1)[0]}`);
  });

  // First of all hooks, so the others and the handlers run inside the request's span.
  if (platform.tracing !== undefined) registerRequestTracing(app, platform.tracing.http);

  // Registered before the hooks below, so its own onRequest hook (which marks upgrade requests, and
  // closes their socket once an error was answered) runs first.
  await app.register(websocket, { options: { maxPayload: server.body_limit_bytes } });

  // Beyond resource_limits.max_concurrent_requests, a request is turned away at once with 503 and
  // Retry-After rather than queued behind the others (health checks are always answered).
  const maxConcurrent = platform.config.resource_limits.max_concurrent_requests;
  let inFlight = 0;
  const release = () => {
    inFlight--;
  };
  // A callback hook, not an async one: it never waits, so it costs no promise per request.
  app.addHook('onRequest', (request, reply, done) => {
    if (request.routeOptions.config.auth === 'public') return done();
    if (inFlight >= maxConcurrent) {
      return done(
        new PlatformError(
          'CHAT_ERR_SERVER_BUSY',
          `the server is handling ${maxConcurrent} requests (resource_limits.max_concurrent_requests); retry shortly`,
        ),
      );
    }
    inFlight++;
    reply.raw.once('close', release);
    done();
  });

  // The web client (web-client.ts): its session cookie stands in for a key; its page is served at /.
  const web = createWebAccess(platform, auth);
  registerAuthHook(app, auth, { sessionPrincipal: web.sessionPrincipal });

  // One user may hold at most resource_limits.max_concurrent_requests_per_user of those requests: counted
  // once the caller is known (after every onRequest hook, before the body is read), so one user's open
  // streams, sockets or slow uploads cannot take the whole node from the others.
  const maxPerUser = platform.config.resource_limits.max_concurrent_requests_per_user;
  const inFlightByUser = new Map<string, number>();
  app.addHook('preParsing', (request, reply, payload, done) => {
    const userId = request.principal?.userId;
    if (userId === undefined) return done(null, payload);
    const open = inFlightByUser.get(userId) ?? 0;
    if (open >= maxPerUser) {
      return done(
        new PlatformError(
          'CHAT_ERR_TOO_MANY_CONCURRENT_REQUESTS',
          `you have ${maxPerUser} requests open on this server already (resource_limits.max_concurrent_requests_per_user): retry when one has ended`,
        ),
      );
    }
    inFlightByUser.set(userId, open + 1);
    reply.raw.once('close', () => {
      const left = (inFlightByUser.get(userId) ?? 1) - 1;
      if (left === 0) inFlightByUser.delete(userId);
      else inFlightByUser.set(userId, left);
    });
    done(null, payload);
  });
  addSharedSchemas(app);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'parley',
        version: '1',
        description:
          'The parley chat API. Errors are { "error": { "code", "message" } }; see docs/api.md and docs/errors.md.',
      },
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearerAuth: [] }],
    },
    // Shared schemas keep their $id as their component name (Session, Message, Error…).
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, index) => String(json.$id ?? `def-${index}`),
    },
  });

  app.get('/openapi.json', { config: { auth: 'public' }, schema: { hide: true } }, async () => app.swagger());
  registerMetricsRoutes(app, context);
  registerHealthRoutes(app, context);
  registerSessionRoutes(app, context);
  registerMessageRoutes(app, context);
  registerFeedbackRoutes(app, context);
  registerSessionExportRoutes(app, context);
  registerSearchRoutes(app, context);
  registerWebSocketRoutes(app, context);
  registerOpenAIRoutes(app, context);
  registerUserRoutes(app, context);
  registerAuditRoutes(app, context);
  registerMemoryRoutes(app, context);
  registerHookRoutes(app, context);
  registerAgentRoutes(app, context);
  registerDocumentRoutes(app, context);
  await web.register(app);

  return app;
}
