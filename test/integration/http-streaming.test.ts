/**
 * Streamed replies over real HTTP: SSE (`?stream=sse` or `Accept: text/event-stream`) and WebSocket,
 * with the real text_chat module and a real (fake) provider. Covers the event formats, failures before
 * and during a stream, the stop route, and a client that disconnects mid-reply: the server emits
 * `chat.cancel`, text_chat stops the model and stores the partial reply as `cancelled`.
 */

import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Message } from '../../src/core/types.ts';
import { type HttpHarness, readSse, startHttpHarness } from './http-harness.ts';

let harness: HttpHarness;

beforeAll(async () => {
  // One delta per model token, so a test sees the stream start before the model finished.
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

async function waitFor<T>(probe: () => Promise<T | undefined> | T | undefined, what: string): Promise<T> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The stored assistant message of a session, once there is one. */
function storedReply(sessionId: string): Promise<Message> {
  return waitFor(async () => {
    const list = await harness.call('GET', `/v1/sessions/${sessionId}/messages`, { key: harness.alice.key });
    return (list.body.messages as Message[]).find((message) => message.role === 'assistant');
  }, 'the stored assistant message');
}

function postStream(
  sessionId: string,
  content: string,
  init: { signal?: AbortSignal; query?: boolean } = {},
) {
  const query = init.query === false ? '' : '?stream=sse';
  return fetch(`${harness.baseUrl}/v1/sessions/${sessionId}/messages${query}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${harness.alice.key}`,
      'content-type': 'application/json',
      ...(init.query === false ? { accept: 'text/event-stream' } : {}),
    },
    body: JSON.stringify({ content }),
    ...(init.signal === undefined ? {} : { signal: init.signal }),
  });
}

describe('SSE', () => {
  it('streams start, one delta per chunk, then end with the stored message', async () => {
    harness.model.respond({ kind: 'stream', chunks: ['Once', ' upon', ' a time'] });
    const sessionId = await newSession();
    const response = await postStream(sessionId, 'Tell me a story');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const events = await readSse(response);
    expect(events.map((event) => event.event)).toEqual(['start', 'delta', 'delta', 'delta', 'end']);
    const start = events[0]?.data as { turnId: string; sessionId: string };
    expect(start.sessionId).toBe(sessionId);
    expect(events.slice(1, 4).map((event) => (event.data as { text: string }).text)).toEqual([
      'Once',
      ' upon',
      ' a time',
    ]);
    const end = events[4]?.data as { message: Message };
    expect(end.message).toMatchObject({
      role: 'assistant',
      content: 'Once upon a time',
      metadata: { turnId: start.turnId, finishReason: 'stop' },
    });
    expect((await storedReply(sessionId)).id).toBe(end.message.id);
  });

  it('is chosen by Accept: text/event-stream as well', async () => {
    harness.model.respond({ kind: 'stream', chunks: ['yes'] });
    const response = await postStream(await newSession(), 'SSE?', { query: false });
    const events = await readSse(response);
    expect(events.at(-1)?.event).toBe('end');
  });

  it('answers a failure before the first event with its status and the JSON error', async () => {
    harness.model.respond({ kind: 'error', status: 503, message: 'overloaded' });
    const response = await postStream(await newSession(), 'hello');
    expect(response.status).toBe(502);
    expect(response.headers.get('content-type')).toContain('application/json');
    const body = (await response.json()) as { error: { code: string } };
    expect(body.error.code).toBe('CHAT_ERR_LLM_PROVIDER_FAILED');

    const missing = await postStream('01a2a2a2-0000-7000-8000-000000000000', 'hello');
    expect(missing.status).toBe(404);
  });

  it('cancels the turn when the client disconnects, and keeps the partial reply', async () => {
    harness.model.respond({ kind: 'stall', chunks: ['partial', ' words'] });
    const sessionId = await newSession();
    const controller = new AbortController();
    const response = await postStream(sessionId, 'a long answer please', { signal: controller.signal });
    let turnId = '';
    let deltas = 0;
    await readSse(response, (event) => {
      if (event.event === 'start') turnId = (event.data as { turnId: string }).turnId;
      if (event.event === 'delta' && ++deltas === 2) controller.abort();
    }).catch((error: unknown) => {
      if (!(error instanceof Error && error.name === 'AbortError')) throw error;
    });
    expect(turnId).not.toBe('');
    const cancel = await waitFor(
      () =>
        harness.events('chat.cancel').find((event) => (event.data as { turnId: string }).turnId === turnId),
      'chat.cancel',
    );
    expect(cancel.userId).toBe(harness.alice.id);
    const reply = await storedReply(sessionId);
    expect(reply.content).toBe('partial words');
    expect(reply.metadata.finishReason).toBe('cancelled');
  });

  it('keeps a slow start alive with comment lines; a failure after that is an error event', async () => {
    const slow = await startHttpHarness({
      env: { CHAT_SERVER__SSE_HEARTBEAT_MS: '50' },
      llm: { request_timeout_ms: 400 },
    });
    try {
      slow.model.respond({ kind: 'hang' });
      const created = await slow.call('POST', '/v1/sessions', { key: slow.alice.key, body: {} });
      const response = await fetch(`${slow.baseUrl}/v1/sessions/${created.body.id}/messages?stream=sse`, {
        method: 'POST',
        headers: { authorization: `Bearer ${slow.alice.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ content: 'anyone there?' }),
      });
      expect(response.status).toBe(200);
      const text = await response.text();
      expect(text).toMatch(/^: keep-alive\n\n/);
      const error = /event: error\ndata: (.*)\n/.exec(text)?.[1];
      expect(JSON.parse(error ?? '{}')).toMatchObject({ error: { code: 'CHAT_ERR_LLM_TIMEOUT' } });
    } finally {
      await slow.close();
    }
  });

  it('stops a reply through the cancel route; only the session owner may', async () => {
    harness.model.respond({ kind: 'stall', chunks: ['so far'] });
    const sessionId = await newSession();
    const response = await postStream(sessionId, 'go on');
    const events = await readSse(response, (event) => {
      if (event.event !== 'start') return;
      const { turnId } = event.data as { turnId: string };
      const path = `/v1/sessions/${sessionId}/turns/${turnId}/cancel`;
      void (async () => {
        // Wait for the first delta, so the model is mid-reply.
        await new Promise((resolve) => setTimeout(resolve, 50));
        expect((await harness.call('POST', path, { key: harness.bob.key })).status).toBe(404);
        expect((await harness.call('POST', path, { key: harness.alice.key })).status).toBe(202);
      })();
    });
    const end = events.at(-1) ?? { event: 'none', data: {} };
    expect(end.event).toBe('end');
    expect((end.data as { message: Message }).message).toMatchObject({
      content: 'so far',
      metadata: { finishReason: 'cancelled' },
    });
  });
});

/** A WebSocket to a session, with its frames collected. */
async function openSocket(sessionId: string, key = harness.alice.key) {
  const url = `${harness.baseUrl.replace('http', 'ws')}/v1/sessions/${sessionId}/stream`;
  // Node's WebSocket (undici) accepts headers, as server-side clients need.
  const socket = new WebSocket(url, { headers: { authorization: `Bearer ${key}` } } as never);
  const frames: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  socket.addEventListener('message', (event) => {
    frames.push(JSON.parse(String(event.data)) as Record<string, unknown>);
    for (const wake of waiters.splice(0)) wake();
  });
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener('open', () => resolve(), { once: true });
    socket.addEventListener('error', () => reject(new Error('the WebSocket did not open')), { once: true });
  });
  return {
    socket,
    frames,
    send: (frame: unknown) => socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame)),
    /** Waits until a frame satisfies `match`; returns it. */
    async next(match: (frame: Record<string, unknown>) => boolean) {
      return waitFor(() => frames.find(match), 'a WebSocket frame');
    },
  };
}

/** The HTTP status a WebSocket upgrade gets (101 when it succeeds), read off the raw socket. */
function upgradeStatus(path: string, key: string | undefined): Promise<number> {
  const { port } = new URL(harness.baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => {
      socket.write(
        [
          `GET ${path} HTTP/1.1`,
          `Host: 127.0.0.1:${port}`,
          'Connection: Upgrade',
          'Upgrade: websocket',
          'Sec-WebSocket-Version: 13',
          `Sec-WebSocket-Key: ${Buffer.from('0123456789abcdef').toString('base64')}`,
          ...(key === undefined ? [] : [`Authorization: Bearer ${key}`]),
          '',
          '',
        ].join('\r\n'),
      );
    });
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      received += text;
      const status = /^HTTP\/1\.1 (\d{3})/.exec(received);
      if (status?.[1] !== undefined) {
        socket.destroy();
        resolve(Number(status[1]));
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`no status line in ${JSON.stringify(received)}`)));
  });
}

describe('WebSocket', () => {
  it('streams start, deltas and end for each message, one turn after another', async () => {
    const sessionId = await newSession();
    const ws = await openSocket(sessionId);
    harness.model.respond({ kind: 'stream', chunks: ['Hi', ' you'] });
    ws.send({ type: 'message', content: 'hello' });
    const end = await ws.next((frame) => frame.type === 'end');
    const turnId = end.turnId;
    const ofTurn = ws.frames.filter((frame) => frame.turnId === turnId);
    expect(ofTurn.map((frame) => frame.type)).toEqual(['start', 'delta', 'delta', 'end']);
    expect(ofTurn.filter((frame) => frame.type === 'delta').map((frame) => frame.text)).toEqual([
      'Hi',
      ' you',
    ]);
    expect((end.message as Message).content).toBe('Hi you');

    ws.send({ type: 'message', content: 'and again' });
    const second = await ws.next((frame) => frame.type === 'end' && frame.turnId !== turnId);
    expect((second.message as Message).content).toBe('Hi you');
    ws.socket.close();
  });

  it('answers bad frames with an error frame and stays open', async () => {
    const ws = await openSocket(await newSession());
    ws.send('not json');
    ws.send({ type: 'message', content: 42 });
    ws.send({ type: 'shout' });
    await waitFor(() => (ws.frames.length >= 3 ? true : undefined), 'three error frames');
    for (const frame of ws.frames) {
      expect(frame.type).toBe('error');
      expect((frame.error as { code: string }).code).toBe('CHAT_ERR_VALIDATION_INVALID');
    }
    harness.model.respond({ kind: 'stream', chunks: ['still here'] });
    ws.send({ type: 'message', content: 'ok?' });
    const end = await ws.next((frame) => frame.type === 'end');
    expect((end.message as Message).content).toBe('still here');
    ws.socket.close();
  });

  it('refuses a second message while a reply streams, and stops it on { type: "cancel" }', async () => {
    harness.model.respond({ kind: 'stall', chunks: ['half'] });
    const ws = await openSocket(await newSession());
    ws.send({ type: 'message', content: 'first' });
    await ws.next((frame) => frame.type === 'delta');
    ws.send({ type: 'message', content: 'second' });
    const refusal = await ws.next((frame) => frame.type === 'error');
    expect((refusal.error as { message: string }).message).toContain('still streaming');
    ws.send({ type: 'cancel' });
    const end = await ws.next((frame) => frame.type === 'end');
    expect(end.message).toMatchObject({ content: 'half', metadata: { finishReason: 'cancelled' } });
    ws.socket.close();
  });

  it('cancels the turn when the socket closes mid-reply', async () => {
    harness.model.respond({ kind: 'stall', chunks: ['cut', ' short'] });
    const sessionId = await newSession();
    const ws = await openSocket(sessionId);
    ws.send({ type: 'message', content: 'talk' });
    const start = await ws.next((frame) => frame.type === 'start');
    await ws.next((frame) => frame.type === 'delta' && frame.text === ' short');
    ws.socket.close();
    await waitFor(
      () =>
        harness
          .events('chat.cancel')
          .find((event) => (event.data as { turnId: string }).turnId === start.turnId),
      'chat.cancel',
    );
    const reply = await storedReply(sessionId);
    expect(reply).toMatchObject({ content: 'cut short', metadata: { finishReason: 'cancelled' } });
  });

  it('a keyed message outlives a dropped socket: sent again on a new socket, it is the same turn, generated once', async () => {
    // A slow model: the socket drops while the reply is still generated.
    harness.model.respond({ kind: 'stream', chunks: ['kept ', 'for ', 'you'], delayMs: 100 });
    const sessionId = await newSession();
    const first = await openSocket(sessionId);
    first.send({ type: 'message', content: 'remember me', idempotencyKey: 'ws-retry-1' });
    const start = await first.next((frame) => frame.type === 'start');
    first.socket.close();
    // Not cancelled: the whole reply is generated and stored.
    const stored = await storedReply(sessionId);
    expect(stored).toMatchObject({ content: 'kept for you', metadata: { finishReason: 'stop' } });

    const second = await openSocket(sessionId);
    second.send({ type: 'message', content: 'remember me', idempotencyKey: 'ws-retry-1' });
    const end = await second.next((frame) => frame.type === 'end');
    expect(end.turnId).toBe(start.turnId);
    expect((end.message as Message).id).toBe(stored.id);
    // Answered from storage: its text as one delta, so the deltas add up to the message here too.
    expect(second.frames.map((frame) => frame.type)).toEqual(['start', 'delta', 'end']);
    expect(second.frames[1]?.text).toBe('kept for you');
    expect(harness.model.requests).toHaveLength(1);
    const list = await harness.call('GET', `/v1/sessions/${sessionId}/messages`, { key: harness.alice.key });
    expect((list.body.messages as Message[]).map((message) => message.role)).toEqual(['user', 'assistant']);
    second.socket.close();
  });

  it('stops a keyed turn on { type: "cancel" }, and refuses a malformed key with an error frame', async () => {
    const ws = await openSocket(await newSession());
    ws.send({ type: 'message', content: 'x', idempotencyKey: '' });
    ws.send({ type: 'message', content: 'x', idempotencyKey: 'k'.repeat(256) });
    await waitFor(() => (ws.frames.length >= 2 ? true : undefined), 'two error frames');
    for (const frame of ws.frames) {
      expect(frame.type).toBe('error');
      expect((frame.error as { message: string }).message).toContain('idempotencyKey');
    }
    harness.model.respond({ kind: 'stall', chunks: ['half'] });
    ws.send({ type: 'message', content: 'first', idempotencyKey: 'ws-cancel-1' });
    await ws.next((frame) => frame.type === 'delta');
    ws.send({ type: 'cancel' });
    const end = await ws.next((frame) => frame.type === 'end');
    expect(end.message).toMatchObject({ content: 'half', metadata: { finishReason: 'cancelled' } });
    ws.socket.close();
  });

  it('checks the key and the session before upgrading: 101 / 404 / 401 / 401', async () => {
    const sessionId = await newSession();
    const path = `/v1/sessions/${sessionId}/stream`;
    expect(await upgradeStatus(path, harness.alice.key)).toBe(101);
    expect(await upgradeStatus(path, harness.bob.key)).toBe(404);
    expect(await upgradeStatus(path, undefined)).toBe(401);
    expect(await upgradeStatus(path, `pk_${'B'.repeat(43)}`)).toBe(401);
    expect(
      await upgradeStatus('/v1/sessions/01a2a2a2-0000-7000-8000-000000000000/stream', harness.alice.key),
    ).toBe(404);
  });
});
