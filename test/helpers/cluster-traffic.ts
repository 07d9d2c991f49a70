/**
 * Steady API traffic against running nodes, recording every answer, for fault tests: one loop per node,
 * one request at a time, cycling through "post a message in a session", "list a session's messages" and
 * "start a session". What the API acknowledged (a 2xx) is remembered, so a test can check afterwards that
 * every acknowledged write is still there.
 */

import type { ParleyNode } from './cluster.ts';

/** One answered (or failed) request. */
export interface TrafficSample {
  node: string;
  operation: 'send' | 'list' | 'start';
  /** HTTP status; 0 when no answer came at all (network failure or the per-call time limit). */
  status: number;
  /** `error.code` of the body, when there is one. */
  code?: string;
  /** Whether the error body had the documented shape `{ error: { code, message } }`. */
  errorShaped?: boolean;
  retryAfter?: string | null;
  /** Milliseconds until the whole answer was read. */
  milliseconds: number;
  /** When the request was sent (Date.now()). */
  sentAt: number;
}

/** A message turn the API acknowledged (200). */
export interface AcknowledgedTurn {
  sessionId: string;
  content: string;
  replyId: string;
}

/** Running traffic. */
export interface Traffic {
  readonly samples: TrafficSample[];
  readonly acknowledgedTurns: AcknowledgedTurn[];
  /** Sessions whose creation the API acknowledged (201). */
  readonly acknowledgedSessions: string[];
  /** Samples sent after `since`, optionally of one node. */
  after(since: number, node?: string): TrafficSample[];
  /** Stops the loops and waits for the requests in flight. */
  stop(): Promise<void>;
}

/** Options of `startTraffic`. */
export interface TrafficOptions {
  nodes: ParleyNode[];
  key: string;
  /** Sessions to post into at first (more are added as `start` requests succeed). */
  sessionIds: string[];
  /** A request without a whole answer by then counts as hung (status 0). */
  callTimeoutMs: number;
  /** Pause between two requests of one loop. */
  pauseMs?: number;
}

/** Starts one request loop per node. */
export function startTraffic(options: TrafficOptions): Traffic {
  const samples: TrafficSample[] = [];
  const acknowledgedTurns: AcknowledgedTurn[] = [];
  const acknowledgedSessions: string[] = [];
  const sessions = [...options.sessionIds];
  let running = true;
  let counter = 0;

  async function loop(node: ParleyNode): Promise<void> {
    for (let step = 0; running; step++) {
      const operation = (['send', 'list', 'send', 'start'] as const)[step % 4] as TrafficSample['operation'];
      const sessionId = sessions[(counter++ * 7) % sessions.length] as string;
      const content = `${node.name}-${counter}-${Date.now()}`;
      const sentAt = Date.now();
      const sample: TrafficSample = { node: node.name, operation, status: 0, milliseconds: 0, sentAt };
      try {
        const call =
          operation === 'send'
            ? node.call('POST', `/v1/sessions/${sessionId}/messages`, {
                key: options.key,
                body: { content },
                timeoutMs: options.callTimeoutMs,
              })
            : operation === 'list'
              ? node.call('GET', `/v1/sessions/${sessionId}/messages`, {
                  key: options.key,
                  timeoutMs: options.callTimeoutMs,
                })
              : node.call('POST', '/v1/sessions', {
                  key: options.key,
                  body: { title: content },
                  timeoutMs: options.callTimeoutMs,
                });
        const result = await call;
        sample.status = result.status;
        sample.milliseconds = result.milliseconds;
        if (result.status >= 400) {
          const error = result.body?.error;
          sample.code = error?.code;
          sample.errorShaped = typeof error?.code === 'string' && typeof error?.message === 'string';
          sample.retryAfter = result.headers.get('retry-after');
        } else if (operation === 'send') {
          acknowledgedTurns.push({ sessionId, content, replyId: result.body.id });
        } else if (operation === 'start') {
          acknowledgedSessions.push(result.body.id);
          sessions.push(result.body.id);
        }
      } catch {
        sample.milliseconds = Date.now() - sentAt;
      }
      samples.push(sample);
      if (options.pauseMs !== undefined) await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
    }
  }

  const loops = options.nodes.map((node) => loop(node));
  return {
    samples,
    acknowledgedTurns,
    acknowledgedSessions,
    after: (since, node) =>
      samples.filter((sample) => sample.sentAt >= since && (node === undefined || sample.node === node)),
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** The median and the largest of some numbers (0 for none). */
export function medianAndMax(values: number[]): { median: number; max: number } {
  if (values.length === 0) return { median: 0, max: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)] as number, max: sorted.at(-1) as number };
}
