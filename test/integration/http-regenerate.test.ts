/**
 * Regenerate over real HTTP (`POST /v1/sessions/:id/regenerate`, JSON and SSE, and the WebSocket
 * `regenerate` frame), with the real text_chat module and a fake OpenAI-compatible provider that records
 * what it was sent: the model gets the history up to the last user message, the new reply replaces the old
 * one in the listing and in what later turns send, and the failures a client meets answer plainly.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Message } from '../../src/core/types.ts';
import { type HttpHarness, readSse, startHttpHarness } from './http-harness.ts';

let harness: HttpHarness;

beforeAll(async () => {
  harness = await startHttpHarness({ env: { CHAT_TEXT_CHAT__STREAMING__CHUNK_SIZE: '1' } });
});

afterAll(async () => {
  await harness?.close();
});

async function newSession(key = harness.alice.key): Promise<string> {
  const created = await harness.call('POST', '/v1/sessions', { key, body: {} });
  expect(created.status).toBe(201);
  return created.body.id as string;
}

async function say(sessionId: string, content: string, reply: string[]): Promise<Message> {
  harness.model.respond({ kind: 'stream', chunks: reply });
  const answer = await harness.call('POST', `/v1/sessions/${sessionId}/messages`, {
    key: harness.alice.key,
    body: { content },
  });
  expect(answer.status).toBe(200);
  return answer.body as Message;
}

/** The conversation the provider received in its newest request, without the persona's system prompt. */
function conversationSent(): string[] {
  const body = harness.model.requests.at(-1)!.body as { messages: Array<{ role: string; content: unknown }> };
  return body.messages
    .filter((message) => message.role !== 'system')
    .map((message) => `${message.role}: ${typeof message.content === 'string' ? message.content : ''}`);
}

async function listing(sessionId: string, query = ''): Promise<string[]> {
  const page = await harness.call('GET', `/v1/sessions/${sessionId}/messages${query}`, {
    key: harness.alice.key,
  });
  expect(page.status).toBe(200);
  return (page.body.messages as Message[]).map((message) => `${message.role}: ${message.content}`);
}

function postRegenerate(sessionId: string, query: string, body?: unknown, key = harness.alice.key) {
  return fetch(`${harness.baseUrl}/v1/sessions/${sessionId}/regenerate${query}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${key}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

describe('POST /v1/sessions/:id/regenerate', () => {
  it('answers the last message again (JSON) and later turns no longer see the replaced reply', async () => {
    const sessionId = await newSession();
    await say(sessionId, 'Pick a number', ['Seven.']);
    const [, replaced] = (
      await harness.call('GET', `/v1/sessions/${sessionId}/messages`, { key: harness.alice.key })
    ).body.messages as Message[];

    harness.model.respond({ kind: 'stream', chunks: ['Eight', '.'] });
    // No body at all (`curl -X POST`) is fine: every field is optional.
    const response = await postRegenerate(sessionId, '');
    expect(response.status).toBe(200);
    const reply = (await response.json()) as Message;
    expect(reply).toMatchObject({
      role: 'assistant',
      content: 'Eight.',
      metadata: { sessionId, replaces: replaced!.id, finishReason: 'stop' },
    });
    expect(conversationSent()).toEqual(['user: Pick a number']);

    expect(await listing(sessionId)).toEqual(['user: Pick a number', 'assistant: Eight.']);
    expect(await listing(sessionId, '?include=replaced')).toEqual([
      'user: Pick a number',
      'assistant: Seven.',
      'assistant: Eight.',
    ]);

    await say(sessionId, 'Why that one?', ['Because.']);
    expect(conversationSent()).toEqual(['user: Pick a number', 'assistant: Eight.', 'user: Why that one?']);
  });

  it('leaves the replaced reply out of search, as out of the listing', async () => {
    const sessionId = await newSession();
    await say(sessionId, 'Name a capybara', ['Gerald the capybara.']);
    const search = async () => {
      const found = await harness.call('GET', '/v1/search?q=capybara', { key: harness.alice.key });
      expect(found.status).toBe(200);
      return (found.body.hits as Array<{ sessionId: string; snippet: string }>)
        .filter((hit) => hit.sessionId === sessionId)
        .map((hit) => hit.snippet)
        .sort();
    };
    // Searched once first, so the index is held and the regeneration is noted into it.
    expect(await search()).toEqual(['Gerald the capybara.', 'Name a capybara']);
    harness.model.respond({ kind: 'stream', chunks: ['Hugo the capybara.'] });
    expect((await postRegenerate(sessionId, '')).status).toBe(200);
    expect(await search()).toEqual(['Hugo the capybara.', 'Name a capybara']);
  });

  it('streams over SSE like a message, with the model settings asked for, replacing the newest reply', async () => {
    const sessionId = await newSession();
    await say(sessionId, 'Name a fruit', ['Apple.']);
    harness.model.respond({ kind: 'stream', chunks: ['Pear.'] });
    const first = (await (await postRegenerate(sessionId, '')).json()) as Message;

    harness.model.respond({ kind: 'stream', chunks: ['Plum', '.'] });
    const response = await postRegenerate(sessionId, '?stream=sse', { temperature: 0.3 });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const events = await readSse(response);
    expect(events.map((event) => event.event)).toEqual(['start', 'delta', 'delta', 'end']);
    const start = events[0]!.data as { turnId: string; sessionId: string };
    expect(start.sessionId).toBe(sessionId);
    const end = (events.at(-1)!.data as { message: Message }).message;
    expect(end).toMatchObject({ content: 'Plum.', metadata: { turnId: start.turnId, replaces: first.id } });
    expect(harness.model.requests.at(-1)!.body.temperature).toBe(0.3);
    expect(conversationSent()).toEqual(['user: Name a fruit']);
    expect(await listing(sessionId)).toEqual(['user: Name a fruit', 'assistant: Plum.']);
  });

  it("is a 404 for another user's session, a 401 without a key, a 409 with nothing to answer, a 400 for bad input", async () => {
    const sessionId = await newSession();
    const empty = await postRegenerate(sessionId, '');
    expect(empty.status).toBe(409);
    expect(((await empty.json()) as { error: { code: string } }).error.code).toBe(
      'CHAT_ERR_NOTHING_TO_REGENERATE',
    );
    // Over SSE too: refused before the stream starts, with its status.
    expect((await postRegenerate(sessionId, '?stream=sse')).status).toBe(409);

    await say(sessionId, 'Hello', ['Hi.']);
    harness.model.respond({ kind: 'stream', chunks: ['never'] });
    const foreign = await postRegenerate(sessionId, '', {}, harness.bob.key);
    expect(foreign.status).toBe(404);
    const missingId = '01a2a2a2-0000-7000-8000-000000000000';
    const missing = await postRegenerate(missingId, '', {});
    // Exactly as a session that does not exist: same code, same message.
    const foreignError = ((await foreign.json()) as { error: { code: string; message: string } }).error;
    const missingError = ((await missing.json()) as { error: { code: string; message: string } }).error;
    expect(foreignError).toEqual({
      code: missingError.code,
      message: missingError.message.replace(missingId, sessionId),
    });
    const anonymous = await fetch(`${harness.baseUrl}/v1/sessions/${sessionId}/regenerate`, {
      method: 'POST',
    });
    expect(anonymous.status).toBe(401);
    expect((await postRegenerate(sessionId, '', { content: 'not here' })).status).toBe(400);
    expect((await postRegenerate(sessionId, '', { temperature: 5 })).status).toBe(400);
    expect(harness.model.requests).toHaveLength(0);
    expect(await listing(sessionId)).toEqual(['user: Hello', 'assistant: Hi.']);
  });

  it('is stopped by the cancel route, refuses a message meanwhile (409), and a provider failure keeps the reply', async () => {
    const sessionId = await newSession();
    const original = await say(sessionId, 'Write a haiku', ['Old pond.']);

    harness.model.respond({ kind: 'stall', chunks: ['Frog', ' jumps'] });
    const response = await postRegenerate(sessionId, '?stream=sse');
    let turnId = '';
    let midway: Promise<void> | undefined;
    const events = await readSse(response, (event) => {
      if (event.event === 'start') turnId = (event.data as { turnId: string }).turnId;
      if (event.event === 'delta' && (event.data as { text: string }).text === ' jumps') {
        midway = (async () => {
          const refused = await harness.call('POST', `/v1/sessions/${sessionId}/messages`, {
            key: harness.alice.key,
            body: { content: 'Another?' },
          });
          expect(refused.status).toBe(409);
          expect(refused.body.error.code).toBe('CHAT_ERR_TURN_IN_PROGRESS');
          const cancel = await harness.call('POST', `/v1/sessions/${sessionId}/turns/${turnId}/cancel`, {
            key: harness.alice.key,
          });
          expect(cancel.status).toBe(202);
        })();
      }
    });
    await midway;
    expect(midway).toBeDefined();
    const end = (events.at(-1)!.data as { message: Message }).message;
    expect(events.at(-1)!.event).toBe('end');
    expect(end).toMatchObject({
      content: 'Frog jumps',
      metadata: { finishReason: 'cancelled', replaces: original.id },
    });

    harness.model.respond({ kind: 'error', status: 503, message: 'overloaded' });
    const failed = await postRegenerate(sessionId, '');
    expect(failed.status).toBe(502);
    expect(((await failed.json()) as { error: { code: string } }).error.code).toBe(
      'CHAT_ERR_LLM_PROVIDER_FAILED',
    );
    expect(await listing(sessionId)).toEqual(['user: Write a haiku', 'assistant: Frog jumps']);
  });
});

describe('WebSocket regenerate frame', () => {
  it('streams start, deltas and end of the new reply', async () => {
    const sessionId = await newSession();
    const original = await say(sessionId, 'Say hi', ['Hi.']);
    const url = `${harness.baseUrl.replace('http', 'ws')}/v1/sessions/${sessionId}/stream`;
    const socket = new WebSocket(url, { headers: { authorization: `Bearer ${harness.alice.key}` } } as never);
    const frames: Array<Record<string, unknown>> = [];
    const ended = new Promise<void>((resolve) => {
      socket.addEventListener('message', (event) => {
        const frame = JSON.parse(String(event.data)) as Record<string, unknown>;
        frames.push(frame);
        if (frame.type === 'end' || frame.type === 'error') resolve();
      });
    });
    await new Promise((resolve) => socket.addEventListener('open', resolve, { once: true }));
    harness.model.respond({ kind: 'stream', chunks: ['Hello', '!'] });
    socket.send(JSON.stringify({ type: 'regenerate' }));
    await ended;
    socket.close();
    expect(frames.map((frame) => frame.type)).toEqual(['start', 'delta', 'delta', 'end']);
    expect(frames.at(-1)!.message).toMatchObject({ content: 'Hello!', metadata: { replaces: original.id } });
    expect(conversationSent()).toEqual(['user: Say hi']);
  });
});
