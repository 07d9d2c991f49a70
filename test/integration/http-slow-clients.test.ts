/**
 * Clients that hold connections over real HTTP: a request whose body (or headers) trickles in slower than
 * server.request_timeout_ms is answered 408 in the API's error shape and its connection closed, freeing
 * its request slot; a reply streamed for longer than that timeout is not cut; headers too large get 431;
 * and one user's open requests (slow uploads, WebSockets) stop at
 * resource_limits.max_concurrent_requests_per_user with a 429, while another user is still served.
 */

import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpHarness, readSse, startHttpHarness } from './http-harness.ts';

let harness: HttpHarness;
const TIMEOUT_MS = 1000;

beforeAll(async () => {
  harness = await startHttpHarness({
    env: {
      CHAT_SERVER__REQUEST_TIMEOUT_MS: String(TIMEOUT_MS),
      CHAT_RESOURCE_LIMITS__MAX_CONCURRENT_REQUESTS_PER_USER: '3',
    },
  });
});

afterAll(async () => {
  await harness?.close();
});

/** A raw connection to the server, and everything it received until the server closed it. */
function rawConnection(): { socket: Socket; received: Promise<string> } {
  const { port } = new URL(harness.baseUrl);
  const socket = connect(Number(port), '127.0.0.1');
  const received = new Promise<string>((resolve) => {
    let text = '';
    socket.on('data', (chunk) => {
      text += chunk.toString('utf8');
    });
    socket.on('close', () => resolve(text));
    socket.on('error', () => {});
  });
  return { socket, received };
}

/** Starts a POST of a session whose body never arrives whole: one byte now, then one a few times a second. */
function slowUpload(key: string): { socket: Socket; received: Promise<string>; stop(): void } {
  const connection = rawConnection();
  connection.socket.write(
    'POST /v1/sessions HTTP/1.1\r\nhost: parley\r\ncontent-type: application/json\r\n' +
      `authorization: Bearer ${key}\r\ncontent-length: 1000\r\n\r\n{`,
  );
  const trickle = setInterval(() => {
    if (!connection.socket.destroyed) connection.socket.write(' ');
  }, 200);
  return { ...connection, stop: () => clearInterval(trickle) };
}

describe('slow clients', () => {
  it('answers a request whose body trickles in past the timeout with 408, in the API error shape', async () => {
    const started = performance.now();
    const upload = slowUpload(harness.alice.key);
    const answer = await upload.received;
    upload.stop();
    const elapsed = performance.now() - started;
    expect(answer).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
    expect(body.error.code).toBe('CHAT_ERR_REQUEST_TIMEOUT');
    expect(body.error.message).toContain('server.request_timeout_ms');
    // Cut off near the timeout (checked every quarter of it), not left open.
    expect(elapsed).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect(elapsed).toBeLessThan(TIMEOUT_MS * 5);
    // Its slot is free again: alice is served.
    expect((await harness.call('GET', '/v1/sessions', { key: harness.alice.key })).status).toBe(200);
  });

  it('answers headers that never end with 408 too, and headers too large with 431', async () => {
    const slow = rawConnection();
    slow.socket.write('GET /v1/sessions HTTP/1.1\r\nhost: parley\r\n');
    const dribble = setInterval(() => {
      if (!slow.socket.destroyed) slow.socket.write('x-slow: 1\r\n');
    }, 200);
    const answer = await slow.received;
    clearInterval(dribble);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(answer).toContain('"code":"CHAT_ERR_REQUEST_TIMEOUT"');

    const large = rawConnection();
    large.socket.write(
      `GET /v1/sessions HTTP/1.1\r\nhost: parley\r\nx-large: ${'a'.repeat(64 * 1024)}\r\n\r\n`,
    );
    const refused = await large.received;
    expect(refused).toMatch(/^HTTP\/1\.1 431 /);
    expect(refused).toContain('"code":"CHAT_ERR_HEADERS_TOO_LARGE"');
  });

  it('does not cut a reply that streams for longer than the request timeout', async () => {
    const { call, alice, model } = harness;
    const session = await call('POST', '/v1/sessions', { key: alice.key, body: {} });
    model.respond({ kind: 'stream', chunks: ['slow', ' but', ' whole'], delayMs: TIMEOUT_MS });
    const response = await fetch(`${harness.baseUrl}/v1/sessions/${session.body.id}/messages?stream=sse`, {
      method: 'POST',
      headers: { authorization: `Bearer ${alice.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ content: 'take your time' }),
    });
    expect(response.status).toBe(200);
    const events = await readSse(response);
    expect(events.at(-1)).toMatchObject({ event: 'end', data: { message: { content: 'slow but whole' } } });
  });

  it("stops one user's open requests at the per-user limit with 429; another user is still served", async () => {
    const { call, alice, bob } = harness;
    const uploads = [slowUpload(alice.key), slowUpload(alice.key)];
    const session = await call('POST', '/v1/sessions', { key: alice.key, body: {} });
    const socket = new WebSocket(
      `${harness.baseUrl.replace('http', 'ws')}/v1/sessions/${session.body.id}/stream`,
      {
        headers: { authorization: `Bearer ${alice.key}` },
      } as never,
    );
    await new Promise((resolve, reject) => {
      socket.addEventListener('open', resolve, { once: true });
      socket.addEventListener('error', reject, { once: true });
    });
    // Two uploads under way and a WebSocket open: alice's three.
    const refused = await call('GET', '/v1/sessions', { key: alice.key });
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe('CHAT_ERR_TOO_MANY_CONCURRENT_REQUESTS');
    expect(refused.body.error.message).toContain('resource_limits.max_concurrent_requests_per_user');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await call('GET', '/v1/sessions', { key: bob.key })).status).toBe(200);

    // Closing the socket gives alice a slot back.
    const closed = new Promise((resolve) => socket.addEventListener('close', resolve, { once: true }));
    socket.close();
    await closed;
    await expect.poll(async () => (await call('GET', '/v1/sessions', { key: alice.key })).status).toBe(200);
    for (const upload of uploads) {
      upload.stop();
      upload.socket.destroy();
    }
  });
});
