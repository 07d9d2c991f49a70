/**
 * The memory module over real HTTP, with a real model provider: what a user said in one chat reaches the
 * model in another chat of theirs (and never another user's), the user lists and forgets it, deleting the
 * chat forgets it, and with the module off the routes say how to turn it on.
 */

import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPlatform } from '../../src/platform/create-platform.ts';
import { createAuth } from '../../src/security/auth.ts';
import { createServer } from '../../src/server/create-server.ts';
import { waitFor } from '../helpers/cluster.ts';
import { type HttpHarness, startHttpHarness } from './http-harness.ts';

let harness: HttpHarness;

beforeAll(async () => {
  harness = await startHttpHarness({ env: { CHAT_MEMORY__ENABLED: 'true' } });
});

afterAll(async () => {
  await harness?.close();
});

/** Sends `content` in `sessionId` as `key`; resolves with the system prompt the model was sent. */
async function turn(key: string, sessionId: string, content: string): Promise<string> {
  harness.model.respond({ kind: 'stream', chunks: ['ok'] });
  const before = harness.llmCalls.length;
  const sent = await harness.call('POST', `/v1/sessions/${sessionId}/messages`, { key, body: { content } });
  expect(sent.status).toBe(200);
  return harness.llmCalls.slice(before).at(-1)?.system ?? '';
}

async function newSession(key: string): Promise<string> {
  return (await harness.call('POST', '/v1/sessions', { key, body: {} })).body.id;
}

async function memoriesOf(key: string): Promise<{ id: string; sessionId: string; text: string }[]> {
  const listed = await harness.call('GET', '/v1/memories', { key });
  expect(listed.status).toBe(200);
  return listed.body.memories;
}

describe('memory across conversations', () => {
  it('gives a new chat what the user said in an earlier one, and never to another user', async () => {
    const { alice, bob } = harness;
    const first = await newSession(alice.key);
    await turn(alice.key, first, 'My dog is called Biscuit and he is afraid of thunderstorms.');
    await waitFor(async () => (await memoriesOf(alice.key)).length === 1, 'the memory to be kept');

    const later = await newSession(alice.key);
    const system = await turn(alice.key, later, 'Any tips for calming my dog during a storm?');
    expect(system).toContain('From your earlier conversations with this user');
    expect(system).toContain('My dog is called Biscuit and he is afraid of thunderstorms.');

    const ofBob = await newSession(bob.key);
    const bobs = await turn(bob.key, ofBob, 'Any tips for calming my dog during a storm?');
    expect(bobs).not.toContain('Biscuit');
    // Remembering is not awaited by the turn (memory README): wait for it, as for alice's above.
    await waitFor(async () => (await memoriesOf(bob.key)).length === 1, "bob's memory to be kept");
    expect(await memoriesOf(bob.key)).toEqual([
      expect.objectContaining({ text: 'Any tips for calming my dog during a storm?' }),
    ]);
  });

  it('lists and forgets one memory or all; another user’s memory id is a 404', async () => {
    const { alice, bob, call } = harness;
    const session = await newSession(alice.key);
    await turn(alice.key, session, 'I am learning to play the cello since September.');
    await waitFor(
      async () => (await memoriesOf(alice.key)).some((m) => m.text.includes('cello')),
      'the memory',
    );
    const cello = (await memoriesOf(alice.key)).find((m) => m.text.includes('cello')) as { id: string };

    expect((await call('DELETE', `/v1/memories/${cello.id}`, { key: bob.key })).status).toBe(404);
    const forgotten = await call('DELETE', `/v1/memories/${cello.id}`, { key: alice.key });
    expect(forgotten).toMatchObject({ status: 200, body: { forgotten: 1 } });
    expect((await memoriesOf(alice.key)).some((m) => m.id === cello.id)).toBe(false);
    const system = await turn(alice.key, await newSession(alice.key), 'Which instrument am I learning?');
    expect(system).not.toContain('cello');

    const all = await call('DELETE', '/v1/memories', { key: alice.key });
    expect(all.status).toBe(200);
    expect(all.body.forgotten).toBeGreaterThan(0);
    expect(await memoriesOf(alice.key)).toEqual([]);
    expect((await call('GET', '/v1/memories?limit=0', { key: alice.key })).status).toBe(400);
    expect((await call('GET', '/v1/memories')).status).toBe(401);
  });

  it('forgets what was said in a chat once the chat is deleted', async () => {
    const { alice, call } = harness;
    const session = await newSession(alice.key);
    await turn(alice.key, session, 'My locker combination at the gym is 4-8-15.');
    await waitFor(
      async () => (await memoriesOf(alice.key)).some((m) => m.sessionId === session),
      'the memory',
    );
    expect((await call('DELETE', `/v1/sessions/${session}`, { key: alice.key })).status).toBe(204);
    await waitFor(
      async () => !(await memoriesOf(alice.key)).some((m) => m.sessionId === session),
      'forgotten',
    );
    // Nothing of what was said stays on disk: not the chat, not the memory of it.
    const files = (await readdir(harness.dataDir, { recursive: true, withFileTypes: true })).filter((entry) =>
      entry.isFile(),
    );
    for (const file of files) {
      expect(await readFile(join(file.parentPath, file.name), 'utf8'), file.name).not.toContain('4-8-15');
    }
  });
});

describe('memory off (the default)', () => {
  it('answers /v1/memories with a 404 that says how to turn it on', async () => {
    // A platform of its own: the harness's recorder listens to every event, and a listener answers a
    // request nothing else handles (docs/bus.md).
    const dataDir = await mkdtemp(join(tmpdir(), 'parley-memory-off-'));
    const platform = await createPlatform({
      env: { NODE_ENV: 'test', CHAT_DATA_DIR: dataDir, CHAT_LOGGING__LEVEL: 'silent' },
    });
    const auth = createAuth(platform.storage);
    const app = await createServer(platform, { auth });
    try {
      expect(platform.modules.list().some((module) => module.name === 'memory')).toBe(false);
      const user = await auth.users.create({ name: 'dana', role: 'user' });
      const { key } = await auth.keys.create(user.id);
      const listed = await app.inject({
        method: 'GET',
        url: '/v1/memories',
        headers: { authorization: `Bearer ${key}` },
      });
      expect(listed.statusCode).toBe(404);
      expect(listed.json().error.message).toContain('memory.enabled');
    } finally {
      await app.close();
      await platform.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
