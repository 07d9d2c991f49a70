import { randomUUID } from 'node:crypto';
import type { EventEnvelope } from '../../core/events.ts';
import { defineModule, type ModuleHandlers } from '../../core/module.ts';
import { createRecentIds, type RecentIds } from '../../core/recent-ids.ts';
import { appendJsonLine } from '../../storage/json-lines.ts';
import defaults from './config.json' with { type: 'json' };
import configSchema from './config.schema.json' with { type: 'json' };
import { type AttemptRecord, deliver, type Endpoint, type RetrySettings } from './delivery.ts';
import { createOutbox, type PendingDelivery } from './outbox.ts';

/** `webhooks` config. */
export interface WebhooksConfig {
  endpoints: Record<string, { url: string; events: string[]; secret: string; enabled?: boolean }>;
  timeout_ms: number;
  retry: RetrySettings;
  /** How long a stopped node's unsettled deliveries wait before another node (or its restart) takes them. */
  outbox_lease_ms: number;
}

/** Event ids remembered per endpoint, so an event matching two of its patterns goes out once. */
const RECENT_EVENTS = 10_000;

/**
 * Outgoing webhooks: the events an operator names (`webhooks.endpoints.<name>.events`) are POSTed to that
 * endpoint as CloudEvents, signed (Standard Webhooks), retried with backoff, each attempt written to the
 * delivery log (`webhooks/deliveries/{date}.jsonl`). Deliveries run beside the platform's work, never in
 * its way: an event's emitter does not wait for a receiver.
 */
export default defineModule<WebhooksConfig>({
  info: { name: 'webhooks', version: '1.0.0', capabilities: ['external_api_calls'], dependencies: [] },
  configSchema,
  defaults,
  async setup(ctx) {
    const config = ctx.config;
    const endpoints: Endpoint[] = Object.entries(config.endpoints)
      .filter(([, endpoint]) => endpoint.enabled !== false)
      .map(([name, endpoint]) => ({
        name,
        url: endpoint.url,
        events: endpoint.events,
        secret: endpoint.secret,
      }));
    if (endpoints.length === 0) return {};
    ctx.requireCapability('external_api_calls', 'deliver webhooks');

    const timers = new Set<NodeJS.Timeout>();
    const byName = new Map(endpoints.map((endpoint) => [endpoint.name, endpoint]));
    const outbox = createOutbox({
      storage: ctx.storage,
      node: randomUUID(),
      leaseMs: config.outbox_lease_ms,
    });
    const recent = new Map(endpoints.map((endpoint) => [endpoint.name, createRecentIds(RECENT_EVENTS)]));

    /** True the first time `endpoint` is handed event `id` (of the last RECENT_EVENTS). */
    function firstTime(endpoint: Endpoint, id: string): boolean {
      const seen = recent.get(endpoint.name) as RecentIds;
      if (seen.has(id)) return false;
      seen.add(id);
      return true;
    }

    function record(attempt: AttemptRecord): void {
      const level = attempt.outcome === 'failed' ? 'warn' : 'debug';
      ctx.log[level]({ ...attempt }, `webhook ${attempt.outcome}`);
      const key = `deliveries/${attempt.time.slice(0, 10)}.jsonl`;
      appendJsonLine(ctx.storage, key, attempt).catch((error: unknown) => {
        ctx.log.warn({ err: error }, 'webhooks: the delivery log could not be written');
      });
    }

    function later(ms: number, next: () => void): void {
      const timer = setTimeout(() => {
        timers.delete(timer);
        next();
      }, ms);
      timers.add(timer);
    }

    function outboxFailed(error: unknown, what: string): void {
      ctx.log.warn({ err: error }, `webhooks: the outbox could not record ${what}`);
    }

    /** Runs a delivery the outbox holds until it is delivered or given up, then settles it there. */
    function run(delivery: PendingDelivery, endpoint: Endpoint): void {
      const options = {
        timeoutMs: config.timeout_ms,
        retry: config.retry,
        record,
        later,
        scheduled: (attempt: number, dueAt: number) =>
          outbox.retry(delivery, attempt, dueAt).catch((error: unknown) => outboxFailed(error, 'a retry')),
      };
      void deliver(delivery.envelope, endpoint, options, delivery).then(() =>
        outbox.settle(delivery).catch((error: unknown) => outboxFailed(error, 'a settled delivery')),
      );
    }

    /** Takes over the deliveries of stopped nodes (this node's earlier runs too) and runs them. */
    async function claimOrphans(): Promise<void> {
      for (const delivery of await outbox.claimOrphans()) {
        const endpoint = byName.get(delivery.endpoint);
        if (endpoint !== undefined) {
          run(delivery, endpoint);
          continue;
        }
        // The endpoint was removed from config (or disabled) since: nowhere to send it.
        ctx.log.warn(
          { eventId: delivery.envelope.id, endpoint: delivery.endpoint },
          'webhooks: an unsettled delivery names an endpoint no longer configured; dropped',
        );
        await outbox.settle(delivery);
      }
    }

    const handlers: ModuleHandlers = {};
    for (const pattern of new Set(endpoints.flatMap((endpoint) => endpoint.events))) {
      const listening = endpoints.filter((endpoint) => endpoint.events.includes(pattern));
      handlers[pattern] = async (envelope: EventEnvelope) => {
        const taken = listening.filter((endpoint) => firstTime(endpoint, envelope.id));
        const deliveries = taken.map((endpoint) => ({
          envelope,
          endpoint: endpoint.name,
          attempt: 1,
          dueAt: 0,
        }));
        // Durable before the handler returns (the bus then counts the event handled): a crash from here on
        // leaves it in the outbox for the next node. The receiver is not waited for.
        await Promise.all(deliveries.map((delivery) => outbox.queue(delivery)));
        for (const [index, delivery] of deliveries.entries()) run(delivery, taken[index] as Endpoint);
      };
    }

    await outbox.heartbeat();
    await claimOrphans();
    // Kept alive while the node runs; and a stopped node's deliveries are looked for as often.
    const heartbeat = setInterval(
      () => {
        outbox
          .heartbeat()
          .then(claimOrphans)
          .catch((error: unknown) => ctx.log.warn({ err: error }, 'webhooks: outbox heartbeat failed'));
      },
      Math.max(1, Math.floor(config.outbox_lease_ms / 3)),
    );
    heartbeat.unref();

    return {
      handlers,
      health: () => ({ healthy: true }),
      async dispose() {
        clearInterval(heartbeat);
        // Retries not yet due stay in the outbox, released for the next node (or this one restarted).
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
        await outbox.release().catch((error: unknown) => outboxFailed(error, 'this node stopping'));
      },
    };
  },
});
