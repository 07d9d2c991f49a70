/**
 * One event to one endpoint: the event as a CloudEvents 1.0 JSON document, signed the Standard Webhooks
 * way (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of
 * "{id}.{timestamp}.{body}">`, https://www.standardwebhooks.com), POSTed, and tried again with exponential
 * backoff while the receiver is unreachable, slow, rate-limiting (429, honouring Retry-After) or failing
 * (5xx). Another answer (a 4xx) is final: sending the same again would get the same.
 */

import type { EventEnvelope } from '../../core/events.ts';
import { signWebhook } from '../../security/webhook-signature.ts';

/** An endpoint as configured (`webhooks.endpoints.<name>`). */
export interface Endpoint {
  name: string;
  url: string;
  events: string[];
  secret: string;
}

export interface RetrySettings {
  max_attempts: number;
  initial_delay_ms: number;
  max_delay_ms: number;
}

/** What one attempt came to, as the delivery log records it. */
export interface AttemptRecord {
  time: string;
  endpoint: string;
  eventId: string;
  type: string;
  attempt: number;
  outcome: 'delivered' | 'retrying' | 'failed';
  /** The receiver's HTTP status, when it answered. */
  status?: number;
  error?: string;
  ms: number;
}

/** The CloudEvents 1.0 structured-mode JSON of an event. */
export function cloudEventOf(envelope: EventEnvelope): Record<string, unknown> {
  return {
    specversion: '1.0',
    id: envelope.id,
    type: envelope.type,
    source: `parley/${envelope.source}`,
    time: envelope.time,
    datacontenttype: 'application/json',
    ...(envelope.sessionId === undefined ? {} : { subject: envelope.sessionId }),
    // An extension attribute (lower-case letters and digits only, per the spec): whose event it is.
    ...(envelope.userId === undefined ? {} : { parleyuserid: envelope.userId }),
    data: envelope.data,
  };
}

/** Whether an answer (or none) is worth another attempt. */
function retryable(status: number | undefined): boolean {
  return status === undefined || status === 408 || status === 429 || status >= 500;
}

/** The wait before attempt `attempt + 1`: doubling from the initial delay, capped, with ±20 % jitter. */
export function backoffMs(attempt: number, settings: RetrySettings, retryAfterSeconds?: number): number {
  if (retryAfterSeconds !== undefined && retryAfterSeconds >= 0) {
    return Math.min(retryAfterSeconds * 1000, settings.max_delay_ms);
  }
  const base = Math.min(settings.initial_delay_ms * 2 ** (attempt - 1), settings.max_delay_ms);
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

export interface DeliveryOptions {
  timeoutMs: number;
  retry: RetrySettings;
  /** Told of every attempt (the delivery log). */
  record(attempt: AttemptRecord): void;
  /** Schedules the next attempt (a timer the module can cancel when it stops). */
  later(ms: number, next: () => void): void;
  /**
   * Told, before it is scheduled, that attempt `attempt` is due at `dueAt` (Unix ms): the outbox. Must not
   * reject (a failure to record it is the caller's to log; the attempt is made anyway).
   */
  scheduled?(attempt: number, dueAt: number): Promise<void>;
}

/** Where a delivery starts: a new one at attempt 1 now; one resumed after a restart where it was. */
export interface DeliveryStart {
  attempt: number;
  /** Unix ms; now or earlier: at once. */
  dueAt: number;
}

/** Delivers `envelope` to `endpoint`, retrying as above; resolves once it was delivered or given up. */
export function deliver(
  envelope: EventEnvelope,
  endpoint: Endpoint,
  options: DeliveryOptions,
  start: DeliveryStart = { attempt: 1, dueAt: 0 },
): Promise<void> {
  const body = JSON.stringify(cloudEventOf(envelope));
  return new Promise((resolve) => {
    const attempt = async (number: number): Promise<void> => {
      const started = performance.now();
      const timestamp = Math.floor(Date.now() / 1000);
      let status: number | undefined;
      let error: string | undefined;
      let retryAfter: number | undefined;
      try {
        const response = await fetch(endpoint.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/cloudevents+json; charset=utf-8',
            'user-agent': 'parley-webhooks',
            'webhook-id': envelope.id,
            'webhook-timestamp': String(timestamp),
            'webhook-signature': signWebhook(endpoint.secret, envelope.id, timestamp, body),
          },
          body,
          signal: AbortSignal.timeout(options.timeoutMs),
          redirect: 'manual',
        });
        status = response.status;
        const header = response.headers.get('retry-after');
        if (header !== null && /^\d+$/.test(header)) retryAfter = Number(header);
        await response.body?.cancel().catch(() => {});
      } catch (caught) {
        error =
          (caught as Error).name === 'TimeoutError'
            ? `no answer within ${options.timeoutMs} ms`
            : String((caught as Error).message ?? caught);
      }
      const delivered = status !== undefined && status >= 200 && status < 300;
      const again = !delivered && retryable(status) && number < options.retry.max_attempts;
      options.record({
        time: new Date().toISOString(),
        endpoint: endpoint.name,
        eventId: envelope.id,
        type: envelope.type,
        attempt: number,
        outcome: delivered ? 'delivered' : again ? 'retrying' : 'failed',
        ...(status === undefined ? {} : { status }),
        ...(error === undefined ? {} : { error }),
        ms: Math.round(performance.now() - started),
      });
      if (!again) return resolve();
      const waitMs = backoffMs(number, options.retry, retryAfter);
      // Recorded before it waits: a restart during the wait resumes it at its time, not from the start.
      await options.scheduled?.(number + 1, Date.now() + waitMs);
      options.later(waitMs, () => void attempt(number + 1));
    };
    const waitMs = start.dueAt - Date.now();
    if (waitMs > 0) options.later(waitMs, () => void attempt(start.attempt));
    else void attempt(start.attempt);
  });
}
