/**
 * The REST API over real HTTP on loopback with flatfile storage and the real text_chat module: sessions,
 * messages and turns; validation of every body (malformed JSON, wrong types, unknown fields → 400,
 * never 500); the body limit (413) and text_chat's message limit (400 naming it); the per-user rate
 * limit (429 with Retry-After); model provider failures; and the OpenAPI document.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpHarness, startHttpHarness, TEST_MODEL } from './http-harness.ts';

let harness: HttpHarness;

beforeAll(async () => {
  harness = await startHttpHarness({
    env: {
      CHAT_SERVER__BODY_LIMIT_BYTES: '20000',
      CHAT_TEXT_CHAT__MAX_MESSAGE_LENGTH: '1000',
    },
  });
});

afterAll(async () => {
  await harness?.close();
});

describe('sessions', () => {
  it('are created, listed newest first, read, renamed and deleted', async () => {
    const { call, alice } = harness;
    const first = await call('POST', '/v1/sessions', { key: alice.key, body: { title: 'first' } });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ userId: alice.id, metadata: { title: 'first' } });
    const second = await call('POST', '/v1/sessions', { key: alice.key, body: {} });
    expect(second.status).toBe(201);

    const list = await call('GET', '/v1/sessions', { key: alice.key });
    expect(list.status).toBe(200);
    expect(list.body.sessions.map((session: { id: string }) => session.id)).toEqual([
      second.body.id,
      first.body.id,
    ]);

    const read = await call('GET', `/v1/sessions/${first.body.id}`, { key: alice.key });
    expect(read.status).toBe(200);
    expect(read.body.id).toBe(first.body.id);

    const renamed = await call('PATCH', `/v1/sessions/${first.body.id}`, {
      key: alice.key,
      body: { title: 'renamed' },
    });
    expect(renamed.status).toBe(200);
    expect(renamed.body.metadata.title).toBe('renamed');

    const deleted = await call('DELETE', `/v1/sessions/${first.body.id}`, { key: alice.key });
    expect(deleted.status).toBe(204);
    const gone = await call('GET', `/v1/sessions/${first.body.id}`, { key: alice.key });
    expect(gone.status).toBe(404);
    expect(gone.body.error.code).toBe('CHAT_ERR_NOT_FOUND');
  });

  it('can be started without any body', async () => {
    const response = await fetch(`${harness.baseUrl}/v1/sessions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${harness.alice.key}` },
    });
    expect(response.status).toBe(201);
  });

  it("are each user's own: bob's list does not show alice's sessions", async () => {
    const { call, alice, bob } = harness;
    const session = await call('POST', '/v1/sessions', { key: alice.key, body: { title: 'private' } });
    const bobs = await call('GET', '/v1/sessions', { key: bob.key });
    expect(bobs.status).toBe(200);
    expect(bobs.body.sessions.some((s: { id: string }) => s.id === session.body.id)).toBe(false);
  });
});

describe('messages', () => {
  it('post a message, get the stored reply with usage, and list both', async () => {
    const { call, alice, model } = harness;
    model.respond({ kind: 'stream', chunks: ['Hello', ' there'] });
    const session = await call('POST', '/v1/sessions', { key: alice.key, body: {} });
    const reply = await call('POST', `/v1/sessions/${session.body.id}/messages`, {
      key: alice.key,
      body: { content: 'Hi!' },
    });
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({
      role: 'assistant',
      content: 'Hello there',
      metadata: { sessionId: session.body.id, model: TEST_MODEL, usage: { inputTokens: 7, outputTokens: 2 } },
    });
    // The provider got the user's message.
    expect(JSON.stringify(model.requests[0]?.body.messages)).toContain('Hi!');

    const list = await call('GET', `/v1/sessions/${session.body.id}/messages`, { key: alice.key });
    expect(list.status).toBe(200);
    expect(list.body.messages.map((m: { role: string; content: string }) => [m.role, m.content])).toEqual([
      ['user', 'Hi!'],
      ['assistant', 'Hello there'],
    ]);
  });

  it('are paged with limit and before', async () => {
    const { call, alice, model } = harness;
    model.respond({ kind: 'stream', chunks: ['ok'] });
    const session = await call('POST', '/v1/sessions', { key: alice.key, body: {} });
    for (const content of ['one', 'two', 'three']) {
      const sent = await call('POST', `/v1/sessions/${session.body.id}/messages`, {
        key: alice.key,
        body: { content },
      });
      expect(sent.status).toBe(200);
    }
    const path = `/v1/sessions/${session.body.id}/messages`;
    const newest = await call('GET', `${path}?limit=4`, { key: alice.key });
    expect(newest.status).toBe(200);
    expect(newest.body.messages.map((m: { content: string }) => m.content)).toEqual([
      'two',
      'ok',
      'three',
      'ok',
    ]);
    expect(typeof newest.body.nextCursor).toBe('string');
    const older = await call('GET', `${path}?limit=4&before=${newest.body.nextCursor}`, { key: alice.key });
    expect(older.body.messages.map((m: { content: string }) => m.content)).toEqual(['one', 'ok']);
    expect(older.body.nextCursor).toBeUndefined();
  });

  it('report a provider failure with its status, and keep the user message', async () => {
    const { call, alice, model } = harness;
    const session = await call('POST', '/v1/sessions', { key: alice.key, body: {} });
    const path = `/v1/sessions/${session.body.id}/messages`;

    model.respond({ kind: 'error', status: 500, message: 'upstream exploded' });
    const failed = await call('POST', path, { key: alice.key, body: { content: 'hello?' } });
    expect(failed.status).toBe(502);
    expect(failed.body.error.code).toBe('CHAT_ERR_LLM_PROVIDER_FAILED');

    model.respond({ kind: 'error', status: 401, message: 'bad key' });
    const unauthorised = await call('POST', path, { key: alice.key, body: { content: 'again?' } });
    expect(unauthorised.status).toBe(502);
    expect(unauthorised.body.error.code).toBe('CHAT_ERR_LLM_AUTH');

    const list = await call('GET', path, { key: alice.key });
    expect(list.body.messages.filter((m: { role: string }) => m.role === 'user')).toHaveLength(2);
  });

  it('reject an unknown model with 400', async () => {
    const { call, alice } = harness;
    const session = await call('POST', '/v1/sessions', { key: alice.key, body: {} });
    const response = await call('POST', `/v1/sessions/${session.body.id}/messages`, {
      key: alice.key,
      body: { content: 'hi', model: 'nosuch:model' },
    });
    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe('CHAT_ERR_LLM_UNKNOWN_MODEL');
  });
});

describe('bad input is a 4xx with the one error shape, never a 500', () => {
  let path: string;
  beforeAll(async () => {
    const session = await harness.call('POST', '/v1/sessions', { key: harness.alice.key, body: {} });
    path = `/v1/sessions/${session.body.id}/messages`;
  });

  const cases: Array<[string, unknown, RegExp]> = [
    ['malformed JSON', '{"content": "hi"', /not valid JSON/],
    [
      'a __proto__ key (prototype poisoning)',
      '{"content": "hi", "__proto__": {"role": "admin"}}',
      /not valid JSON/,
    ],
    ['a number for content', { content: 5 }, /content must be string/],
    ['a missing content', {}, /must have required property 'content'/],
    ['an empty content', { content: '' }, /content must NOT have fewer than 1 characters/],
    ['an unknown field', { content: 'hi', colour: 'red' }, /unknown property "colour"/],
    ['a temperature out of range', { content: 'hi', temperature: 7 }, /temperature must be <= 2/],
    ['an array body', ['hi'], /body must be object/],
    ['a JSON null body', 'null', /body must be object/],
  ];
  for (const [name, body, message] of cases) {
    it(`${name} → 400`, async () => {
      const response = await harness.call('POST', path, { key: harness.alice.key, body });
      expect(response.status).toBe(400);
      expect(response.body.error.code).toBe('CHAT_ERR_VALIDATION_INVALID');
      expect(response.body.error.message).toMatch(message);
    });
  }

  it('wrong types in the query and in PATCH → 400', async () => {
    const { call, alice } = harness;
    const badLimit = await call('GET', `${path}?limit=many`, { key: alice.key });
    expect(badLimit.status).toBe(400);
    expect(badLimit.body.error.message).toMatch(/limit must be integer/);
    const sessionPath = path.replace('/messages', '');
    const badTitle = await call('PATCH', sessionPath, { key: alice.key, body: { title: 42 } });
    expect(badTitle.status).toBe(400);
    const empty = await call('PATCH', sessionPath, { key: alice.key, body: {} });
    expect(empty.status).toBe(400);
  });

  it('an unsupported content type → 415 in the error shape', async () => {
    const response = await harness.call('POST', path, {
      key: harness.alice.key,
      body: 'content=hi',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(response.status).toBe(415);
    expect(response.body.error.code).toBe('CHAT_ERR_VALIDATION_INVALID');
  });

  it('a body over server.body_limit_bytes → 413 naming the limit', async () => {
    const response = await harness.call('POST', path, {
      key: harness.alice.key,
      body: { content: 'x'.repeat(30_000) },
    });
    expect(response.status).toBe(413);
    expect(response.body.error.code).toBe('CHAT_ERR_PAYLOAD_TOO_LARGE');
    expect(response.body.error.message).toContain('20000 bytes (server.body_limit_bytes)');
  });

  it('a message over text_chat.max_message_length → 400 naming the limit', async () => {
    const response = await harness.call('POST', path, {
      key: harness.alice.key,
      body: { content: 'x'.repeat(1001) },
    });
    expect(response.status).toBe(400);
    expect(response.body.error.message).toContain('text_chat.max_message_length');
    expect(response.body.error.message).toContain('1000');
  });

  it('an unknown route → 404 in the error shape', async () => {
    const response = await harness.call('GET', '/v1/nothing-here', { key: harness.alice.key });
    expect(response.status).toBe(404);
    expect(response.body.error.code).toBe('CHAT_ERR_NOT_FOUND');
  });
});

describe('the OpenAPI document', () => {
  it('is served at /openapi.json and describes the routes and the bearer scheme', async () => {
    const response = await harness.call('GET', '/openapi.json');
    expect(response.status).toBe(200);
    expect(response.body.openapi).toBe('3.1.0');
    for (const path of [
      '/v1/sessions',
      '/v1/sessions/{id}',
      '/v1/sessions/{id}/messages',
      '/v1/chat/completions',
      '/v1/models',
      '/v1/users',
      '/v1/keys/{id}',
    ]) {
      expect(Object.keys(response.body.paths)).toContain(path);
    }
    expect(response.body.components.securitySchemes.bearerAuth).toEqual({ type: 'http', scheme: 'bearer' });
    expect(Object.keys(response.body.components.schemas)).toEqual(
      expect.arrayContaining(['Session', 'Message', 'Error']),
    );
  });
});
