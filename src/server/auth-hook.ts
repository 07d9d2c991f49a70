/**
 * Authentication of every HTTP request, in one place: an `onRequest` hook reads the credential, asks
 * src/security/auth for the principal and checks the route's role. Each route says what it needs in its
 * config (`auth: 'public' | 'user' | 'admin'`, default `user`), so a new route is protected unless it
 * opts out. A later cookie login adds one more place to find the key here, and nothing else changes.
 */

import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  type Auth,
  bearerToken,
  type Principal,
  requireRole,
  UnauthenticatedError,
} from '../security/auth.ts';

/** Who may call a route: anyone, any authenticated user, or admins only. */
export type RouteAuth = 'public' | 'user' | 'admin';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Default `user`. */
    auth?: RouteAuth;
  }
  interface FastifyRequest {
    /** The authenticated caller; set on every route that is not public. */
    principal: Principal | undefined;
  }
}

/** Other ways than a bearer key to find the caller. */
export interface AuthHookOptions {
  /** The web client's session cookie (web-auth.ts); consulted only when no Authorization header came. */
  sessionPrincipal?: (request: FastifyRequest) => Promise<Principal | undefined>;
}

/** Adds the authentication hook to `app` (before any route is registered). */
export function registerAuthHook(app: FastifyInstance, auth: Auth, options: AuthHookOptions = {}): void {
  app.decorateRequest('principal', undefined);
  app.addHook('onRequest', async (request) => {
    const required = request.routeOptions.config.auth ?? 'user';
    if (required === 'public') return;
    const fromSession =
      request.headers.authorization === undefined ? await options.sessionPrincipal?.(request) : undefined;
    const principal = fromSession ?? (await auth.authenticate(bearerToken(request.headers.authorization)));
    if (required === 'admin') requireRole(principal, 'admin');
    request.principal = principal;
  });
}

/** The caller of an authenticated route (throws on a public one, which is a programming error). */
export function principalOf(request: FastifyRequest): Principal {
  const principal = request.principal;
  if (principal === undefined) throw new UnauthenticatedError('this route needs an API key');
  return principal;
}
