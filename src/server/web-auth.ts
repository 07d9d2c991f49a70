/**
 * Cookie login for the web client: `POST /v1/auth/login` takes an API key once and answers with an
 * HttpOnly, SameSite=Strict session cookie (the browser never keeps the key); `POST /v1/auth/logout` ends
 * the session. Requests that come with the cookie instead of `Authorization: Bearer` are authenticated by
 * `webSessionPrincipal`, which the auth hook consults.
 *
 * Cross-site requests: SameSite=Strict already keeps the cookie off requests started by other sites;
 * as a second lock, a cookie-authenticated request that changes something (any method but GET/HEAD) or
 * opens a WebSocket must carry an `Origin` naming this server's own host.
 */

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuditLog } from '../security/audit-log.ts';
import type { Auth, Principal } from '../security/auth.ts';
import { ForbiddenError } from '../security/auth.ts';
import { errorResponses } from './schemas.ts';
import type { WebSessionStore } from './web-sessions.ts';

/** The name of the session cookie. */
export const WEB_SESSION_COOKIE = 'parley_session';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

// The cookie's value is a base64url token we made: reading and writing it needs no general cookie codec
// (@fastify/cookie loads its codec only once registered as a plugin, after the auth hook would need it).
function sessionToken(request: FastifyRequest): string | undefined {
  const header = request.headers.cookie;
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const equals = part.indexOf('=');
    if (equals !== -1 && part.slice(0, equals).trim() === WEB_SESSION_COOKIE) {
      return part.slice(equals + 1).trim();
    }
  }
  return undefined;
}

/** Whether the request's `Origin` names this server (the host the browser connected to). */
function isSameOrigin(request: FastifyRequest): boolean {
  const origin = request.headers.origin;
  if (origin === undefined || origin === 'null') return false;
  try {
    return new URL(origin).host === request.headers.host;
  } catch {
    return false;
  }
}

function needsOriginCheck(request: FastifyRequest): boolean {
  const upgrade = request.headers.upgrade;
  return !SAFE_METHODS.has(request.method) || upgrade?.toLowerCase() === 'websocket';
}

function sessionCookie(request: FastifyRequest, value: string, maxAgeSeconds: number): string {
  const attributes = [`${WEB_SESSION_COOKIE}=${value}`, 'Path=/', `Max-Age=${maxAgeSeconds}`, 'HttpOnly'];
  attributes.push('SameSite=Strict');
  // Over plain http (a local install) a Secure cookie would never come back.
  if (request.protocol === 'https') attributes.push('Secure');
  return attributes.join('; ');
}

/**
 * The principal of a request's session cookie, or `undefined` when it has none (or one that is not valid
 * any more: the request then needs a bearer key like any other). Throws ForbiddenError for a
 * cookie-authenticated state-changing request from another origin.
 */
export function createWebSessionAuthenticator(
  sessions: WebSessionStore,
): (request: FastifyRequest) => Promise<Principal | undefined> {
  return async (request) => {
    const token = sessionToken(request);
    if (token === undefined || token === '') return undefined;
    const principal = await sessions.resolve(token);
    if (principal === undefined) return undefined;
    if (needsOriginCheck(request) && !isSameOrigin(request)) {
      throw new ForbiddenError('cross-origin request refused: its Origin is not this server');
    }
    return principal;
  };
}

export interface WebAuthRouteOptions {
  auth: Auth;
  sessions: WebSessionStore;
  /** Where sign-ins are recorded. */
  audit: AuditLog | undefined;
}

/** Registers /v1/auth/login and /v1/auth/logout. */
export function registerWebAuthRoutes(app: FastifyInstance, options: WebAuthRouteOptions): void {
  const { auth, sessions, audit } = options;
  const tags = ['auth'];
  const userSchema = {
    type: 'object',
    required: ['user'],
    properties: {
      user: {
        type: 'object',
        required: ['id', 'name', 'role'],
        properties: { id: { type: 'string' }, name: { type: 'string' }, role: { type: 'string' } },
      },
    },
  } as const;

  app.post<{ Body: { apiKey: string } }>(
    '/v1/auth/login',
    {
      config: { auth: 'public' },
      schema: {
        tags,
        summary: 'Exchange an API key for a browser session cookie (HttpOnly, SameSite=Strict)',
        security: [],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['apiKey'],
          properties: { apiKey: { type: 'string', minLength: 1, maxLength: 200 } },
        },
        response: { 200: userSchema, ...errorResponses },
      },
    },
    async (request, reply: FastifyReply) => {
      // A page of another site must not log its visitor in under the site's own key (login CSRF).
      if (request.headers.origin !== undefined && !isSameOrigin(request)) {
        throw new ForbiddenError('cross-origin login refused: its Origin is not this server');
      }
      const principal = await auth.authenticate(request.body.apiKey.trim());
      const opened = await sessions.open(principal);
      await audit?.record({
        actor: { type: 'user', id: principal.userId, name: principal.userName },
        action: 'web.signed_in',
        target: { keyId: principal.keyId },
      });
      reply.header('set-cookie', sessionCookie(request, opened.token, sessions.ttlSeconds));
      reply.header('cache-control', 'no-store');
      return { user: { id: principal.userId, name: principal.userName, role: principal.role } };
    },
  );

  app.post(
    '/v1/auth/logout',
    {
      config: { auth: 'public' },
      schema: {
        tags,
        summary: 'End the browser session of the cookie (and clear the cookie)',
        security: [],
        response: { 204: { type: 'null', description: 'Logged out' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      const token = sessionToken(request);
      if (token !== undefined && token !== '') {
        // Another site cannot log the user out either.
        if (!isSameOrigin(request)) {
          throw new ForbiddenError('cross-origin logout refused: its Origin is not this server');
        }
        await sessions.close(token);
      }
      reply.header('set-cookie', sessionCookie(request, '', 0));
      return reply.status(204).send();
    },
  );
}
