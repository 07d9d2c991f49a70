import { newId } from './ids.ts';

/**
 * The payload type of every event, by event type. Empty here: each module adds its own events by
 * declaration merging, so `emit('chat.message', data)` is type-checked against what the module declared.
 *
 * ```ts
 * declare module '../../core/events.ts' {
 *   interface EventMap { 'user.status_changed': { userId: string; status: string } }
 * }
 * ```
 */
// biome-ignore lint/suspicious/noEmptyInterface: extended by declaration merging
export interface EventMap {}

/** A known event type, or any other dotted string (payload then untyped). */
export type EventType = keyof EventMap | (string & {});

/** The payload type of an event type: declared ones are checked, others are `unknown`. */
export type EventData<K extends string> = K extends keyof EventMap ? EventMap[K] : unknown;

/**
 * Every event travels in this envelope. The attribute names are CloudEvents' (id, type, source, time,
 * data), so a webhook can send an envelope as a CloudEvent unchanged.
 */
export interface EventEnvelope<T = unknown> {
  id: string;
  type: string;
  source: string;
  time: string;
  data: T;
  userId?: string;
  sessionId?: string;
  /** W3C trace context, so one chat turn is one trace across modules and nodes. */
  traceparent?: string;
  /** Ties a reply (or a stream of deltas) to the event that caused it. */
  correlationId?: string;
  /** Where a reply should go (a transport-specific address, e.g. a NATS inbox). */
  replyTo?: string;
}

/** Envelope attributes a caller may set besides the type and data. */
export type EnvelopeOptions = Partial<Omit<EventEnvelope, 'type' | 'data'>>;

/** Event types are lowercase and dotted, noun before verb (`chat.message`, `user.status_changed`). */
export const EVENT_TYPE_PATTERN = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/;

// Formatting a Date costs about a microsecond; events come many per millisecond, so reuse the last one.
let lastTimeMillis = -1;
let lastTime = '';

/** The current time as ISO-8601, formatted at most once per millisecond (events, message timestamps). */
export function currentTime(): string {
  const now = Date.now();
  if (now !== lastTimeMillis) {
    lastTimeMillis = now;
    lastTime = new Date(now).toISOString();
  }
  return lastTime;
}

/** Builds an envelope with a fresh sortable id and the current time. */
export function createEnvelope<T>(type: string, data: T, options?: EnvelopeOptions): EventEnvelope<T> {
  const envelope: EventEnvelope<T> = {
    id: options?.id ?? newId(),
    type,
    source: options?.source ?? 'parley',
    time: options?.time ?? currentTime(),
    data,
  };
  // Only the attributes given are set: absent ones stay absent on the wire (exactOptionalPropertyTypes).
  if (options !== undefined) {
    if (options.userId !== undefined) envelope.userId = options.userId;
    if (options.sessionId !== undefined) envelope.sessionId = options.sessionId;
    if (options.traceparent !== undefined) envelope.traceparent = options.traceparent;
    if (options.correlationId !== undefined) envelope.correlationId = options.correlationId;
    if (options.replyTo !== undefined) envelope.replyTo = options.replyTo;
  }
  return envelope;
}
