/**
 * The webhooks outbox: every delivery a node has taken on and not yet settled (delivered or given up),
 * kept in storage so a stop or a crash loses none of them.
 *
 * Each node (process) writes its own log, `outbox/{node}.jsonl` — `queued` when it takes an event for an
 * endpoint (durable before the event's handler returns, so before the bus counts the event handled),
 * `retry` when an attempt failed and another is due, `settled` when delivered or given up — and keeps
 * `outbox/{node}.alive` fresh (the time, every `leaseMs / 3`). A log whose node is gone is an orphan: its
 * `.alive` was removed (a clean stop) or is older than `leaseMs` (a crash). Any node that finds one claims
 * it: its unsettled deliveries move to the claimer's log, which resumes them where they were (attempt
 * number, due time), and the orphan's files are removed. Two nodes claiming the same orphan at once both
 * deliver its events: delivery is at least once, and a receiver deduplicates by `webhook-id`.
 */

import type { EventEnvelope } from '../../core/events.ts';
import type { ModuleStorage } from '../../core/module.ts';
import { appendJsonLine, encodeJsonLine, readJsonLines } from '../../storage/json-lines.ts';

/** One event on its way to one endpoint, as far as it got. */
export interface PendingDelivery {
  envelope: EventEnvelope;
  endpoint: string;
  /** The attempt due next (1: none made yet). */
  attempt: number;
  /** When it is due (Unix ms). */
  dueAt: number;
}

/** A line of an outbox log. */
type OutboxLine =
  | ({ op: 'queued' } & PendingDelivery)
  | { op: 'retry'; key: string; attempt: number; dueAt: number }
  | { op: 'settled'; key: string };

export interface Outbox {
  /** Records a delivery taken on; resolves once it is durable. */
  queue(delivery: PendingDelivery): Promise<void>;
  /** Records that `delivery`'s attempt `attempt` is due at `dueAt`. */
  retry(delivery: PendingDelivery, attempt: number, dueAt: number): Promise<void>;
  /** Records that `delivery` is delivered or given up. */
  settle(delivery: PendingDelivery): Promise<void>;
  /** Claims the logs of nodes that are gone; resolves with their unsettled deliveries, now this node's. */
  claimOrphans(): Promise<PendingDelivery[]>;
  /** Marks this node alive (call every `leaseMs / 3`). */
  heartbeat(): Promise<void>;
  /** A clean stop: this node's unsettled deliveries are left for the next node to claim at once. */
  release(): Promise<void>;
  /** Deliveries taken on and not settled. */
  size(): number;
}

export interface OutboxOptions {
  storage: ModuleStorage;
  /** This process's name in the outbox (unique per process). */
  node: string;
  /** How long a node's `.alive` may go unrefreshed before its log counts as orphaned. */
  leaseMs: number;
  now?: () => number;
}

/** Settled lines after which a node's log is rewritten with only what is still pending. */
const COMPACT_AFTER_SETTLED = 1000;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The outbox key of one delivery: the event, then the endpoint (an event may go to several). */
export function deliveryKey(delivery: Pick<PendingDelivery, 'envelope' | 'endpoint'>): string {
  return `${delivery.envelope.id}/${delivery.endpoint}`;
}

/** The unsettled deliveries a log's lines leave, in the order they were queued. */
function unsettled(lines: readonly OutboxLine[]): PendingDelivery[] {
  const pending = new Map<string, PendingDelivery>();
  for (const line of lines) {
    if (line.op === 'queued') {
      const { op: _op, ...delivery } = line;
      pending.set(deliveryKey(delivery), delivery);
    } else if (line.op === 'retry') {
      const delivery = pending.get(line.key);
      if (delivery !== undefined)
        pending.set(line.key, { ...delivery, attempt: line.attempt, dueAt: line.dueAt });
    } else {
      pending.delete(line.key);
    }
  }
  return [...pending.values()];
}

export function createOutbox(options: OutboxOptions): Outbox {
  const { storage, node, leaseMs } = options;
  const now = options.now ?? Date.now;
  const logKey = `outbox/${node}.jsonl`;
  const aliveKey = `outbox/${node}.alive`;
  const pending = new Map<string, PendingDelivery>();
  let settledSinceCompaction = 0;
  // Appends wait while the log is rewritten, so none lands in the file being replaced.
  let compacting: Promise<void> | undefined;

  async function append(line: OutboxLine): Promise<void> {
    while (compacting !== undefined) await compacting;
    await appendJsonLine(storage, logKey, line);
  }

  /** Rewrites the log with only the pending deliveries (or removes it when none are). */
  async function compact(): Promise<void> {
    settledSinceCompaction = 0;
    const lines = [...pending.values()].map((delivery) => encodeJsonLine({ op: 'queued', ...delivery }));
    const bytes = new Uint8Array(lines.reduce((total, line) => total + line.length, 0));
    let offset = 0;
    for (const line of lines) {
      bytes.set(line, offset);
      offset += line.length;
    }
    if (bytes.length === 0) await storage.delete(logKey);
    else await storage.write(logKey, bytes);
  }

  function startCompaction(): void {
    if (compacting !== undefined) return;
    compacting = compact()
      .catch(() => {
        // Left as it was: the log stays longer, nothing is lost; the next settle tries again.
      })
      .finally(() => {
        compacting = undefined;
      });
  }

  /** Whether the node that owns `.alive` bytes `alive` (undefined: none) is gone. */
  function gone(alive: Uint8Array | undefined): boolean {
    if (alive === undefined) return true;
    const time = Number(decoder.decode(alive));
    return !Number.isFinite(time) || now() - time > leaseMs;
  }

  async function queue(delivery: PendingDelivery): Promise<void> {
    pending.set(deliveryKey(delivery), delivery);
    await append({ op: 'queued', ...delivery });
  }

  return {
    size: () => pending.size,
    queue,
    async retry(delivery, attempt, dueAt) {
      const key = deliveryKey(delivery);
      if (pending.has(key)) pending.set(key, { ...delivery, attempt, dueAt });
      await append({ op: 'retry', key, attempt, dueAt });
    },
    async settle(delivery) {
      const key = deliveryKey(delivery);
      pending.delete(key);
      settledSinceCompaction += 1;
      // Nothing pending, or many settled lines: the log is rewritten small (a line for what is pending).
      if (pending.size === 0 || settledSinceCompaction >= COMPACT_AFTER_SETTLED) {
        while (compacting !== undefined) await compacting;
        startCompaction();
        await compacting;
        return;
      }
      await append({ op: 'settled', key });
    },
    async claimOrphans() {
      const claimed: PendingDelivery[] = [];
      const nodes = new Set<string>();
      for (const key of await storage.list('outbox/')) {
        const match = /^outbox\/(.+)\.(jsonl|alive)$/.exec(key);
        if (match?.[1] !== undefined && match[1] !== node) nodes.add(match[1]);
      }
      for (const other of nodes) {
        const otherLog = `outbox/${other}.jsonl`;
        const otherAlive = `outbox/${other}.alive`;
        if (!gone(await storage.read(otherAlive))) continue;
        const deliveries = unsettled(await readJsonLines<OutboxLine>(storage, otherLog));
        // Ours before theirs is removed: a crash in between delivers them twice, never not at all.
        for (const delivery of deliveries) {
          if (pending.has(deliveryKey(delivery))) continue;
          await queue(delivery);
          claimed.push(delivery);
        }
        // A crashed node with nothing pending leaves only its heartbeat: removed too.
        await storage.delete(otherLog);
        await storage.delete(otherAlive);
      }
      return claimed;
    },
    async heartbeat() {
      await storage.write(aliveKey, encoder.encode(String(now())));
    },
    async release() {
      while (compacting !== undefined) await compacting;
      await storage.delete(aliveKey);
    },
  };
}
