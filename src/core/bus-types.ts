import type { PlatformErrorJSON } from './errors.ts';
import type { EnvelopeOptions, EventData, EventEnvelope } from './events.ts';

/**
 * The bus's public contract: the seed's four communication patterns (broadcast, request-response,
 * pipeline, aggregation), the same on one node or many. `core/bus.ts` implements it over a BusTransport.
 */

/** Handles one event; what it returns is the reply when the event came through `request`/`gather`. */
export type EventHandler<T = unknown> = (event: EventEnvelope<T>) => unknown;

/**
 * `work`: a module's handler. Across nodes one instance of the group handles each event, at least once,
 * acknowledged after the handler resolves, deduplicated by event id. `local`: a listener that sees every
 * event on this node (an open SSE stream, say).
 */
export type SubscriptionMode = 'work' | 'local';

export interface SubscribeOptions {
  /** Unsubscribes when aborted. */
  signal?: AbortSignal;
  /** Default `local`. */
  mode?: SubscriptionMode;
  /** The work group (normally the module name); one handler per group gets each event. Default `default`. */
  group?: string;
}

export interface RequestOptions extends EnvelopeOptions {
  /** Milliseconds to wait for the first reply; default from config (`bus.request_timeout_ms`). */
  timeout?: number;
  signal?: AbortSignal;
}

export interface GatherOptions extends EnvelopeOptions {
  /** Milliseconds to wait for replies; what came by then is returned. */
  timeout?: number;
  /** Stop waiting once this many replies came. */
  expected?: number;
  signal?: AbortSignal;
}

/** One responder's reply in a `gather`. */
export interface GatherReply<R = unknown> {
  /** Who answered (the handler's group, i.e. the module name). */
  responder: string;
  data: R;
}

/** What `gather` collected. */
export interface GatherResult<R = unknown> {
  replies: GatherReply<R>[];
  /** Responders that failed (threw), with their error message and code. */
  failed: { responder: string; error: string; code: string }[];
  /**
   * True when the timeout ended the gathering: fewer than `expected` replies had come (or, without
   * `expected`, some responder had not answered yet).
   */
  timedOut: boolean;
  /** Subscribed responders that had not answered when gathering stopped (late or missing). */
  missing: string[];
}

export interface PipelineOptions extends EnvelopeOptions {
  /** Milliseconds each stage may take. */
  timeout?: number;
  signal?: AbortSignal;
}

/** Payload of `bus.handler.error`, emitted when a handler throws (never for a failing handler of it). */
export interface BusHandlerErrorEvent {
  /** The type of the event whose handler failed. */
  type: string;
  /** The failing handler's group (the module name). */
  group: string;
  eventId: string;
  error: PlatformErrorJSON;
}

declare module './events.ts' {
  interface EventMap {
    'bus.handler.error': BusHandlerErrorEvent;
  }
}

/** Where the bus logs failing handlers; pino's `logger.error(object, message)` fits. */
export interface BusLogger {
  error(object: Record<string, unknown>, message: string): void;
  debug(object: Record<string, unknown>, message: string): void;
}

/** Counters and timings the bus reports; every method is optional (prom-client adapters live elsewhere). */
export interface BusMetrics {
  /** One event was emitted. */
  eventEmitted?(type: string): void;
  /** A handler finished (successfully or not) after `seconds`; handlers are timed only when this is set. */
  handlerCompleted?(type: string, group: string, seconds: number): void;
  /** A handler threw. */
  handlerError?(type: string, group: string): void;
}

/**
 * Traces what the bus carries (observability/tracing.ts implements it with OpenTelemetry): each handler
 * runs in a span that continues the trace its envelope names, and an event emitted from inside carries
 * that span on — so one chat turn is one trace across modules and nodes.
 */
export interface BusTracing {
  /** The W3C `traceparent` of the span active here, for an envelope that names none. */
  currentTraceparent(): string | undefined;
  /** Runs `handler` inside a span continuing `envelope.traceparent`, ended once what it returns settles. */
  runHandler(envelope: EventEnvelope, group: string, handler: () => unknown): unknown;
}

/** The message bus. */
export interface Bus {
  /**
   * Broadcasts an event to every subscriber of its type (and matching wildcards). Resolves once the
   * transport accepted it: in-process, after every handler settled; over NATS, once JetStream stored it.
   * Never rejects because a handler failed; rejects with ValidationError for a malformed type and with
   * CHAT_ERR_BUS_CLOSED after `close()`.
   */
  emit<K extends string>(type: K, data: EventData<K>, options?: EnvelopeOptions): Promise<void>;
  /**
   * Subscribes to a type or pattern: `chat.*` matches one segment, `chat.>` one or more. Returns the
   * unsubscribe function. A handler that throws never stops the others: its error is logged, counted and
   * emitted as `bus.handler.error`.
   */
  on<K extends string>(
    pattern: K,
    handler: EventHandler<EventData<K>>,
    options?: SubscribeOptions,
  ): () => void;
  /** Sends to one handler and resolves with its reply; TimeoutError or NoHandlerError otherwise. */
  request<R = unknown, K extends string = string>(
    type: K,
    data: EventData<K>,
    options?: RequestOptions,
  ): Promise<R>;
  /** Sends to every handler and collects replies until `expected` arrived or the timeout passed. */
  gather<R = unknown, K extends string = string>(
    type: K,
    data: EventData<K>,
    options?: GatherOptions,
  ): Promise<GatherResult<R>>;
  /** Runs named stages in order, each a handler of `pipeline.stage.<name>`; each gets the previous output. */
  pipeline<R = unknown>(stages: string[], data: unknown, options?: PipelineOptions): Promise<R>;
  /** Stops accepting events, waits for in-flight handlers, closes the transport. */
  close(): Promise<void>;
  /** Whether the bus can carry events now (open, and its transport connected); for `/readyz`. */
  health?(): BusHealth;
}

/** What `Bus.health()` reports. */
export interface BusHealth {
  healthy: boolean;
  /** The transport's name (`local`, `nats`). */
  transport: string;
  /** Why it is unhealthy, in a few words. */
  message?: string;
}
