/**
 * Authentication and ownership over real HTTP: every id-bearing route × {owner, other user, no token,
 * bad token} → 2xx / 404 / 401 / 401, with the resource unchanged by the failed attempts; admin routes
 * need the admin role; revoked keys stop working; keys are stored only as hashes; and the first
 * `parley serve` on an empty data folder prints an admin key once.
 */

import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../src/security/api-keys.ts';
import { type HttpHarness, startHttpHarness } from './http-harness.ts';

let harness: HttpHarness;

beforeAll(async () => {
  harness = await startHttpHarness();
  harness.model.respond({ kind: 'stream', chunks: ['fine'] });
});

afterAll(async () => {
  await harness?.close();
});

type Caller = 'owner' | 'other user' | 'no token' | 'bad token';
const CALLERS: Caller[] = ['other user', 'no token', 'bad token', 'owner'];
const BAD_KEY = `pk_${'A'.repeat(43)}`;

function keyOf(caller: Caller): string | undefined {
  switch (caller) {
    case 'owner':
      return harness.alice.key;
    case 'other user':
      return harness.bob.key;
    case 'no token':
      return undefined;
    case 'bad token':
      return BAD_KEY;
  }
}

interface SessionRoute {
  name: string;
  method: string;
  path: (sessionId: string) => string;
  body?: unknown;
  ownerStatus: number;
}

const SESSION_ROUTES: SessionRoute[] = [
  { name: 'read a session', method: 'GET', path: (id) => `/v1/sessions/${id}`, ownerStatus: 200 },
  {
    name: 'rename a session',
    method: 'PATCH',
    path: (id) => `/v1/sessions/${id}`,
    body: { title: 'changed' },
    ownerStatus: 200,
  },
  { name: 'delete a session', method: 'DELETE', path: (id) => `/v1/sessions/${id}`, ownerStatus: 204 },
  { name: 'list messages', method: 'GET', path: (id) => `/v1/sessions/${id}/messages`, ownerStatus: 200 },
  {
    name: 'post a message',
    method: 'POST',
    path: (id) => `/v1/sessions/${id}/messages`,
    body: { content: 'hello' },
    ownerStatus: 200,
  },
  {
    name: 'stream a message (SSE)',
    method: 'POST',
    path: (id) => `/v1/sessions/${id}/messages?stream=sse`,
    body: { content: 'hello' },
    ownerStatus: 200,
  },
  {
    name: 'cancel a turn',
    method: 'POST',
    path: (id) => `/v1/sessions/${id}/turns/01a2a2a2-0000-7000-8000-000000000000/cancel`,
    ownerStatus: 202,
  },
];

describe('every session route answers owner / other user / no token / bad token with 2xx / 404 / 401 / 401', () => {
  for (const route of SESSION_ROUTES) {
    it(route.name, async () => {
      const { call, alice } = harness;
      const created = await call('POST', '/v1/sessions', { key: alice.key, body: { title: 'original' } });
      const sessionId: string = created.body.id;
      for (const caller of CALLERS) {
        const key = keyOf(caller);
        const response = await call(route.method, route.path(sessionId), {
          ...(key === undefined ? {} : { key }),
          ...(route.body === undefined ? {} : { body: route.body }),
        });
        const expected = { owner: route.ownerStatus, 'other user': 404, 'no token': 401, 'bad token': 401 }[
          caller
        ];
        expect(response.status, `${caller}: ${JSON.stringify(response.body)}`).toBe(expected);
        if (caller === 'other user') {
          // Exactly like a missing session: the same code and the same wording.
          const missing = await call(route.method, route.path('01a2a2a2-0000-7000-8000-00000000dead'), {
            key: harness.bob.key,
            ...(route.body === undefined ? {} : { body: route.body }),
          });
          expect(missing.status).toBe(404);
          expect(response.body.error.code).toBe(missing.body.error.code);
          expect(response.body.error.message.replace(sessionId, 'ID')).toBe(
            missing.body.error.message.replace('01a2a2a2-0000-7000-8000-00000000dead', 'ID'),
          );
        }
        if (caller === 'no token' || caller === 'bad token') {
          expect(response.body.error.code).toBe('CHAT_ERR_AUTH_UNAUTHENTICATED');
          expect(response.headers.get('www-authenticate')).toBe('Bearer realm="parley"');
        }
        if (caller !== 'owner') {
          // The failed attempt changed nothing.
          const session = await call('GET', `/v1/sessions/${sessionId}`, { key: alice.key });
          expect(session.status).toBe(200);
          expect(session.body.metadata.title).toBe('original');
          const messages = await call('GET', `/v1/sessions/${sessionId}/messages`, { key: alice.key });
          expect(messages.body.messages).toEqual([]);
        }
      }
    });
  }

  it('the session list shows only the caller’s sessions, and needs a token', async () => {
    const { call, alice, bob } = harness;
    const created = await call('POST', '/v1/sessions', { key: alice.key, body: {} });
    const ofBob = await call('GET', '/v1/sessions', { key: bob.key });
    expect(ofBob.body.sessions.map((s: { id: string }) => s.id)).not.toContain(created.body.id);
    expect((await call('GET', '/v1/sessions')).status).toBe(401);
    expect((await call('GET', '/v1/sessions', { key: BAD_KEY })).status).toBe(401);
  });
});

describe('credentials', () => {
  it('accept only a well-formed Bearer header with a known key', async () => {
    const { baseUrl, alice } = harness;
    const attempts: Array<[string, number]> = [
      [`Bearer ${alice.key}`, 200],
      [`bearer ${alice.key}`, 200],
      [`Basic ${Buffer.from(`alice:${alice.key}`).toString('base64')}`, 401],
      [alice.key, 401],
      ['Bearer', 401],
      ['Bearer not-a-key', 401],
      [`Bearer ${alice.key}x`, 401],
    ];
    for (const [authorization, status] of attempts) {
      const response = await fetch(`${baseUrl}/v1/me`, { headers: { authorization } });
      expect(response.status, authorization).toBe(status);
    }
  });

  it('GET /v1/me names the caller', async () => {
    const response = await harness.call('GET', '/v1/me', { key: harness.alice.key });
    expect(response.status).toBe(200);
    expect(response.body.user).toMatchObject({ id: harness.alice.id, name: 'alice', role: 'user' });
  });

  it('health and the OpenAPI document need none', async () => {
    for (const path of ['/healthz', '/readyz', '/openapi.json']) {
      expect((await harness.call('GET', path)).status, path).toBe(200);
    }
  });
});

describe('admin routes', () => {
  it('create users and keys for the admin, and 403 for a user, 401 without a valid key', async () => {
    const { call, admin, alice } = harness;
    const attempts: Array<[string | undefined, number]> = [
      [alice.key, 403],
      [undefined, 401],
      [BAD_KEY, 401],
    ];
    for (const [key, status] of attempts) {
      const options = key === undefined ? {} : { key };
      expect((await call('POST', '/v1/users', { ...options, body: { name: 'mallory' } })).status).toBe(
        status,
      );
      expect((await call('GET', '/v1/users', options)).status).toBe(status);
      expect((await call('GET', `/v1/users/${alice.id}`, options)).status).toBe(status);
      expect((await call('POST', '/v1/keys', { ...options, body: { userId: alice.id } })).status).toBe(
        status,
      );
      expect((await call('GET', '/v1/keys', options)).status).toBe(status);
    }
    const forbidden = await call('GET', '/v1/users', { key: alice.key });
    expect(forbidden.body.error.code).toBe('CHAT_ERR_AUTH_FORBIDDEN');

    const created = await call('POST', '/v1/users', { key: admin.key, body: { name: 'carol' } });
    expect(created.status).toBe(201);
    expect(created.body.user).toMatchObject({ name: 'carol', role: 'user' });
    expect(created.body.key).toMatch(/^pk_[A-Za-z0-9_-]{43}$/);
    const asCarol = await call('GET', '/v1/me', { key: created.body.key });
    expect(asCarol.body.user.name).toBe('carol');

    const duplicate = await call('POST', '/v1/users', { key: admin.key, body: { name: 'carol' } });
    expect(duplicate.status).toBe(409);
    expect(duplicate.body.error.code).toBe('CHAT_ERR_CONFLICT');
    const badName = await call('POST', '/v1/users', { key: admin.key, body: { name: 'Carol Smith' } });
    expect(badName.status).toBe(400);

    const users = await call('GET', '/v1/users', { key: admin.key });
    expect(users.body.users.map((u: { name: string }) => u.name)).toEqual(
      expect.arrayContaining(['root', 'alice', 'bob', 'carol']),
    );
    expect((await call('GET', `/v1/users/${alice.id}`, { key: admin.key })).body.name).toBe('alice');
    expect(
      (await call('GET', '/v1/users/01a2a2a2-0000-7000-8000-000000000000', { key: admin.key })).status,
    ).toBe(404);
  });

  it('revoke a key: it stops working at once, the owner’s other keys keep working', async () => {
    const { call, admin, alice } = harness;
    const created = await call('POST', '/v1/keys', {
      key: admin.key,
      body: { userId: alice.id, name: 'laptop' },
    });
    expect(created.status).toBe(201);
    const laptopKey: string = created.body.key;
    expect((await call('GET', '/v1/me', { key: laptopKey })).status).toBe(200);

    const listed = await call('GET', `/v1/keys?userId=${alice.id}`, { key: admin.key });
    const record = listed.body.keys.find((k: { id: string }) => k.id === created.body.apiKey.id);
    expect(record).toMatchObject({ userId: alice.id, name: 'laptop', revoked: false });
    expect(JSON.stringify(listed.body)).not.toContain(laptopKey);

    // Key routes by id: admin → 200, user → 403, none/bad → 401, unknown id → 404.
    expect((await call('DELETE', `/v1/keys/${record.id}`, { key: alice.key })).status).toBe(403);
    expect((await call('DELETE', `/v1/keys/${record.id}`)).status).toBe(401);
    expect((await call('DELETE', `/v1/keys/${record.id}`, { key: BAD_KEY })).status).toBe(401);
    expect((await call('GET', '/v1/me', { key: laptopKey })).status).toBe(200);
    const revoked = await call('DELETE', `/v1/keys/${record.id}`, { key: admin.key });
    expect(revoked.status).toBe(200);
    expect(revoked.body.revoked).toBe(true);
    expect(
      (await call('DELETE', '/v1/keys/01a2a2a2-0000-7000-8000-000000000000', { key: admin.key })).status,
    ).toBe(404);

    const refused = await call('GET', '/v1/me', { key: laptopKey });
    expect(refused.status).toBe(401);
    expect(refused.body.error.code).toBe('CHAT_ERR_AUTH_UNAUTHENTICATED');
    expect((await call('GET', '/v1/me', { key: alice.key })).status).toBe(200);
  });

  it('keys are stored only as SHA-256 hashes', async () => {
    const files: string[] = [];
    const walk = async (directory: string): Promise<void> => {
      for (const entry of await readdir(directory, { withFileTypes: true })) {
        const path = join(directory, entry.name);
        if (entry.isDirectory()) await walk(path);
        else files.push(path);
      }
    };
    await walk(harness.dataDir);
    const contents = await Promise.all(files.map((file) => readFile(file, 'utf8')));
    const everything = files.join('\n') + contents.join('\n');
    for (const user of [harness.admin, harness.alice, harness.bob]) {
      expect(everything).not.toContain(user.key);
      expect(
        files.some((file) => file.endsWith(join('keys', 'hashes', `${hashApiKey(user.key)}.json`))),
      ).toBe(true);
    }
  });
});

describe('the first `parley serve` on an empty data folder', () => {
  const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

  /** Starts `parley serve`, waits until it listens, returns its stdout so far and stops it. */
  async function serveOnce(dataDir: string): Promise<{ output: string; url: string; stop(): Promise<void> }> {
    const child = spawn(process.execPath, [main, 'serve'], {
      env: {
        ...process.env,
        NODE_ENV: 'test',
        CHAT_DATA_DIR: dataDir,
        CHAT_SERVER__PORT: '0',
        CHAT_LOGGING__LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text: string) => {
      output += text;
    });
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`serve did not start:\n${output}`)), 20_000);
      child.stdout.on('data', (text: string) => {
        output += text;
        // serve logs this line after the first-start box (when there is one).
        const match = /parley is listening on (http:\/\/[^"\s]+)/.exec(output);
        if (match?.[1] !== undefined) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      });
      child.on('exit', (code) => reject(new Error(`serve exited with ${code}:\n${output}`)));
    });
    return {
      get output() {
        return output;
      },
      url,
      stop: () =>
        new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        }),
    };
  }

  it('creates an admin and prints its key once, in a box with a curl example', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'parley-first-start-'));
    try {
      const first = await serveOnce(dataDir);
      const key = /(pk_[A-Za-z0-9_-]{43})/.exec(first.output)?.[1];
      expect(key, first.output).toBeDefined();
      expect(first.output).toContain(`curl -H "Authorization: Bearer ${key}" ${first.url}/v1/models`);
      const me = await fetch(`${first.url}/v1/me`, { headers: { authorization: `Bearer ${key}` } });
      expect(me.status).toBe(200);
      expect(((await me.json()) as { user: { name: string; role: string } }).user).toMatchObject({
        name: 'admin',
        role: 'admin',
      });
      await first.stop();

      const second = await serveOnce(dataDir);
      expect(second.output).not.toMatch(/pk_[A-Za-z0-9_-]{43}/);
      const again = await fetch(`${second.url}/v1/me`, { headers: { authorization: `Bearer ${key}` } });
      expect(again.status).toBe(200);
      await second.stop();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
