/**
 * Limits over real HTTP: text_chat's messages-per-minute limit answers 429 with Retry-After (also for a
 * request that asked for a stream), per user; and beyond resource_limits.max_concurrent_requests the
 * server answers 503 with Retry-After at once, keeps answering health checks, and takes requests again
 * once the others finished (WebSocket connections included).
 */

import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type HttpHarness, readSse, startHttpHarness } from './http-harness.ts';

let harness: HttpHarness;

beforeAll(async () => {
  harness = await startHttpHarness({
    env: {
      CHAT_TEXT_CHAT__RATE_LIMITING__MAX_MESSAGES_PER_MINUTE: '2',
      CHAT_TEXT_CHAT__STREAMING__CHUNK_SIZE: '1',
      CHAT_RESOURCE_LIMITS__MAX_CONCURRENT_REQUESTS: '2',
    },
  });
});

afterAll(async () => {
  await harness?.close();
});

describe('the per-user message rate limit', () => {
  it('answers 429 with Retry-After, as JSON even when a stream was asked for, for that user only', async () => {
    const { call, alice, bob, model } = harness;
    model.respond({ kind: 'stream', chunks: ['ok'] });
    const session = await call('POST', '/v1/sessions', { key: alice.key, body: {} });
    const path = `/v1/sessions/${session.body.id}/messages`;
    for (let sent = 0; sent < 2; sent++) {
      expect((await call('POST', path, { key: alice.key, body: { content: `m${sent}` } })).status).toBe(200);
    }
    const refused = await call('POST', path, { key: alice.key, body: { content: 'one too many' } });
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe('CHAT_ERR_RATE_LIMITED');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);

    const streamed = await call('POST', `${path}?stream=sse`, {
      key: alice.key,
      body: { content: 'stream?' },
    });
    expect(streamed.status).toBe(429);
    expect(streamed.headers.get('content-type')).toContain('application/json');
    expect(streamed.headers.get('retry-after')).not.toBeNull();

    const ofBob = await call('POST', '/v1/sessions', { key: bob.key, body: {} });
    const bobs = await call('POST', `/v1/sessions/${ofBob.body.id}/messages`, {
      key: bob.key,
      body: { content: 'my turn' },
    });
    expect(bobs.status).toBe(200);
  });
});

describe('the concurrent request limit', () => {
  it('answers 503 with Retry-After while two streams are open, health still answers, then recovers', async () => {
    const { call, baseUrl, admin, model } = harness;
    model.respond({ kind: 'stall', chunks: ['held'] });
    const sessions = [];
    for (let index = 0; index < 2; index++) {
      sessions.push((await call('POST', '/v1/sessions', { key: admin.key, body: {} })).body.id as string);
    }
    const controllers = sessions.map(() => new AbortController());
    const firstDeltas = sessions.map(
      (sessionId, index) =>
        new Promise<void>((resolve, reject) => {
          fetch(`${baseUrl}/v1/sessions/${sessionId}/messages?stream=sse`, {
            method: 'POST',
            headers: { authorization: `Bearer ${admin.key}`, 'content-type': 'application/json' },
            body: JSON.stringify({ content: 'hold on' }),
            signal: controllers[index]?.signal ?? null,
          })
            .then((response) =>
              readSse(response, (event) => {
                if (event.event === 'delta') resolve();
              }),
            )
            .catch((error: unknown) => {
              if (!(error instanceof Error && error.name === 'AbortError')) reject(error);
            });
        }),
    );
    await Promise.all(firstDeltas);

    const busy = await call('GET', '/v1/sessions', { key: admin.key });
    expect(busy.status).toBe(503);
    expect(busy.body.error.code).toBe('CHAT_ERR_SERVER_BUSY');
    expect(busy.headers.get('retry-after')).toBe('1');
    expect((await call('GET', '/healthz')).status).toBe(200);

    for (const controller of controllers) controller.abort();
    await vi.waitFor(async () =>
      expect((await call('GET', '/v1/sessions', { key: admin.key })).status).toBe(200),
    );

    // WebSocket connections hold a slot while open and give it back when closed.
    model.respond({ kind: 'stream', chunks: ['ok'] });
    for (let round = 0; round < 3; round++) {
      const socket = new WebSocket(`${baseUrl.replace('http', 'ws')}/v1/sessions/${sessions[0]}/stream`, {
        headers: { authorization: `Bearer ${admin.key}` },
      } as never);
      await new Promise((resolve, reject) => {
        socket.addEventListener('open', resolve, { once: true });
        socket.addEventListener('error', reject, { once: true });
      });
      socket.close();
      await new Promise((resolve) => socket.addEventListener('close', resolve, { once: true }));
    }
    await vi.waitFor(async () =>
      expect((await call('GET', '/v1/sessions', { key: admin.key })).status).toBe(200),
    );
  });
});
