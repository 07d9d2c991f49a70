/**
 * Outgoing webhooks past a stop: a delivery whose receiver is down when its node stops — cleanly
 * (SIGTERM) or by a crash (SIGKILL) — is delivered by the next node on the same storage once the receiver
 * is back, with the same `webhook-id`, resuming at the attempt it had reached. Real `parley serve`
 * processes and a real HTTP receiver.
 */

import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { killAllNodes, type ParleyNode, startNode, waitFor } from '../helpers/cluster.ts';

const SECRET = 'whsec-test-0123456789abcdef';
const LEASE_MS = 1500;

interface Received {
  webhookId: string;
  type: string;
  sessionId: string | undefined;
}

/** A receiver that answers 503 while `down`, 200 otherwise. */
async function startReceiver() {
  const received: Received[] = [];
  const state = { down: true };
  const server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      const event = JSON.parse(body);
      received.push({
        webhookId: String(request.headers['webhook-id']),
        type: event.type,
        sessionId: event.data?.sessionId,
      });
      response.writeHead(state.down ? 503 : 200).end();
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
let dataDir: string;

beforeAll(async () => {
  receiver = await startReceiver();
});

afterEach(async () => {
  await killAllNodes();
  await rm(dataDir, { recursive: true, force: true });
});

afterAll(async () => {
  await receiver?.close();
});

function nodeOn(name: string): Promise<ParleyNode> {
  return startNode({
    name,
    env: {
      CHAT_DATA_DIR: dataDir,
      CHAT_WEBHOOKS: JSON.stringify({
        endpoints: { crm: { url: receiver.url, events: ['session.deleted'], secret: SECRET } },
        timeout_ms: 1000,
        // The second attempt is due well after the stop, so only the next node can make it.
        retry: { max_attempts: 5, initial_delay_ms: 4000, max_delay_ms: 4000 },
        outbox_lease_ms: LEASE_MS,
      }),
    },
  });
}

/** Creates and deletes a session on `node` (its `session.deleted` goes to the receiver); its id. */
async function deleteASession(node: ParleyNode): Promise<string> {
  const key = node.bootstrapKey as string;
  const created = await node.call('POST', '/v1/sessions', { key, body: {} });
  expect(created.status).toBe(201);
  expect((await node.call('DELETE', `/v1/sessions/${created.body.id}`, { key })).status).toBe(204);
  return created.body.id;
}

async function deliveryLog(): Promise<Record<string, unknown>[]> {
  const folder = join(dataDir, 'webhooks', 'deliveries');
  const lines: Record<string, unknown>[] = [];
  for (const file of await readdir(folder).catch(() => [] as string[])) {
    for (const line of (await readFile(join(folder, file), 'utf8')).split('\n')) {
      if (line !== '') lines.push(JSON.parse(line));
    }
  }
  return lines;
}

/** Whether an outbox log holds the note of a retry due. */
async function retryNoted(): Promise<boolean> {
  const folder = join(dataDir, 'webhooks', 'outbox');
  for (const file of await readdir(folder).catch(() => [] as string[])) {
    if (file.endsWith('.jsonl') && (await readFile(join(folder, file), 'utf8')).includes('"op":"retry"'))
      return true;
  }
  return false;
}

describe('webhook deliveries past a stop', () => {
  for (const [how, signal] of [
    ['a clean stop', 'SIGTERM'],
    ['a crash', 'SIGKILL'],
  ] as const) {
    it(`are delivered by the next node after ${how}`, async () => {
      dataDir = await mkdtemp(join(tmpdir(), 'parley-webhooks-restart-'));
      receiver.state.down = true;
      const first = await nodeOn('first');
      const sessionId = await deleteASession(first);
      const forSession = () => receiver.received.filter((item) => item.sessionId === sessionId);
      await waitFor(() => forSession().length === 1, 'the first attempt (answered 503)');
      // Stopped once the failed attempt is on disk: its delivery-log line and the outbox's note of the
      // retry due (a kill before them would make the next node start from attempt 1 — correct, but another
      // story than this test's).
      await waitFor(
        async () => (await deliveryLog()).some((line) => line.outcome === 'retrying') && (await retryNoted()),
        'the failed attempt recorded',
      );
      await first.kill(signal);

      receiver.state.down = false;
      const second = await nodeOn('second');
      await waitFor(() => forSession().length === 2, 'the delivery by the next node', 20_000);
      const [failed, delivered] = forSession() as [Received, Received];
      expect(delivered).toEqual(failed); // the same event, the same webhook-id: a receiver deduplicates
      const logged = async () => (await deliveryLog()).filter((line) => line.eventId === failed.webhookId);
      await waitFor(async () => (await logged()).length === 2, 'the second attempt in the delivery log');
      expect((await logged()).map((line) => [line.attempt, line.outcome, line.status])).toEqual([
        [1, 'retrying', 503],
        [2, 'delivered', 200],
      ]);
      // Settled: nothing is left for a later node to send again.
      await waitFor(
        async () =>
          (await readdir(join(dataDir, 'webhooks', 'outbox'))).every((file) => file.endsWith('.alive')),
        'the outbox emptied',
      );
      await second.kill('SIGTERM');
      expect(forSession()).toHaveLength(2);
    }, 60_000);
  }
});
