/**
 * Erasing a user over HTTP (`DELETE /v1/users/:id`): with every module that keeps user data at work —
 * chats, memory, documents, an agent conversation, presence, notifications — the admin's request removes
 * all of the user's, answers how much each module removed, ends the user's keys, and leaves nothing the
 * user wrote anywhere in the data folder but the audit log; another user's data is untouched.
 */

import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/cluster.ts';
import { type HttpHarness, startHttpHarness, type TestUser } from './http-harness.ts';

let harness: HttpHarness;

beforeAll(async () => {
  harness = await startHttpHarness({ env: { CHAT_MEMORY__ENABLED: 'true' } });
});

afterAll(async () => {
  await harness?.close();
});

/** A chat turn of `user` saying `content`; resolves with the session id. */
async function chat(user: TestUser, content: string): Promise<string> {
  harness.model.respond({ kind: 'stream', chunks: ['Noted', '.'] });
  const session = await harness.call('POST', '/v1/sessions', { key: user.key, body: {} });
  const reply = await harness.call('POST', `/v1/sessions/${session.body.id}/messages`, {
    key: user.key,
    body: { content },
  });
  expect(reply.status).toBe(200);
  return session.body.id;
}

async function uploadDocument(user: TestUser, text: string): Promise<void> {
  const form = new FormData();
  form.append('file', new Blob([text], { type: 'text/plain' }), 'notes.txt');
  const response = await fetch(`${harness.baseUrl}/v1/documents`, {
    method: 'POST',
    headers: { authorization: `Bearer ${user.key}` },
    body: form,
  });
  expect(response.status).toBe(200);
}

/** Files of the data folder (relative paths) whose bytes contain `text`. */
async function filesContaining(text: string): Promise<string[]> {
  const entries = await readdir(harness.dataDir, { recursive: true, withFileTypes: true });
  const found: string[] = [];
  for (const entry of entries.filter((item) => item.isFile())) {
    const path = join(entry.parentPath, entry.name);
    if ((await readFile(path, 'utf8')).includes(text)) found.push(relative(harness.dataDir, path));
  }
  return found;
}

describe('erasing a user', () => {
  it('removes everything the user kept, in every module, and only theirs', async () => {
    const { call, admin, alice, bob, platform } = harness;
    // What bob leaves behind, each with a word found nowhere else.
    await chat(bob, 'My locker code at the quokka gym is 7731, please remember it.');
    await chat(bob, 'Another chat about my quokka-shaped teapot collection.');
    await uploadDocument(bob, 'Quokka field notes: the quokkas of Rottnest Island were counted in March.');
    harness.model.respond({ kind: 'stream', chunks: ['Agreed', '.'] });
    const agents = await call('POST', '/v1/agent-conversations', {
      key: bob.key,
      body: { topic: 'Are quokkas the happiest animals?', participants: ['optimist', 'skeptic'], rounds: 1 },
    });
    expect(agents.status).toBe(201);
    await platform.bus.emit('user.status_changed', { userId: bob.id, status: 'online' });
    const notifications = await platform.modules.getModule<{
      watch(watcherId: string, userId: string): Promise<void>;
    }>('notifications');
    await notifications?.watch(bob.id, alice.id);
    await platform.bus.emit('user.status_changed', { userId: alice.id, status: 'away' });
    // And alice's own chat, which must survive.
    const aliceSession = await chat(alice, 'My favourite wombat is called Bruno.');
    await waitFor(
      async () => (await call('GET', '/v1/memories', { key: bob.key })).body.memories?.length === 2,
      'bob’s memories',
    );
    expect(await filesContaining('quokka')).not.toEqual([]);
    expect(await filesContaining('is 7731')).not.toEqual([]);

    // Nobody but an admin, and no admin on themselves.
    expect((await call('DELETE', `/v1/users/${bob.id}`, { key: alice.key })).status).toBe(403);
    const self = await call('DELETE', `/v1/users/${admin.id}`, { key: admin.key });
    expect(self.status).toBe(400);
    expect(self.body.error.message).toContain('cannot erase their own user');

    const erased = await call('DELETE', `/v1/users/${bob.id}`, { key: admin.key });
    expect(erased.status).toBe(200);
    expect(erased.body.user).toMatchObject({ id: bob.id, name: 'bob' });
    expect(erased.body.erased).toEqual({
      text_chat: 2,
      memory: 2,
      rag: 1,
      multi_agent: 1,
      presence: 1,
      notifications: 1,
    });

    // Gone: the user, their key, and every word they wrote (the audit log keeps who did what, not that).
    expect((await call('GET', '/v1/sessions', { key: bob.key })).status).toBe(401);
    expect((await call('GET', `/v1/users/${bob.id}`, { key: admin.key })).status).toBe(404);
    expect((await call('DELETE', `/v1/users/${bob.id}`, { key: admin.key })).status).toBe(404);
    expect(await filesContaining('quokka')).toEqual([]);
    // The code as written, and as an index token: not the bare digits, which a key's hash or another user's
    // id may hold by chance.
    expect(await filesContaining('is 7731')).toEqual([]);
    expect(await filesContaining('"7731"')).toEqual([]);
    // No file or folder named by bob's id either: the flatfile backend removes the folders it emptied.
    const paths = (await readdir(harness.dataDir, { recursive: true, withFileTypes: true })).map((entry) =>
      relative(harness.dataDir, join(entry.parentPath, entry.name)),
    );
    expect(paths.filter((path) => path.includes(bob.id))).toEqual([]);
    expect(harness.events('user.deleted').map((event) => event.data)).toEqual([{ userId: bob.id }]);

    // Alice keeps hers.
    const aliceMessages = await call('GET', `/v1/sessions/${aliceSession}/messages`, { key: alice.key });
    expect(aliceMessages.body.messages.map((message: { content: string }) => message.content)).toContain(
      'My favourite wombat is called Bruno.',
    );
    expect((await call('GET', '/v1/memories', { key: alice.key })).body.memories).toHaveLength(1);
    // The erasure is audited; so is bob's refused key above (auth.failed, written in the background).
    const audit = await call('GET', '/v1/audit?limit=5', { key: admin.key });
    const actions = audit.body.entries.filter((entry: { action: string }) => entry.action !== 'auth.failed');
    expect(actions[0]).toMatchObject({ action: 'user.deleted', target: { userId: bob.id } });
  });

  it('answers 404 for a user that does not exist, and 401 without a key', async () => {
    const { call, admin } = harness;
    expect(
      (await call('DELETE', '/v1/users/0192aaaa-0000-7000-8000-000000000000', { key: admin.key })).status,
    ).toBe(404);
    expect((await call('DELETE', '/v1/users/not-an-id', { key: admin.key })).status).toBe(404);
    expect((await call('DELETE', `/v1/users/${harness.alice.id}`)).status).toBe(401);
  });
});
