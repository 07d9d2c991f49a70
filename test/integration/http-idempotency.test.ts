/**
 * `Idempotency-Key` on `POST /v1/sessions/:id/messages`, over real HTTP with the real text_chat module and
 * a real (fake) provider: a message sent again with the same key is the same turn — stored once, generated
 * once — whether the repeat comes after the reply, while it is generated, or after the client gave up;
 * JSON and SSE; the same key for another message, a malformed key, keys of other users and sessions, and
 * a turn that failed.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Message } from '../../src/core/types.ts';
import {
  type CallResult,
  type HttpHarness,
  readSse,
  startHttpHarness,
  type TestUser,
} from './http-harness.ts';

let harness: HttpHarness;

beforeAll(async () => {
  harness = await startHttpHarness({
    // One delta per model token; a model silent for a second fails the turn (the failed-turn test).
    env: { CHAT_TEXT_CHAT__STREAMING__CHUNK_SIZE: '1' },
    llm: { request_timeout_ms: 1000 },
  });
});

afterAll(async () => {
  await harness?.close();
});

async function newSession(user: TestUser = harness.alice): Promise<string> {
  const created = await harness.call('POST', '/v1/sessions', { key: user.key, body: {} });
  expect(created.status).toBe(201);
  return created.body.id as string;
}

/** A JSON message post, with `key` as its Idempotency-Key. */
function post(sessionId: string, content: string, key: string, user = harness.alice): Promise<CallResult> {
  return harness.call('POST', `/v1/sessions/${sessionId}/messages`, {
    key: user.key,
    body: { content },
    headers: { 'idempotency-key': key },
  });
}

/** An SSE message post, with `key` as its Idempotency-Key. */
function postStream(sessionId: string, content: string, key: string, signal?: AbortSignal) {
  return fetch(`${harness.baseUrl}/v1/sessions/${sessionId}/messages?stream=sse`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${harness.alice.key}`,
      'content-type': 'application/json',
      'idempotency-key': key,
    },
    body: JSON.stringify({ content }),
    ...(signal === undefined ? {} : { signal }),
  });
}

/** The session's stored messages, oldest first. */
async function stored(sessionId: string, user = harness.alice): Promise<Message[]> {
  const list = await harness.call('GET', `/v1/sessions/${sessionId}/messages`, { key: user.key });
  expect(list.status).toBe(200);
  return list.body.messages as Message[];
}

async function waitFor(probe: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('Idempotency-Key', () => {
  it('a repeat after the reply gets the same reply: the message and the reply are stored once, the model asked once', async () => {
    harness.model.respond({ kind: 'stream', chunks: ['Lisbon', ' is hilly'] });
    const sessionId = await newSession();
    const first = await post(sessionId, 'Tell me about Lisbon', 'key-after');
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ role: 'assistant', content: 'Lisbon is hilly' });

    const repeat = await post(sessionId, 'Tell me about Lisbon', 'key-after');
    expect(repeat.status).toBe(200);
    expect(repeat.body).toEqual(first.body);
    expect(harness.model.requests).toHaveLength(1);
    const messages = await stored(sessionId);
    expect(messages.map((message) => [message.role, message.content])).toEqual([
      ['user', 'Tell me about Lisbon'],
      ['assistant', 'Lisbon is hilly'],
    ]);
    expect(messages[1]?.id).toBe(first.body.id);
  });

  it('a repeat while the reply is generated waits for it: one generation, the same reply for both', async () => {
    harness.model.respond({ kind: 'stream', chunks: ['slow', ' but', ' sure'], delayMs: 200 });
    const sessionId = await newSession();
    const first = post(sessionId, 'take your time', 'key-during');
    await waitFor(() => harness.model.requests.length === 1, 'the model to be asked');
    const repeats = await Promise.all([
      post(sessionId, 'take your time', 'key-during'),
      post(sessionId, 'take your time', 'key-during'),
    ]);
    const answered = await first;
    expect(answered.status).toBe(200);
    expect(answered.body.content).toBe('slow but sure');
    for (const repeat of repeats) expect(repeat).toMatchObject({ status: 200, body: answered.body });
    expect(harness.model.requests).toHaveLength(1);
    expect((await stored(sessionId)).map((message) => message.role)).toEqual(['user', 'assistant']);
  });

  it('a client that gives up mid-reply and sends again gets the whole reply: a keyed turn outlives its disconnect', async () => {
    harness.model.respond({ kind: 'stream', chunks: ['one', ' two', ' three'], delayMs: 150 });
    const sessionId = await newSession();
    const controller = new AbortController();
    const response = await postStream(sessionId, 'count to three', 'key-gave-up', controller.signal);
    await readSse(response, (event) => {
      if (event.event === 'delta') controller.abort();
    }).catch((error: unknown) => {
      if (!(error instanceof Error && error.name === 'AbortError')) throw error;
    });

    const retry = await post(sessionId, 'count to three', 'key-gave-up');
    expect(retry.status).toBe(200);
    expect(retry.body).toMatchObject({ content: 'one two three', metadata: { finishReason: 'stop' } });
    expect(harness.model.requests).toHaveLength(1);
    expect(harness.events('chat.cancel')).toHaveLength(0);
    expect((await stored(sessionId)).map((message) => message.content)).toEqual([
      'count to three',
      'one two three',
    ]);
  });

  it('the same key for a different message is refused with 422, while the turn runs and after it', async () => {
    harness.model.respond({ kind: 'stream', chunks: ['first', ' answer'], delayMs: 200 });
    const sessionId = await newSession();
    const first = post(sessionId, 'the first message', 'key-reused');
    await waitFor(() => harness.model.requests.length === 1, 'the model to be asked');
    // While it runs: refused by the gateway holding the turn.
    const during = await post(sessionId, 'another message', 'key-reused');
    expect(during.status).toBe(422);
    expect(during.body.error.code).toBe('CHAT_ERR_IDEMPOTENCY_KEY_REUSED');
    expect(during.body.error.message).toContain('new key');
    expect((await first).status).toBe(200);
    // After it: refused by text_chat, which compares with the stored message.
    const after = await post(sessionId, 'another message', 'key-reused');
    expect(after.status).toBe(422);
    expect(after.body.error.code).toBe('CHAT_ERR_IDEMPOTENCY_KEY_REUSED');
    expect(harness.model.requests).toHaveLength(1);
    expect((await stored(sessionId)).map((message) => message.content)).toEqual([
      'the first message',
      'first answer',
    ]);
  });

  it('a malformed key is refused with 400 naming the header, and nothing is stored', async () => {
    harness.model.respond({ kind: 'stream', chunks: ['never'] });
    const sessionId = await newSession();
    for (const key of ['', 'k'.repeat(256), 'caf\u00e9', 'tab\tinside']) {
      const refused = await post(sessionId, 'hello', key);
      expect(refused.status, JSON.stringify(key)).toBe(400);
      expect(refused.body.error.code).toBe('CHAT_ERR_VALIDATION_INVALID');
      expect(refused.body.error.message).toContain('Idempotency-Key header');
    }
    expect(await post(sessionId, 'hello', 'k'.repeat(255))).toMatchObject({ status: 200 });
    expect(harness.model.requests).toHaveLength(1);
  });

  it("keys are each user's and each session's: the same key elsewhere is another turn, and each repeats its own", async () => {
    harness.model.respond({ kind: 'stream', chunks: ['yours'] });
    const turns = [
      { user: harness.alice, sessionId: await newSession(harness.alice) },
      { user: harness.bob, sessionId: await newSession(harness.bob) },
      { user: harness.alice, sessionId: await newSession(harness.alice) },
    ];
    const firsts: CallResult[] = [];
    for (const { user, sessionId } of turns) firsts.push(await post(sessionId, 'same words', 'shared', user));
    expect(new Set(firsts.map((first) => first.body.id)).size).toBe(3);
    expect(new Set(firsts.map((first) => first.body.metadata.turnId)).size).toBe(3);
    for (const [index, { user, sessionId }] of turns.entries()) {
      const repeat = await post(sessionId, 'same words', 'shared', user);
      expect(repeat.body.id).toBe(firsts[index]?.body.id);
      expect(await stored(sessionId, user)).toHaveLength(2);
    }
    expect(harness.model.requests).toHaveLength(3);
  });

  it('SSE: a repeat after the reply streams start, the whole reply as one delta, then end with the same message', async () => {
    harness.model.respond({ kind: 'stream', chunks: ['Once', ' upon'] });
    const sessionId = await newSession();
    const first = await readSse(await postStream(sessionId, 'a story', 'key-sse'));
    expect(first.map((event) => event.event)).toEqual(['start', 'delta', 'delta', 'end']);
    const [start, , , end] = first;
    const turnId = (start?.data as { turnId: string } | undefined)?.turnId;
    const message = (end?.data as { message: Message } | undefined)?.message;
    expect(message?.content).toBe('Once upon');

    const repeat = await readSse(await postStream(sessionId, 'a story', 'key-sse'));
    expect(repeat).toEqual([
      { event: 'start', data: { turnId, sessionId } },
      { event: 'delta', data: { text: 'Once upon' } },
      { event: 'end', data: { message } },
    ]);
    expect(harness.model.requests).toHaveLength(1);
    expect(await stored(sessionId)).toHaveLength(2);
  });

  it('SSE: a repeat while the reply is generated by a JSON request gets the reply as one delta, generated once', async () => {
    harness.model.respond({ kind: 'stream', chunks: ['slowly', ' told'], delayMs: 200 });
    const sessionId = await newSession();
    const first = post(sessionId, 'a slow story', 'key-sse-during');
    await waitFor(() => harness.model.requests.length === 1, 'the model to be asked');
    const repeat = await readSse(await postStream(sessionId, 'a slow story', 'key-sse-during'));
    const answered = await first;
    expect(repeat.map((event) => event.event)).toEqual(['start', 'delta', 'end']);
    expect(repeat[1]?.data).toEqual({ text: 'slowly told' });
    expect(repeat[2]?.data).toEqual({ message: answered.body });
    expect(harness.model.requests).toHaveLength(1);
  });

  it('is described in the OpenAPI document as a header of the route', async () => {
    const openapi = await harness.call('GET', '/openapi.json');
    const route = openapi.body.paths['/v1/sessions/{id}/messages'].post;
    expect(route.parameters).toContainEqual(
      expect.objectContaining({ in: 'header', name: 'idempotency-key', required: false }),
    );
    expect(route.description).toContain('CHAT_ERR_IDEMPOTENCY_KEY_REUSED');
  });

  it('a turn that failed before any text is answered again by a repeat, for the same stored message', async () => {
    harness.model.respond({ kind: 'error', status: 503, message: 'overloaded' });
    const sessionId = await newSession();
    const failed = await post(sessionId, 'are you there?', 'key-failed');
    expect(failed.status).toBe(502);
    expect((await stored(sessionId)).map((message) => message.role)).toEqual(['user']);

    harness.model.respond({ kind: 'stream', chunks: ['here now'] });
    const repeat = await post(sessionId, 'are you there?', 'key-failed');
    expect(repeat).toMatchObject({ status: 200, body: { content: 'here now' } });
    expect((await stored(sessionId)).map((message) => message.content)).toEqual([
      'are you there?',
      'here now',
    ]);
  });

  it('a turn that failed midway (partial reply stored with its error) is answered again once; later repeats get that answer', async () => {
    harness.model.respond({ kind: 'stall', chunks: ['half'] });
    const sessionId = await newSession();
    const failed = await post(sessionId, 'a long one', 'key-partial');
    expect(failed.status).toBe(504);
    expect(failed.body.error.code).toBe('CHAT_ERR_LLM_TIMEOUT');
    const afterFailure = await stored(sessionId);
    expect(afterFailure.map((message) => [message.content, message.metadata.finishReason])).toEqual([
      ['a long one', undefined],
      ['half', 'error'],
    ]);

    harness.model.respond({ kind: 'stream', chunks: ['whole'] });
    const again = await post(sessionId, 'a long one', 'key-partial');
    expect(again).toMatchObject({ status: 200, body: { content: 'whole' } });
    const repeat = await post(sessionId, 'a long one', 'key-partial');
    expect(repeat.body).toEqual(again.body);
    expect(harness.model.requests).toHaveLength(1);
    // The model was not shown the failed partial reply (history leaves failed replies out).
    expect((await stored(sessionId)).map((message) => message.content)).toEqual([
      'a long one',
      'half',
      'whole',
    ]);
  });
});
