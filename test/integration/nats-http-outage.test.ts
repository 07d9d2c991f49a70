import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type OwnNatsServer,
  requireNatsServerBinary,
  startOwnNatsServer,
  uniquePrefix,
} from '../helpers/nats.ts';
import { type HttpHarness, startHttpHarness } from './http-harness.ts';

// The whole parley (every module, the HTTP server) on the NATS bus, with NATS crashing under it: API
// calls during the outage get a clear 503 at once, and parley serves again once NATS is back, with
// nothing it acknowledged before lost. NATS here is this test's own server, never the shared one.
const available = requireNatsServerBinary('nats http outage');

describe.skipIf(!available)('parley over NATS while NATS restarts', () => {
  let server: OwnNatsServer;
  let harness: HttpHarness;

  beforeAll(async () => {
    server = await startOwnNatsServer();
    harness = await startHttpHarness({
      env: {
        CHAT_BUS__TRANSPORT: 'nats',
        CHAT_BUS__NATS__SERVERS: server.url,
        CHAT_BUS__NATS__STREAM_PREFIX: uniquePrefix(),
        CHAT_BUS__NATS__RECONNECT_WAIT_MS: '100',
      },
    });
  });

  afterAll(async () => {
    await harness?.close();
    await server?.dispose();
  });

  it('answers 503 quickly during the outage, recovers without a restart, keeps what it acknowledged', async () => {
    const { call, alice, model } = harness;
    model.respond({ kind: 'stream', chunks: ['before'] });
    const session = await call('POST', '/v1/sessions', { key: alice.key, body: { title: 'kept' } });
    expect(session.status).toBe(201);
    const before = await call('POST', `/v1/sessions/${session.body.id}/messages`, {
      key: alice.key,
      body: { content: 'one' },
    });
    expect(before.status).toBe(200);

    await server.kill();
    // The nodes notice the lost connection within moments; from then on every call is refused at once.
    await until(
      async () => (await call('POST', '/v1/sessions', { key: alice.key, body: {} })).status === 503,
    );
    for (const [method, path, body] of [
      ['POST', '/v1/sessions', {}],
      ['GET', `/v1/sessions/${session.body.id}`, undefined],
      ['POST', `/v1/sessions/${session.body.id}/messages`, { content: 'during' }],
    ] as const) {
      const started = performance.now();
      const response = await call(method, path, { key: alice.key, ...(body === undefined ? {} : { body }) });
      const milliseconds = performance.now() - started;
      expect(response.status, `${method} ${path}`).toBe(503);
      expect(response.body.error.code).toBe('CHAT_ERR_BUS_UNAVAILABLE');
      // Refused, not left to hang until a request timeout (5 s here).
      expect(milliseconds).toBeLessThan(2000);
    }

    await server.start();
    await until(
      async () => (await call('POST', '/v1/sessions', { key: alice.key, body: {} })).status === 201,
    );
    model.respond({ kind: 'stream', chunks: ['after'] });
    const after = await call('POST', `/v1/sessions/${session.body.id}/messages`, {
      key: alice.key,
      body: { content: 'two' },
    });
    expect(after.status).toBe(200);
    const list = await call('GET', `/v1/sessions/${session.body.id}/messages`, { key: alice.key });
    expect(list.body.messages.map((message: { content: string }) => message.content)).toEqual([
      'one',
      'before',
      'two',
      'after',
    ]);
  });
});

async function until(condition: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
