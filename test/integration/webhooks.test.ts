/**
 * Outgoing webhooks end to end: a chat turn's `chat.response` reaches a real HTTP receiver as a signed
 * CloudEvent (the signature checked the way a receiver would), a receiver that fails for a while gets the
 * event again until it takes it, one that refuses it (4xx) is not asked again, every attempt is in the
 * delivery log, and a slow receiver never holds up the chat.
 */

import { createHmac } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/cluster.ts';
import { type HttpHarness, startHttpHarness } from './http-harness.ts';

const SECRET = 'whsec-test-0123456789abcdef';

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A webhook receiver: answers each request with the next status of `script` (then 200), after `delayMs`. */
async function startReceiver() {
  const received: Received[] = [];
  const state = { script: [] as number[], delayMs: 0 };
  const server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      received.push({ headers: request.headers, body });
      setTimeout(() => response.writeHead(state.script.shift() ?? 200).end(), state.delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    state,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

let receiver: Awaited<ReturnType<typeof startReceiver>>;
let harness: HttpHarness;

beforeAll(async () => {
  receiver = await startReceiver();
  harness = await startHttpHarness({
    env: {
      CHAT_WEBHOOKS: JSON.stringify({
        endpoints: {
          crm: {
            url: receiver.url,
            events: ['chat.response', 'session.*', 'session.deleted'],
            secret: SECRET,
          },
        },
        timeout_ms: 1000,
        retry: { max_attempts: 3, initial_delay_ms: 20, max_delay_ms: 100 },
      }),
    },
  });
});

afterAll(async () => {
  await harness?.close();
  await receiver?.close();
});

/** One chat turn; resolves with the session and reply ids. */
async function chatTurn(content: string): Promise<{ sessionId: string; messageId: string }> {
  const { call, alice, model } = harness;
  model.respond({ kind: 'stream', chunks: ['Hi', ' there'] });
  const sessionId = (await call('POST', '/v1/sessions', { key: alice.key, body: {} })).body.id;
  const reply = await call('POST', `/v1/sessions/${sessionId}/messages`, {
    key: alice.key,
    body: { content },
  });
  expect(reply.status).toBe(200);
  return { sessionId, messageId: reply.body.id };
}

function responsesFor(messageId: string): Received[] {
  return receiver.received.filter((request) => JSON.parse(request.body).data?.messageId === messageId);
}

async function deliveryLog(): Promise<Record<string, unknown>[]> {
  const folder = join(harness.dataDir, 'webhooks', 'deliveries');
  const lines: Record<string, unknown>[] = [];
  for (const file of await readdir(folder)) {
    for (const line of (await readFile(join(folder, file), 'utf8')).split('\n')) {
      if (line !== '') lines.push(JSON.parse(line));
    }
  }
  return lines;
}

describe('outgoing webhooks', () => {
  it('delivers a turn’s chat.response once, as a CloudEvent the receiver can verify', async () => {
    const { sessionId, messageId } = await chatTurn('hello webhooks');
    await waitFor(() => responsesFor(messageId).length > 0, 'the delivery');
    const [delivery] = responsesFor(messageId);
    const { headers, body } = delivery as Received;
    expect(headers['content-type']).toContain('application/cloudevents+json');
    const event = JSON.parse(body);
    expect(event).toMatchObject({
      specversion: '1.0',
      type: 'chat.response',
      subject: sessionId,
      parleyuserid: harness.alice.id,
      data: { sessionId, messageId, content: 'Hi there' },
    });
    // What a receiver does with the Standard Webhooks headers: recompute the signature over id, time, body.
    expect(headers['webhook-id']).toBe(event.id);
    const expected = createHmac('sha256', SECRET)
      .update(`${headers['webhook-id']}.${headers['webhook-timestamp']}.${body}`)
      .digest('base64');
    expect(headers['webhook-signature']).toBe(`v1,${expected}`);
    expect(Math.abs(Number(headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(60);

    // session.deleted matches two of the endpoint's patterns (session.*, session.deleted): it goes out once.
    expect(
      (await harness.call('DELETE', `/v1/sessions/${sessionId}`, { key: harness.alice.key })).status,
    ).toBe(204);
    const deleted = () =>
      receiver.received.filter((request) => {
        const parsed = JSON.parse(request.body);
        return parsed.type === 'session.deleted' && parsed.data?.sessionId === sessionId;
      });
    await waitFor(() => deleted().length > 0, 'the session.deleted delivery');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(deleted()).toHaveLength(1);
  });

  it('refuses at startup an endpoint asking for events the module may not read', async () => {
    await expect(
      startHttpHarness({
        env: {
          CHAT_WEBHOOKS: JSON.stringify({
            endpoints: { spy: { url: receiver.url, events: ['chat.*'], secret: SECRET } },
          }),
        },
      }),
    ).rejects.toThrow(/may not handle "chat\.\*": it lacks the "write_messages" capability/);
  });

  it('tries again while the receiver fails (503), and stops at once when it refuses (400)', async () => {
    receiver.state.script = [503, 503];
    const { messageId } = await chatTurn('retry me');
    await waitFor(() => responsesFor(messageId).length === 3, 'three attempts');
    const eventId = JSON.parse((responsesFor(messageId)[0] as Received).body).id;
    await waitFor(
      async () => (await deliveryLog()).filter((line) => line.eventId === eventId).length === 3,
      'the log of three attempts',
    );
    const logged = (await deliveryLog()).filter((line) => line.eventId === eventId);
    expect(logged.map((line) => [line.attempt, line.outcome, line.status])).toEqual([
      [1, 'retrying', 503],
      [2, 'retrying', 503],
      [3, 'delivered', 200],
    ]);
    // The same event id each time: a receiver deduplicates by webhook-id.
    expect(new Set(responsesFor(messageId).map((request) => request.headers['webhook-id'])).size).toBe(1);

    receiver.state.script = [400];
    const refused = await chatTurn('refuse me');
    await waitFor(() => responsesFor(refused.messageId).length === 1, 'the refused attempt');
    const refusedId = JSON.parse((responsesFor(refused.messageId)[0] as Received).body).id;
    await waitFor(
      async () => (await deliveryLog()).some((line) => line.eventId === refusedId),
      'its log line',
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(responsesFor(refused.messageId)).toHaveLength(1);
    expect((await deliveryLog()).filter((line) => line.eventId === refusedId)).toEqual([
      expect.objectContaining({ attempt: 1, outcome: 'failed', status: 400 }),
    ]);
  });

  it('never holds up a chat turn, however slow the receiver', async () => {
    receiver.state.delayMs = 800;
    try {
      const started = Date.now();
      const { messageId } = await chatTurn('quick, please');
      expect(Date.now() - started).toBeLessThan(500);
      await waitFor(() => responsesFor(messageId).length === 1, 'the slow delivery');
    } finally {
      receiver.state.delayMs = 0;
    }
  });
});
