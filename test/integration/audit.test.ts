/**
 * The audit log end to end: what an admin does over HTTP, a web sign-in and what `parley` commands do on
 * the server's machine are recorded with who did it; only admins read it (`GET /v1/audit`); and
 * `parley audit verify` says the log is intact, then names the line an edit on disk broke.
 */

import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineModule } from '../../src/core/module.ts';
import { createPlatform } from '../../src/platform/create-platform.ts';
import { waitFor } from '../helpers/cluster.ts';
import { type HttpHarness, startHttpHarness } from './http-harness.ts';

const MAIN = resolve(import.meta.dirname, '../../src/cli/main.ts');

let harness: HttpHarness;

beforeAll(async () => {
  harness = await startHttpHarness();
});

afterAll(async () => {
  await harness?.close();
});

/** Runs `parley <args>` against the data folder `dataDir`; resolves with its exit code and output. */
function parley(
  args: string[],
  dataDir: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      env: { ...process.env, NODE_ENV: 'test', CHAT_DATA_DIR: dataDir, CHAT_LOGGING__LEVEL: 'warn' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

describe('GET /v1/audit', () => {
  it('shows what an admin did, by whom, newest first; users get 403, no key 401', async () => {
    const { call, admin, alice } = harness;
    const created = await call('POST', '/v1/users', { key: admin.key, body: { name: 'erin' } });
    expect(created.status).toBe(201);
    const revoked = await call('DELETE', `/v1/keys/${created.body.apiKey.id}`, { key: admin.key });
    expect(revoked.status).toBe(200);

    const listed = await call('GET', '/v1/audit?limit=3', { key: admin.key });
    expect(listed.status).toBe(200);
    const byAdmin = { type: 'user', id: admin.id, name: admin.name };
    expect(listed.body.entries.map((entry: { action: string }) => entry.action)).toEqual([
      'key.revoked',
      'key.created',
      'user.created',
    ]);
    expect(listed.body.entries[2]).toMatchObject({
      actor: byAdmin,
      target: { userId: created.body.user.id, name: 'erin' },
      details: { role: 'user' },
    });
    expect(listed.body.entries[0]).toMatchObject({
      actor: byAdmin,
      target: { keyId: created.body.apiKey.id, userId: created.body.user.id },
    });
    // A new key is recorded by id: the key itself is nowhere in the log.
    expect(JSON.stringify(listed.body)).not.toContain(created.body.key);

    expect((await call('GET', '/v1/audit', { key: alice.key })).status).toBe(403);
    expect((await call('GET', '/v1/audit')).status).toBe(401);
    const bad = await call('GET', '/v1/audit?limit=0', { key: admin.key });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain('limit');
    const notATime = await call('GET', '/v1/audit?before=yesterday', { key: admin.key });
    expect(notATime.status).toBe(400);
    expect(notATime.body.error.message).toContain('before');
  });

  it('records a web sign-in', async () => {
    const { call, admin, bob } = harness;
    expect((await call('POST', '/v1/auth/login', { body: { apiKey: bob.key } })).status).toBe(200);
    const [newest] = (await call('GET', '/v1/audit?limit=1', { key: admin.key })).body.entries;
    expect(newest).toMatchObject({
      action: 'web.signed_in',
      actor: { type: 'user', id: bob.id, name: 'bob' },
    });
  });
});

describe('refused credentials', () => {
  it('records a refused key once per address and minute, then how many more came; never the key', async () => {
    const started = await startHttpHarness();
    try {
      const { call, admin, alice } = started;
      const guessed = `pk_guess${'x'.repeat(40)}`;
      for (let attempt = 0; attempt < 3; attempt++) {
        expect((await call('GET', '/v1/sessions', { key: guessed })).status).toBe(401);
      }
      // A web sign-in with a wrong key, from the same address: gathered with the others.
      expect((await call('POST', '/v1/auth/login', { body: { apiKey: 'pk_wrong123' } })).status).toBe(401);
      // No key at all is not an attempt to get in: not recorded.
      expect((await call('GET', '/v1/sessions')).status).toBe(401);
      const failures = async () =>
        (await call('GET', '/v1/audit?limit=50', { key: admin.key })).body.entries.filter(
          (entry: { action: string }) => entry.action === 'auth.failed',
        );
      // Written in the background, not on the refused request's path.
      await waitFor(async () => (await failures()).length > 0, 'the refusal to be recorded');
      const [first, ...others] = await failures();
      expect(others).toEqual([]);
      expect(first).toMatchObject({
        actor: { type: 'system', name: 'http' },
        target: { ip: '127.0.0.1', route: 'GET /v1/sessions', keyPrefix: 'pk_guessx' },
        details: { reason: 'the API key is not valid (unknown or revoked)' },
      });
      expect(JSON.stringify(first)).not.toContain(guessed);
      // A good key is not a failure.
      expect((await call('GET', '/v1/sessions', { key: alice.key })).status).toBe(200);

      // The window ends (here: the server stops): the failures after the first are written as one entry.
      await started.app.close();
      const entries = (await started.platform.audit!.list({ limit: 50 })).filter(
        (entry) => entry.action === 'auth.failed',
      );
      expect(entries).toHaveLength(2);
      expect(entries[0]).toMatchObject({
        target: { ip: '127.0.0.1', route: 'GET /v1/sessions', keyPrefix: 'pk_guessx' },
        details: { count: 3, since: expect.any(String) },
      });
      // Since the first failure (noted just before its entry was written).
      const since = Date.parse((entries[0]!.details as { since: string }).since);
      expect(since).toBeLessThanOrEqual(Date.parse(first.time));
    } finally {
      await started.close();
    }
  });
});

describe('capability refusals', () => {
  it('records a module refused a capability, naming the module, the capability and what it tried', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'parley-audit-denied-'));
    const intruder = defineModule({
      info: { name: 'intruder', version: '1.0.0', capabilities: ['access_user_data'], dependencies: [] },
      configSchema: {},
      setup: async (ctx) => {
        // user.status_changed needs access_user_data, which config grants presence only.
        await ctx.emit('user.status_changed', { userId: 'u1', status: 'online' }).catch(() => {});
        return {};
      },
    });
    const platform = await createPlatform({
      env: { NODE_ENV: 'test', CHAT_DATA_DIR: dataDir, CHAT_LOGGING__LEVEL: 'silent' },
      definitions: new Map([['intruder', intruder as never]]),
    });
    try {
      await waitFor(async () => ((await platform.audit?.list()) ?? []).length > 0, 'the refusal');
      const [entry] = (await platform.audit?.list()) ?? [];
      expect(entry).toMatchObject({
        actor: { type: 'module', id: 'intruder' },
        action: 'access.denied',
        details: { capability: 'access_user_data' },
      });
    } finally {
      await platform.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('parley audit verify', () => {
  it('says the log is intact, then names the line an edit broke', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'parley-audit-'));
    try {
      const created = await parley(['users', 'create', 'frank'], dataDir);
      expect(created.code).toBe(0);
      const intact = await parley(['audit', 'verify'], dataDir);
      expect(intact.stderr).toBe('');
      expect(intact).toMatchObject({ code: 0 });
      // The chain's start, the user and its key.
      expect(intact.stdout).toContain('audit log intact: 3 entries in 1 chains');

      const folder = join(dataDir, 'audit', 'chains');
      const [file] = await readdir(folder);
      const path = join(folder, file as string);
      const lines = (await readFile(path, 'utf8')).split('\n');
      const entry = JSON.parse(lines[1] as string);
      expect(entry).toMatchObject({
        action: 'user.created',
        actor: { type: 'cli', name: userInfo().username },
      });
      lines[1] = JSON.stringify({ ...entry, target: { ...entry.target, name: 'mallory' } });
      await writeFile(path, lines.join('\n'));

      const broken = await parley(['audit', 'verify'], dataDir);
      expect(broken.code).toBe(1);
      expect(broken.stderr).toContain('audit log damaged');
      expect(broken.stderr).toContain('line 2: the entry was changed');
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
