import type { EventEnvelope } from '../../core/events.ts';
import { defineModule, type ModuleHandlers } from '../../core/module.ts';
import { createRecentIds, type RecentIds } from '../../core/recent-ids.ts';
import { appendJsonLine } from '../../storage/json-lines.ts';
import defaults from './config.json' with { type: 'json' };
import configSchema from './config.schema.json' with { type: 'json' };
import { type AttemptRecord, deliver, type Endpoint, type RetrySettings } from './delivery.ts';

/** `webhooks` config. */
export interface WebhooksConfig {
  endpoints: Record<string, { url: string; events: string[]; secret: string; enabled?: boolean }>;
  timeout_ms: number;
  retry: RetrySettings;
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
  setup(ctx) {
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

    const options = {
      timeoutMs: config.timeout_ms,
      retry: config.retry,
      record,
      later(ms: number, next: () => void) {
        const timer = setTimeout(() => {
          timers.delete(timer);
          next();
        }, ms);
        timers.add(timer);
      },
    };

    const handlers: ModuleHandlers = {};
    for (const pattern of new Set(endpoints.flatMap((endpoint) => endpoint.events))) {
      const listening = endpoints.filter((endpoint) => endpoint.events.includes(pattern));
      handlers[pattern] = (envelope: EventEnvelope) => {
        for (const endpoint of listening) {
          // Not awaited: whoever emitted the event does not wait for a receiver.
          if (firstTime(endpoint, envelope.id)) void deliver(envelope, endpoint, options);
        }
      };
    }

    return {
      handlers,
      health: () => ({ healthy: true }),
      dispose() {
        // Retries not yet due are dropped with the process (README: at most once past a restart).
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
      },
    };
  },
});
