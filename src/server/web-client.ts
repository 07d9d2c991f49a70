/**
 * Serves the built web client (`web/dist`, made by `npm run build:web`) at `/`: the hashed assets under
 * `/assets/` cached for a year, `index.html` for `/` and for any other browser navigation that names no
 * API route (so a reload of a client-side address keeps working). API paths that do not exist still get
 * the JSON 404 of every route. Every response of the client carries a strict Content-Security-Policy:
 * scripts and styles only from this server and never inline, images only from this server or data: URLs,
 * no frames, plugins or foreign connections — so even HTML that slipped past the Markdown sanitizer could
 * neither run code nor fetch a remote image.
 */

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { NotFoundError } from '../core/errors.ts';
import type { Platform } from '../platform/create-platform.ts';
import type { Auth, Principal } from '../security/auth.ts';
import { createWebSessionAuthenticator, registerWebAuthRoutes } from './web-auth.ts';
import { registerPersonaListRoute } from './web-personas.ts';
import { createWebSessionStore } from './web-sessions.ts';

/** Where `npm run build:web` writes the client. */
export const DEFAULT_WEB_DIST_DIR = fileURLToPath(new URL('../../web/dist/', import.meta.url));

/** The Content-Security-Policy of the web client. */
export const WEB_CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers of every web client response. */
export const WEB_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': WEB_CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
};

// Paths that belong to the API (or machines): never answered with the client page.
const API_PATH = /^\/(v1|openapi\.json|metrics|healthz|readyz|docs)(\/|$)/;

export interface WebClientOptions {
  /** The built client (default: web/dist of this checkout). */
  distDir?: string;
}

/** What createServer wires in: the cookie check for the auth hook, and the routes. */
export interface WebAccess {
  /** The principal of a request's session cookie (for registerAuthHook). */
  sessionPrincipal(request: FastifyRequest): Promise<Principal | undefined>;
  /** Registers /v1/auth/login, /v1/auth/logout, /v1/personas and the client itself. */
  register(app: FastifyInstance): Promise<void>;
}

/**
 * The web client's server side: browser sessions in the platform storage (lasting
 * server.auth.web_session_ttl_hours), checked against `auth`'s keys and users.
 */
export function createWebAccess(platform: Platform, auth: Auth, options: WebClientOptions = {}): WebAccess {
  const ttlHours = platform.config.server.auth.web_session_ttl_hours;
  const sessions = createWebSessionStore(platform.storage, auth, { ttlHours });
  return {
    sessionPrincipal: createWebSessionAuthenticator(sessions),
    async register(app) {
      registerWebAuthRoutes(app, { auth, sessions, audit: platform.audit });
      registerPersonaListRoute(app, platform.bus);
      await registerWebClient(app, options);
    },
  };
}

function isBrowserNavigation(request: FastifyRequest): boolean {
  const path = request.url.split('?', 1)[0] ?? '/';
  if (API_PATH.test(path)) return false;
  // A missing asset (/assets/old-hash.js) is a 404, not the page.
  if (/\.[A-Za-z0-9]+$/.test(path)) return false;
  return request.headers.accept?.includes('text/html') === true;
}

const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>parley</title></head>
<body><h1>parley</h1><p>The web client is not built. Run <code>npm run build:web</code> and restart
(<code>npm start</code> builds it when it is missing). The HTTP API works without it: see docs/api.md.</p>
</body></html>
`;

/**
 * Registers the web client's routes (public: the page itself holds no data; the API behind it checks the
 * session cookie).
 */
export async function registerWebClient(app: FastifyInstance, options: WebClientOptions = {}): Promise<void> {
  const distDir = options.distDir ?? DEFAULT_WEB_DIST_DIR;
  const built = existsSync(`${distDir}/index.html`);

  await app.register(async (scope) => {
    scope.addHook('onRoute', (route) => {
      route.config = { ...route.config, auth: 'public' };
    });
    scope.addHook('onSend', async (_request, reply) => {
      reply.headers(WEB_SECURITY_HEADERS);
    });

    if (!built) {
      const notBuilt = async (_request: FastifyRequest, reply: FastifyReply) =>
        reply.status(503).type('text/html; charset=utf-8').send(NOT_BUILT_PAGE);
      scope.get('/', { schema: { hide: true } }, notBuilt);
      return;
    }

    // The hashed assets, looked up on each request, so a rebuild while parley runs is served at once.
    await scope.register(fastifyStatic, {
      root: join(distDir, 'assets'),
      prefix: '/assets/',
      index: false,
      // The build writes .br and .gz beside each asset (scripts/build-web.ts): sent as the browser accepts.
      preCompressed: true,
      allowedPath: (path) => !/\.(br|gz)$/.test(path),
      // Vite names assets by content hash: a changed file is a new name, so they never go stale. (This
      // registration's sendFile also serves index.html, which must be asked for again each time.)
      setHeaders: (reply, path) => {
        const hashed = path.startsWith(join(distDir, 'assets'));
        reply.header('cache-control', hashed ? 'public, max-age=31536000, immutable' : 'no-cache');
      },
    });
    // The few other files at the top (the icon), found at start.
    await scope.register(fastifyStatic, {
      root: distDir,
      wildcard: false,
      index: false,
      decorateReply: false,
      globIgnore: ['assets/**', 'index.html', '**/*.br', '**/*.gz'],
      setHeaders: (reply) => {
        reply.header('cache-control', 'no-cache');
      },
    });

    const page = async (_request: FastifyRequest, reply: FastifyReply) =>
      reply.header('cache-control', 'no-cache').sendFile('index.html', distDir);
    scope.get('/', { schema: { hide: true } }, page);
    scope.get('/*', { schema: { hide: true } }, async (request, reply) => {
      if (!isBrowserNavigation(request)) {
        throw new NotFoundError(`no route ${request.method} ${request.url.split('?', 1)[0]}`);
      }
      return page(request, reply);
    });
  });
}
