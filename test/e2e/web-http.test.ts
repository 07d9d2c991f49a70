/**
 * The server side of the web client over real HTTP, without a browser: the cookie login (flags, wrong
 * key, logout, revoked key), what the cookie may and may not do (cross-origin requests and WebSocket
 * upgrades are refused), and how the built client is served (CSP and the other headers, compressed
 * hashed assets, the page for client-side addresses, JSON 404s for API paths).
 */

import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WEB_CONTENT_SECURITY_POLICY } from '../../src/server/web-client.ts';
import { ensureWebBuilt, startWebHarness, type WebHarness, type WebTestUser } from './web-harness.ts';

let harness: WebHarness;
let ada: WebTestUser;

beforeAll(async () => {
  await ensureWebBuilt();
  harness = await startWebHarness();
  ada = await harness.createUser('ada');
}, 60_000);

afterAll(async () => {
  await harness?.close();
});

// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary response bodies
async function bodyOf(response: Response): Promise<any> {
  return response.json();
}

function origin(): string {
  return harness.baseUrl;
}

async function login(key: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${harness.baseUrl}/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: origin(), ...headers },
    body: JSON.stringify({ apiKey: key }),
  });
}

/** Logs in and returns the `name=value` of the session cookie. */
async function sessionCookie(key: string): Promise<string> {
  const response = await login(key);
  expect(response.status).toBe(200);
  const setCookie = response.headers.get('set-cookie') ?? '';
  return setCookie.split(';', 1)[0]!;
}

function call(method: string, path: string, headers: Record<string, string>, body?: unknown) {
  return fetch(harness.baseUrl + path, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

/** The status line of a WebSocket upgrade request sent by hand (to set Origin and Cookie freely). */
async function upgradeStatus(path: string, headers: Record<string, string>): Promise<number> {
  const { port } = new URL(harness.baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => {
      const lines = [
        `GET ${path} HTTP/1.1`,
        `Host: 127.0.0.1:${port}`,
        'Connection: Upgrade',
        'Upgrade: websocket',
        'Sec-WebSocket-Version: 13',
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
        ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
      ];
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    });
    socket.once('data', (data) => {
      resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(data.toString('latin1'))?.[1]));
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

describe('cookie login', () => {
  it('trades a valid key for an HttpOnly, SameSite=Strict session cookie that authenticates requests', async () => {
    const response = await login(ada.key);
    expect(response.status).toBe(200);
    expect(await bodyOf(response)).toEqual({ user: { id: ada.id, name: 'ada', role: 'user' } });
    const setCookie = response.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/^parley_session=[A-Za-z0-9_-]{43}; /);
    expect(setCookie).toContain('HttpOnly');
    expect(setCookie).toContain('SameSite=Strict');
    expect(setCookie).toContain('Path=/');
    expect(setCookie).toContain('Max-Age=604800');
    expect(setCookie).not.toContain(ada.key);
    expect(response.headers.get('cache-control')).toBe('no-store');

    const cookie = setCookie.split(';', 1)[0]!;
    const me = await call('GET', '/v1/me', { cookie });
    expect(me.status).toBe(200);
    expect((await bodyOf(me)).user.id).toBe(ada.id);
    const created = await call('POST', '/v1/sessions', { cookie, origin: origin() }, { title: 'by cookie' });
    expect(created.status).toBe(201);
    expect((await bodyOf(created)).userId).toBe(ada.id);
  });

  it('refuses a wrong key with 401 and a clear message, and sets no cookie', async () => {
    const response = await login('pk_not-a-real-key-not-a-real-key-not-a-real-key00');
    expect(response.status).toBe(401);
    expect(response.headers.get('set-cookie')).toBeNull();
    const body = await bodyOf(response);
    expect(body.error.code).toBe('CHAT_ERR_AUTH_UNAUTHENTICATED');
    expect(body.error.message).toMatch(/not valid/);
    expect((await login('')).status).toBe(400);
  });

  it('ends on logout (on the server, not only in the browser)', async () => {
    const cookie = await sessionCookie(ada.key);
    const out = await call('POST', '/v1/auth/logout', { cookie, origin: origin() });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toMatch(/^parley_session=; .*Max-Age=0/);
    expect((await call('GET', '/v1/me', { cookie })).status).toBe(401);
    // Logging out without a session is harmless.
    expect((await call('POST', '/v1/auth/logout', { origin: origin() })).status).toBe(204);
  });

  it('ends when the key it was opened with is revoked', async () => {
    const user = await harness.createUser('revoked');
    const second = await harness.auth.keys.create(user.id);
    const cookie = await sessionCookie(second.key);
    expect((await call('GET', '/v1/me', { cookie })).status).toBe(200);
    await harness.auth.keys.revoke(second.record.id);
    expect((await call('GET', '/v1/me', { cookie })).status).toBe(401);
  });

  it('gives way to an Authorization header when both are sent', async () => {
    const bob = await harness.createUser('bob');
    const cookie = await sessionCookie(ada.key);
    const me = await call('GET', '/v1/me', { cookie, authorization: `Bearer ${bob.key}` });
    expect((await bodyOf(me)).user.id).toBe(bob.id);
  });
});

describe('what the cookie cannot do', () => {
  it('change anything from another origin, or without saying its origin', async () => {
    const cookie = await sessionCookie(ada.key);
    const foreign = await call('POST', '/v1/sessions', { cookie, origin: 'http://evil.example' }, {});
    expect(foreign.status).toBe(403);
    expect((await bodyOf(foreign)).error.code).toBe('CHAT_ERR_AUTH_FORBIDDEN');
    expect((await call('POST', '/v1/sessions', { cookie }, {})).status).toBe(403);
    expect((await call('POST', '/v1/auth/logout', { cookie, origin: 'http://evil.example' })).status).toBe(
      403,
    );
    // The session survived the refused logout.
    expect((await call('GET', '/v1/me', { cookie })).status).toBe(200);
  });

  it('log a visitor in from another origin', async () => {
    const response = await login(ada.key, { origin: 'http://evil.example' });
    expect(response.status).toBe(403);
    expect(response.headers.get('set-cookie')).toBeNull();
  });

  it('open a WebSocket from another origin (same origin works)', async () => {
    const cookie = await sessionCookie(ada.key);
    const created = await call('POST', '/v1/sessions', { cookie, origin: origin() }, {});
    const { id } = await bodyOf(created);
    const path = `/v1/sessions/${id}/stream`;
    expect(await upgradeStatus(path, { cookie, origin: origin() })).toBe(101);
    expect(await upgradeStatus(path, { cookie, origin: 'http://evil.example' })).toBe(403);
    expect(await upgradeStatus(path, { cookie })).toBe(403);
    expect(await upgradeStatus(path, { origin: origin() })).toBe(401);
  });
});

describe('the personas route', () => {
  it('lists the personas a session can use, without their system prompts', async () => {
    const response = await call('GET', '/v1/personas', { authorization: `Bearer ${ada.key}` });
    expect(response.status).toBe(200);
    const { personas } = await bodyOf(response);
    expect(personas).toContainEqual({ id: 'assistant', name: 'Assistant' });
    expect(JSON.stringify(personas)).not.toContain('systemPrompt');
    expect((await call('GET', '/v1/personas', {})).status).toBe(401);
  });
});

describe('serving the client', () => {
  it('serves the page at / with a strict CSP and the other security headers', async () => {
    const response = await fetch(`${harness.baseUrl}/`, { headers: { accept: 'text/html' } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = response.headers.get('content-security-policy');
    expect(csp).toBe(WEB_CONTENT_SECURITY_POLICY);
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
    expect(csp).toContain("img-src 'self' data:");
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('x-frame-options')).toBe('DENY');
    expect(response.headers.get('cache-control')).toBe('no-cache');
    const html = await response.text();
    expect(html).toContain('<div id="root">');
    // No inline script: everything the page runs comes from a file the CSP allows.
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
  });

  it('serves hashed assets compressed and cacheable for a year', async () => {
    const html = await (await fetch(`${harness.baseUrl}/`)).text();
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const brotli = await fetch(harness.baseUrl + script, { headers: { 'accept-encoding': 'br' } });
    expect(brotli.status).toBe(200);
    expect(brotli.headers.get('content-encoding')).toBe('br');
    expect(brotli.headers.get('content-type')).toMatch(/javascript/);
    expect(brotli.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(brotli.headers.get('content-security-policy')).toBe(WEB_CONTENT_SECURITY_POLICY);
    expect((await fetch(`${harness.baseUrl}${script}.br`)).status).toBe(404);
    const icon = await fetch(`${harness.baseUrl}/favicon.svg`);
    expect(icon.status).toBe(200);
    expect(icon.headers.get('content-type')).toMatch(/^image\/svg\+xml/);
    const plain = await fetch(harness.baseUrl + script, { headers: { 'accept-encoding': 'identity' } });
    expect(plain.headers.get('content-encoding')).toBeNull();
    expect((await plain.text()).length).toBeGreaterThan(1000);
  });

  it('answers a browser navigation to a client address with the page, and API paths with JSON 404', async () => {
    const page = await fetch(`${harness.baseUrl}/c/some-session-id`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<div id="root">');

    for (const path of ['/v1/no-such-route', '/assets/index-gone.js', '/c/some-session-id']) {
      const response = await fetch(harness.baseUrl + path, { headers: { accept: 'application/json' } });
      expect(response.status).toBe(404);
      expect((await bodyOf(response)).error.code).toBe('CHAT_ERR_NOT_FOUND');
    }
    const api = await fetch(`${harness.baseUrl}/v1/no-such-route`, { headers: { accept: 'text/html' } });
    expect(api.status).toBe(404);
  });

  it('keeps the API routes and the OpenAPI document working beside it', async () => {
    expect((await fetch(`${harness.baseUrl}/healthz`)).status).toBe(200);
    const openapi = await bodyOf(await fetch(`${harness.baseUrl}/openapi.json`));
    expect(Object.keys(openapi.paths)).toEqual(
      expect.arrayContaining(['/v1/auth/login', '/v1/auth/logout', '/v1/personas', '/v1/sessions']),
    );
    expect(Object.keys(openapi.paths)).not.toContain('/*');
  });
});
