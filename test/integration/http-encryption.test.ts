/**
 * Encryption at rest end to end: a chat through the HTTP API with a master key set by env, its messages
 * sealed on disk and read back through the API; then, with the server stopped, `parley encryption
 * seal-plaintext` over a file from before encryption, `parley encryption rotate`
 * to a second master key (the first one removed from config, the chat still readable through a new server)
 * and `parley encryption shred` of one user (her chat answers 410 with a clear code; another user's not).
 */

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPlatform, type Platform } from '../../src/platform/create-platform.ts';
import { createServer } from '../../src/server/create-server.ts';
import { type HttpHarness, startHttpHarness } from './http-harness.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const K1 = randomBytes(32).toString('base64');
const K2 = randomBytes(32).toString('base64');
const SECRET = 'the vault code is 7731-ALPHA';

let harness: HttpHarness;
let llmEnv: string;

beforeAll(async () => {
  harness = await startHttpHarness({ env: { CHAT_SECURITY__ENCRYPTION__KEYS__K1: K1 } });
  llmEnv = JSON.stringify({
    default_model: 'fake:test-model',
    max_retries: 0,
    providers: {
      fake: { type: 'openai-compatible', base_url: harness.model.baseUrl, models: ['test-model'] },
    },
  });
});

afterAll(async () => {
  await harness?.model.close();
  if (harness !== undefined) await rm(harness.dataDir, { recursive: true, force: true });
});

/** `parley <args>` on the harness's data folder with `env`; its exit code and output. */
function parley(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      env: {
        ...process.env,
        NODE_ENV: 'test',
        CHAT_DATA_DIR: harness.dataDir,
        CHAT_LOGGING__LEVEL: 'warn',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      out += text;
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      out += text;
    });
    child.on('exit', (code) => resolve({ code, out }));
  });
}

/** A server on the harness's data folder with `env` (another process's view: nothing cached). */
async function startServer(
  env: Record<string, string>,
): Promise<{ platform: Platform; app: FastifyInstance }> {
  const platform = await createPlatform({
    env: {
      NODE_ENV: 'test',
      CHAT_DATA_DIR: harness.dataDir,
      CHAT_LOGGING__LEVEL: 'silent',
      CHAT_LLM: llmEnv,
      ...env,
    },
  });
  const app = await createServer(platform);
  return { platform, app };
}

async function get(app: FastifyInstance, path: string, key: string) {
  const response = await app.inject({
    method: 'GET',
    url: path,
    headers: { authorization: `Bearer ${key}` },
  });
  return { status: response.statusCode, body: response.json(), text: response.body };
}

let aliceSession: string;
let bobSession: string;

describe('encryption at rest over HTTP', () => {
  it("seals a chat's messages on disk and reads them back through the API", async () => {
    const { call, alice, bob, model } = harness;
    model.respond({ kind: 'stream', chunks: ['Stored', ' safely'] });
    aliceSession = (await call('POST', '/v1/sessions', { key: alice.key, body: { title: 'vault' } })).body.id;
    const reply = await call('POST', `/v1/sessions/${aliceSession}/messages`, {
      key: alice.key,
      body: { content: SECRET },
    });
    expect(reply.status).toBe(200);
    model.respond({ kind: 'stream', chunks: ['hello bob'] });
    bobSession = (await call('POST', '/v1/sessions', { key: bob.key, body: {} })).body.id;
    expect(
      (await call('POST', `/v1/sessions/${bobSession}/messages`, { key: bob.key, body: { content: 'hi' } }))
        .status,
    ).toBe(200);

    const folder = join(harness.dataDir, 'sessions', alice.id, aliceSession);
    for (const name of ['messages.jsonl', 'metadata.json']) {
      const onDisk = await readFile(join(folder, name), 'utf8');
      expect(onDisk).not.toContain('7731');
      expect(onDisk).not.toContain('Stored');
      expect(onDisk).not.toContain('vault');
      expect(onDisk.startsWith('@')).toBe(true);
    }
    const list = await call('GET', `/v1/sessions/${aliceSession}/messages`, { key: alice.key });
    expect(list.body.messages.map((m: { content: string }) => m.content)).toEqual([SECRET, 'Stored safely']);

    await harness.app.close();
    await harness.platform.close();
  });

  it('parley encryption rotate re-wraps the data keys; the old master key can then be removed', async () => {
    const both = {
      CHAT_SECURITY__ENCRYPTION__KEYS__K1: K1,
      CHAT_SECURITY__ENCRYPTION__KEYS__K2: K2,
      CHAT_SECURITY__ENCRYPTION__ACTIVE_KEY_ID: 'k2',
    };
    // A document stored before encryption was on: refused as plaintext until sealed.
    const legacyDocument = join(harness.dataDir, 'rag/documents/doc_legacy/content.txt');
    await mkdir(dirname(legacyDocument), { recursive: true });
    await writeFile(legacyDocument, SECRET);
    const sealedPlaintext = await parley(['encryption', 'seal-plaintext'], both);
    expect(sealedPlaintext.out).toMatch(/^sealed 1 values stored in plaintext/);
    expect(await readFile(legacyDocument, 'utf8')).not.toContain('7731');

    const rotated = await parley(['encryption', 'rotate'], both);
    // The users' data keys were wrapped by k1; the platform's (made by seal-plaintext) by k2 already.
    expect(rotated.out).toMatch(/re-wrapped [1-9]\d* data keys under master key k2 \(1 were already\)/);
    expect(rotated.out).toContain('no data key is wrapped by k1 now');
    expect(rotated.code).toBe(0);

    const status = await parley(['encryption', 'status'], { CHAT_SECURITY__ENCRYPTION__KEYS__K2: K2 });
    expect(status.out).toMatch(/k2: [1-9]/);
    expect(status.out).not.toContain('k1');

    const { platform, app } = await startServer({ CHAT_SECURITY__ENCRYPTION__KEYS__K2: K2 });
    try {
      const list = await get(app, `/v1/sessions/${aliceSession}/messages`, harness.alice.key);
      expect(list.status).toBe(200);
      expect(list.body.messages.map((m: { content: string }) => m.content)).toEqual([
        SECRET,
        'Stored safely',
      ]);
    } finally {
      await app.close();
      await platform.close();
    }
  });

  it("parley encryption shred makes one user's chat unreadable (410, no trace), not another's", async () => {
    const onlyK2 = { CHAT_SECURITY__ENCRYPTION__KEYS__K2: K2 };
    const refused = await parley(['encryption', 'shred', '--user', 'alice'], onlyK2);
    expect(refused.code).toBe(2); // not without --yes
    const shredded = await parley(['encryption', 'shred', '--user', 'alice', '--yes'], onlyK2);
    expect(shredded.out).toMatch(/destroyed [1-9]\d* data keys of alice/);
    expect(shredded.code).toBe(0);

    const { platform, app } = await startServer(onlyK2);
    try {
      const alices = await get(app, `/v1/sessions/${aliceSession}/messages`, harness.alice.key);
      expect(alices.status).toBe(410);
      expect(alices.body.error.code).toBe('CHAT_ERR_ENCRYPTION_DATA_SHREDDED');
      expect(alices.text).not.toContain('    at ');
      const bobs = await get(app, `/v1/sessions/${bobSession}/messages`, harness.bob.key);
      expect(bobs.status).toBe(200);
      expect(bobs.body.messages.map((m: { content: string }) => m.content)).toEqual(['hi', 'hello bob']);
      // The shred is in the audit log.
      const audit = await get(app, '/v1/audit', harness.admin.key);
      expect(JSON.stringify(audit.body)).toContain('encryption.user_shredded');
    } finally {
      await app.close();
      await platform.close();
    }
  });
});
