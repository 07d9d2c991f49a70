import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createEnvelope } from '../../core/events.ts';
import { createFlatfileStorage, type FlatfileStorage } from '../../storage/drivers/flatfile.ts';
import { scopeStorage } from '../../storage/scoped.ts';
import { createOutbox, type PendingDelivery } from './outbox.ts';

const LEASE_MS = 1000;
let directory: string;
let driver: FlatfileStorage;
let clock: number;

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'parley-outbox-'));
  driver = createFlatfileStorage({ root: directory });
  clock = 1_000_000;
});

afterEach(async () => {
  await driver.close();
  await rm(directory, { recursive: true, force: true });
});

/** A node's outbox over the webhooks module's storage (a fresh object each time: a restarted process). */
function outboxOf(node: string) {
  return createOutbox({
    storage: scopeStorage(driver, 'webhooks'),
    node,
    leaseMs: LEASE_MS,
    now: () => clock,
  });
}

function delivery(endpoint: string, content: string): PendingDelivery {
  const envelope = createEnvelope('chat.response', { content }, { userId: 'u1', sessionId: 's1' });
  return { envelope, endpoint, attempt: 1, dueAt: 0 };
}

async function outboxFiles(): Promise<string[]> {
  return (await readdir(join(directory, 'webhooks', 'outbox')).catch(() => [])).sort();
}

describe('webhooks outbox', () => {
  it('hands a stopped node’s unsettled deliveries, where they were, to the next node', async () => {
    const first = outboxOf('a');
    await first.heartbeat();
    const delivered = delivery('crm', 'delivered before the stop');
    const waiting = delivery('crm', 'waiting for its third attempt');
    const other = delivery('audit', 'never attempted');
    for (const item of [delivered, waiting, other]) await first.queue(item);
    await first.retry(waiting, 3, clock + 30_000);
    await first.settle(delivered);
    await first.release();

    const second = outboxOf('b');
    await second.heartbeat();
    const claimed = await second.claimOrphans();
    expect(claimed.map((item) => [item.envelope.data, item.endpoint, item.attempt, item.dueAt])).toEqual([
      [{ content: 'waiting for its third attempt' }, 'crm', 3, clock + 30_000],
      [{ content: 'never attempted' }, 'audit', 1, 0],
    ]);
    expect(claimed[0]?.envelope.id).toBe(waiting.envelope.id);
    // The orphan's files are gone; the claimer's log holds them now, and so survives its own crash.
    expect(await outboxFiles()).toEqual(['b.alive', 'b.jsonl']);
    expect(second.size()).toBe(2);
    const third = outboxOf('c');
    clock += LEASE_MS + 1; // b crashed: its heartbeat went stale
    expect((await third.claimOrphans()).map((item) => item.envelope.id)).toEqual(
      claimed.map((item) => item.envelope.id),
    );
  });

  it('leaves alone the log of a node that is alive, until its heartbeat is older than the lease', async () => {
    const live = outboxOf('live');
    await live.heartbeat();
    await live.queue(delivery('crm', 'in flight on a live node'));
    const other = outboxOf('other');
    expect(await other.claimOrphans()).toEqual([]);
    clock += LEASE_MS - 1;
    expect(await other.claimOrphans()).toEqual([]);
    clock += 2;
    expect(await other.claimOrphans()).toHaveLength(1);
    expect(await outboxFiles()).toEqual(['other.jsonl']);
  });

  it('clears the heartbeat a crashed node with nothing pending left behind', async () => {
    await outboxOf('crashed').heartbeat();
    clock += LEASE_MS + 1;
    const next = outboxOf('next');
    await next.heartbeat();
    expect(await next.claimOrphans()).toEqual([]);
    expect(await outboxFiles()).toEqual(['next.alive']);
  });

  it('removes its log once nothing is pending, and writes it small again after many settled', async () => {
    const outbox = outboxOf('n');
    const items = Array.from({ length: 3 }, (_, index) => delivery('crm', `event ${index}`));
    for (const item of items) await outbox.queue(item);
    await outbox.settle(items[0] as PendingDelivery);
    expect(await outboxFiles()).toEqual(['n.jsonl']);
    await outbox.settle(items[1] as PendingDelivery);
    await outbox.settle(items[2] as PendingDelivery);
    expect(await outboxFiles()).toEqual([]);

    // Under steady traffic something is always pending: the log is rewritten after 1,000 settled lines.
    const kept = delivery('crm', 'still pending');
    await outbox.queue(kept);
    for (let index = 0; index < 1000; index++) {
      const item = delivery('crm', `busy ${index}`);
      await outbox.queue(item);
      await outbox.settle(item);
    }
    const lines = new TextDecoder()
      .decode(await driver.read('webhooks/outbox/n.jsonl'))
      .trim()
      .split('\n');
    expect(lines.length).toBeLessThan(10);
    await outbox.release();
    const next = outboxOf('next');
    expect((await next.claimOrphans()).map((item) => item.envelope.id)).toEqual([kept.envelope.id]);
  });
});
