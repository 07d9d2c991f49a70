/**
 * The per-user storage quota over real HTTP (flatfile storage, the real modules): with
 * resource_limits.max_storage_per_user at 4KB, a user who fills it is refused a chat message (plain and
 * streamed) and a document upload with 413 CHAT_ERR_STORAGE_QUOTA_EXCEEDED in the one
 * error shape — nothing of the refused turn is stored — while another user goes on; an admin reads the
 * usage in GET /v1/users/:id; it is counted again rightly after a restart; an erased user's usage is gone;
 * "0B" turns the quota off.
 */

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPlatform } from '../../src/platform/create-platform.ts';
import { chargeStorageTo } from '../../src/storage/quota.ts';
import { type HttpHarness, startHttpHarness, type TestUser } from './http-harness.ts';

const LIMIT = 4096;

let harness: HttpHarness;

beforeAll(async () => {
  harness = await startHttpHarness({ env: { CHAT_RESOURCE_LIMITS__MAX_STORAGE_PER_USER: '4KB' } });
});

afterAll(async () => {
  await harness?.close();
});

async function upload(user: TestUser, name: string, text: string) {
  const form = new FormData();
  form.append('file', new Blob([text], { type: 'text/plain' }), name);
  const response = await fetch(`${harness.baseUrl}/v1/documents`, {
    method: 'POST',
    headers: { authorization: `Bearer ${user.key}` },
    body: form,
  });
  return { status: response.status, body: JSON.parse(await response.text()) };
}

function expectQuotaRefusal(result: { status: number; body: unknown }) {
  expect(result.status).toBe(413);
  expect(Object.keys(result.body as object)).toEqual(['error']);
  const { error } = result.body as { error: { code: string; message: string } };
  expect(Object.keys(error).sort()).toEqual(['code', 'message']);
  expect(error.code).toBe('CHAT_ERR_STORAGE_QUOTA_EXCEEDED');
  expect(error.message).toContain(`limit of ${LIMIT} bytes`);
  expect(error.message).toContain('resource_limits.max_storage_per_user');
}

async function usage(user: TestUser) {
  const answer = await harness.call('GET', `/v1/users/${user.id}`, { key: harness.admin.key });
  expect(answer.status).toBe(200);
  return answer.body.storage as { usedBytes: number; limitBytes: number };
}

describe('the per-user storage quota over HTTP', () => {
  it('refuses a user over it a message and a document (413), and leaves another user alone', async () => {
    const { call, alice, bob, model } = harness;
    const session = await call('POST', '/v1/sessions', { key: alice.key, body: {} });
    expect(session.status).toBe(201);
    const path = `/v1/sessions/${session.body.id}/messages`;
    const stored: string[] = [];
    let refused: Awaited<ReturnType<typeof call>> | undefined;
    for (let turn = 0; turn < 10 && refused === undefined; turn++) {
      model.respond({ kind: 'stream', chunks: ['ok'] });
      const content = `message ${turn} ${'words '.repeat(100)}`;
      const answer = await call('POST', path, { key: alice.key, body: { content } });
      if (answer.status === 200) stored.push(content);
      else refused = answer;
    }
    expect(stored.length).toBeGreaterThan(1);
    expect(refused).toBeDefined();
    expectQuotaRefusal(refused!);

    // Nothing of the refused turn was stored: the log holds the turns that were answered, whole.
    const messages = await call('GET', path, { key: alice.key });
    const userMessages = (messages.body.messages as Array<{ role: string; content: string }>).filter(
      (message) => message.role === 'user',
    );
    expect(userMessages.map((message) => message.content)).toEqual(stored);

    const { usedBytes, limitBytes } = await usage(alice);
    expect(limitBytes).toBe(LIMIT);
    expect(usedBytes).toBeGreaterThan(LIMIT - 1000);
    expect(usedBytes).toBeLessThanOrEqual(LIMIT);

    // Refused once, alice's next messages are stored before the model is asked: refused again, they cost
    // no model call.
    const calls = harness.llmCalls.length;
    model.respond({ kind: 'stream', chunks: ['ok'] });
    const again = await call('POST', path, {
      key: alice.key,
      body: { content: `again ${'words '.repeat(100)}` },
    });
    expectQuotaRefusal(again);
    expect(harness.llmCalls.length).toBe(calls);

    // A streamed request is refused before any stream begins, as JSON.
    const streamed = await fetch(`${harness.baseUrl}${path}?stream=sse`, {
      method: 'POST',
      headers: { authorization: `Bearer ${alice.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ content: `streamed ${'words '.repeat(100)}` }),
    });
    const streamedText = await streamed.text();
    expect(streamed.headers.get('content-type')).toContain('application/json');
    expectQuotaRefusal({ status: streamed.status, body: JSON.parse(streamedText) });
    expect(harness.llmCalls.length).toBe(calls);

    expectQuotaRefusal(await upload(alice, 'notes.txt', `Notes on wings. ${'lift '.repeat(300)}`));
    const documents = await call('GET', '/v1/documents', { key: alice.key });
    expect(documents.body.documents).toEqual([]);
    expect((await usage(alice)).usedBytes).toBe(usedBytes);

    // Bob is not alice.
    const ofBob = await call('POST', '/v1/sessions', { key: bob.key, body: {} });
    model.respond({ kind: 'stream', chunks: ['fine'] });
    const bobs = await call('POST', `/v1/sessions/${ofBob.body.id}/messages`, {
      key: bob.key,
      body: { content: `bob says ${'words '.repeat(100)}` },
    });
    expect(bobs.status).toBe(200);
    const bobsUpload = await upload(bob, 'notes.txt', `Bob's notes. ${'lift '.repeat(100)}`);
    expect(bobsUpload.status).toBe(200);
    expect(bobsUpload.body.documents[0].status).toBe('added');
    const bobsUsage = await usage(bob);
    // The document's text (~500 bytes) is counted to bob.
    expect(bobsUsage.usedBytes).toBeGreaterThan(1000);

    // Deleting a chat makes room again: her next message is stored, and then answered.
    expect((await call('DELETE', `/v1/sessions/${session.body.id}`, { key: alice.key })).status).toBe(204);
    expect((await usage(alice)).usedBytes).toBeLessThan(100);
    const fresh = await call('POST', '/v1/sessions', { key: alice.key, body: {} });
    const before = harness.llmCalls.length;
    model.respond({ kind: 'stream', chunks: ['room again'] });
    const answered = await call('POST', `/v1/sessions/${fresh.body.id}/messages`, {
      key: alice.key,
      body: { content: 'short' },
    });
    expect(answered.status).toBe(200);
    expect(answered.body.content).toBe('room again');
    expect(harness.llmCalls.length).toBe(before + 1);
    const room = await upload(alice, 'notes.txt', `Notes on wings. ${'lift '.repeat(300)}`);
    expect(room.status).toBe(200);
  });

  it('counts the same bytes again after a restart (a second platform on the same data folder)', async () => {
    const { alice, bob, platform } = harness;
    const before = await Promise.all([alice, bob].map(usage));
    const second = await createPlatform({
      env: {
        NODE_ENV: 'test',
        CHAT_DATA_DIR: harness.dataDir,
        CHAT_LOGGING__LEVEL: 'silent',
        CHAT_RESOURCE_LIMITS__MAX_STORAGE_PER_USER: '4KB',
        CHAT_STORAGE__CACHE__ENABLED: 'false',
      },
    });
    try {
      for (const [index, user] of [alice, bob].entries()) {
        expect(await second.storageQuota?.usage(user.id)).toEqual(before[index]);
      }
    } finally {
      await second.close();
    }
    expect(platform.storageQuota).toBeDefined();
  });

  it("charges agent conversations to their owner; one the quota stops ends 'failed', the next is refused before any model call", async () => {
    const { call, auth, model } = harness;
    const created = await auth.users.create({ name: 'dora', role: 'user' });
    const dora: TestUser = { id: created.id, key: (await auth.keys.create(created.id)).key } as TestUser;
    // Each utterance is about a kilobyte: two fit in dora's 4 KB with the records, four do not.
    model.respond({ kind: 'stream', chunks: ['word '.repeat(200)] });
    const start = () =>
      call('POST', '/v1/agent-conversations', {
        key: dora.key,
        body: { topic: 'Cars on the main street?', participants: ['optimist', 'optimist'], rounds: 1 },
      });
    const first = await start();
    expect(first.status).toBe(201);
    expect(first.body.conversation.status).toBe('done');
    const { usedBytes: afterFirst } = await usage(dora);
    expect(afterFirst).toBeGreaterThan(2000);

    // The second stops when its transcript no longer fits: stored as failed, with the error if it fits.
    const second = await start();
    expect(second.status).toBe(201);
    expect(second.body.conversation).toMatchObject({
      status: 'failed',
      error: { code: 'CHAT_ERR_STORAGE_QUOTA_EXCEEDED' },
    });
    const stored = await call('GET', `/v1/agent-conversations/${second.body.conversation.id}`, {
      key: dora.key,
    });
    expect(stored.body.conversation.status).toBe('failed');
    expect((await usage(dora)).usedBytes).toBeLessThanOrEqual(LIMIT);

    // No room for another record: refused before any agent speaks.
    const calls = harness.llmCalls.length;
    expectQuotaRefusal(await start());
    expect(harness.llmCalls.length).toBe(calls);
  });

  it("leaves an erased user's usage at zero", async () => {
    const { call, admin, bob, platform } = harness;
    expect((await usage(bob)).usedBytes).toBeGreaterThan(0);
    const erased = await call('DELETE', `/v1/users/${bob.id}`, { key: admin.key });
    expect(erased.status).toBe(200);
    expect(await platform.storageQuota?.usage(bob.id)).toEqual({ usedBytes: 0, limitBytes: LIMIT });
  });
});

describe('max_storage_per_user "0B"', () => {
  it('turns the quota off: no count, nothing refused', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'parley-quota-off-'));
    const platform = await createPlatform({
      env: {
        NODE_ENV: 'test',
        CHAT_DATA_DIR: dataDir,
        CHAT_LOGGING__LEVEL: 'silent',
        CHAT_RESOURCE_LIMITS__MAX_STORAGE_PER_USER: '0B',
      },
    });
    try {
      expect(platform.storageQuota).toBeUndefined();
      await platform.storage.append(
        'sessions/u1/s1/messages.jsonl',
        new TextEncoder().encode(`${'x'.repeat(10_000)}\n`),
      );
      expect((await platform.storage.read('sessions/u1/s1/messages.jsonl'))?.length).toBe(10_001);
    } finally {
      await platform.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('the quota with encryption at rest', () => {
  it('counts the sealed bytes the backend holds, and not the data keys made for them', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'parley-quota-sealed-'));
    const platform = await createPlatform({
      env: {
        NODE_ENV: 'test',
        CHAT_DATA_DIR: dataDir,
        CHAT_LOGGING__LEVEL: 'silent',
        CHAT_RESOURCE_LIMITS__MAX_STORAGE_PER_USER: '4KB',
        CHAT_SECURITY__ENCRYPTION__KEYS__K1: randomBytes(32).toString('base64'),
      },
    });
    try {
      const text = new TextEncoder().encode(`${JSON.stringify({ content: 'y'.repeat(1000) })}\n`);
      await platform.storage.append('sessions/u1/s1/messages.jsonl', text);
      // A data key is made for u1 inside the charged work: it is the platform's, not u1's.
      await chargeStorageTo('u1', () => platform.storage.write('rag/documents/doc_1/content.txt', text));
      const onDisk =
        (await stat(join(dataDir, 'sessions/u1/s1/messages.jsonl'))).size +
        (await stat(join(dataDir, 'rag/documents/doc_1/content.txt'))).size;
      const usage = await platform.storageQuota?.usage('u1');
      expect(usage?.usedBytes).toBe(onDisk);
      expect(onDisk).toBeGreaterThan(2 * text.length);
      await expect(platform.storage.append('sessions/u1/s1/messages.jsonl', text)).rejects.toMatchObject({
        code: 'CHAT_ERR_STORAGE_QUOTA_EXCEEDED',
      });
    } finally {
      await platform.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('the per-user storage quota with rag run in a worker', () => {
  let isolated: HttpHarness;

  beforeAll(async () => {
    isolated = await startHttpHarness({
      env: { CHAT_RESOURCE_LIMITS__MAX_STORAGE_PER_USER: '1MB', CHAT_RAG__ISOLATION: 'worker' },
    });
  });

  afterAll(async () => {
    await isolated?.close();
  });

  it("charges a document's files to its owner: the worker's chargeStorageTo reaches the main thread", async () => {
    const { alice, call, admin, baseUrl } = isolated;
    const used = async () =>
      (await call('GET', `/v1/users/${alice.id}`, { key: admin.key })).body.storage.usedBytes as number;
    const before = await used();
    const text = `A worker-made document. ${'Its words are counted. '.repeat(100)}`;
    const form = new FormData();
    form.append('file', new Blob([text], { type: 'text/plain' }), 'counted.txt');
    const uploaded = await fetch(`${baseUrl}/v1/documents`, {
      method: 'POST',
      headers: { authorization: `Bearer ${alice.key}` },
      body: form,
    });
    expect(uploaded.status, await uploaded.clone().text()).toBe(200);
    // Its text (documents/{doc_id}/content.txt, a key that names no user) and its record are hers.
    expect((await used()) - before).toBeGreaterThan(text.length);
  });
});
