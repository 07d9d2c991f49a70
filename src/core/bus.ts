import type {
  Bus,
  BusLogger,
  BusMetrics,
  BusTracing,
  EventHandler,
  GatherOptions,
  GatherResult,
  PipelineOptions,
  RequestOptions,
  SubscribeOptions,
} from './bus-types.ts';
import { errorFromJSON, PlatformError, toPlatformError } from './errors.ts';
import { createEnvelope, type EnvelopeOptions, type EventEnvelope } from './events.ts';
import { newId } from './ids.ts';
import { assertEventType, assertPattern } from './pattern.ts';
import type { BusTransport, TransportDeliver } from './transport.ts';

/** What `createBus` needs: a transport and, optionally, where to report failing handlers. */
export interface BusOptions {
  transport: BusTransport;
  /** The envelope `source` when the caller gives none (the node or service name). Default `parley`. */
  source?: string;
  /** Default `request` (and pipeline stage) timeout in milliseconds (`bus.request_timeout_ms`). Default 5000. */
  requestTimeoutMs?: number;
  /** Default `gather` timeout in milliseconds (`bus.gather_timeout_ms`). Default 2000. */
  gatherTimeoutMs?: number;
  log?: BusLogger;
  metrics?: BusMetrics;
  /** Spans for handlers and trace context for envelopes; none: no tracing, at no cost. */
  tracing?: BusTracing;
  /** Called for every failing handler, after it was logged and counted. */
  onHandlerError?: (error: PlatformError, event: EventEnvelope, group: string) => void;
}

/** The type of the event the bus emits when a handler fails. */
export const HANDLER_ERROR_EVENT = 'bus.handler.error';

const silentLogger: BusLogger = { error() {}, debug() {} };
/** What `emit` returns for an event nobody would get. */
const NOTHING_TO_DELIVER: Promise<void> = Promise.resolve();

/**
 * Whether `emitted` (what `emit` returned) is the answer for an event nobody would get: already resolved,
 * never rejecting, so a caller need not attach a handler for its failure (a promise each).
 */
export function deliveredToNobody(emitted: Promise<unknown>): boolean {
  return emitted === NOTHING_TO_DELIVER;
}

/** Event types already validated; bounded so a stream of distinct types cannot grow it forever. */
const MAX_KNOWN_TYPES = 10_000;

/**
 * Creates the message bus over a transport. The bus builds envelopes, validates types and patterns, wraps
 * every handler so a failure is logged, counted and emitted as `bus.handler.error` without touching the
 * other handlers, runs pipelines on top of `request`, and closes gracefully; the transport routes.
 */
export function createBus(options: BusOptions): Bus {
  const { transport, onHandlerError } = options;
  const source = options.source ?? 'parley';
  const requestTimeoutMs = options.requestTimeoutMs ?? 5000;
  const gatherTimeoutMs = options.gatherTimeoutMs ?? 2000;
  const log = options.log ?? silentLogger;
  const metrics = options.metrics ?? {};
  const tracing = options.tracing;
  const timeHandlers = metrics.handlerCompleted !== undefined;
  const knownTypes = new Set<string>();
  const unsubscribers = new Set<() => void>();
  let state: 'open' | 'closing' | 'closed' = 'open';
  let closing: Promise<void> | undefined;
  let inFlight = 0;
  let onIdle: (() => void) | undefined;

  function closedError(): PlatformError {
    return new PlatformError('CHAT_ERR_BUS_CLOSED', 'the bus is closed (the node is shutting down)');
  }

  function checkType(type: string): void {
    if (knownTypes.has(type)) return;
    assertEventType(type);
    if (knownTypes.size >= MAX_KNOWN_TYPES) knownTypes.clear();
    knownTypes.add(type);
  }

  /**
   * Throws once the bus is closed, or when `type` is invalid; shared by every sending call. While closing,
   * sending still works: the handlers being waited for may need to emit or request to finish their work
   * (on NATS other nodes receive it; this node has already stopped taking deliveries).
   */
  function checkSend(type: string): void {
    if (state === 'closed') throw closedError();
    checkType(type);
  }

  function envelopeFor<T>(type: string, data: T, envelopeOptions: EnvelopeOptions | undefined) {
    const envelope = createEnvelope(type, data, envelopeOptions);
    if (envelopeOptions?.source === undefined) envelope.source = source;
    if (tracing !== undefined && envelope.traceparent === undefined) {
      const traceparent = tracing.currentTraceparent();
      if (traceparent !== undefined) envelope.traceparent = traceparent;
    }
    return envelope;
  }

  // Envelopes of this bus's requests and gathers: a handler's refusal of one is its requester's answer.
  // (One from another node carries `replyTo`.)
  const requested = new WeakSet<EventEnvelope>();
  function requestEnvelope<T>(type: string, data: T, envelopeOptions: EnvelopeOptions | undefined) {
    const envelope = envelopeFor(type, data, envelopeOptions);
    requested.add(envelope);
    return envelope;
  }

  function handlerSettled(): void {
    inFlight--;
    if (inFlight === 0 && onIdle !== undefined) onIdle();
  }

  /** Logs, counts and announces one failure; returns the PlatformError the transport forwards. */
  function reportFailure(error: unknown, envelope: EventEnvelope, group: string): PlatformError {
    const failure =
      error instanceof PlatformError
        ? error
        : new PlatformError(
            'CHAT_ERR_BUS_HANDLER_FAILED',
            `handler of "${envelope.type}" in group "${group}" failed: ${error instanceof Error ? error.message : String(error)}`,
            { cause: error, details: { type: envelope.type, group } },
          );
    const fields = { err: error, type: envelope.type, group, eventId: envelope.id, code: failure.code };
    // A client error (a missing or foreign session, bad input) thrown for a request is the handler's answer,
    // and the requester gets it: at error level, every 404 a client provoked would bury the failures an
    // operator must see. Thrown for an emitted event, nobody gets it: an error like any other.
    const answered = envelope.replyTo !== undefined || requested.has(envelope);
    if (answered && failure.status < 500) log.debug(fields, 'bus handler refused the request');
    else log.error(fields, 'bus handler failed');
    metrics.handlerError?.(envelope.type, group);
    if (onHandlerError !== undefined) {
      try {
        onHandlerError(failure, envelope, group);
      } catch (callbackError) {
        log.error({ err: callbackError }, 'onHandlerError callback failed');
      }
    }
    // A failing handler of bus.handler.error itself is only logged: announcing it would loop forever.
    if (envelope.type !== HANDLER_ERROR_EVENT && state === 'open') {
      const data = { type: envelope.type, group, eventId: envelope.id, error: failure.toJSON() };
      const announcement = envelopeFor(HANDLER_ERROR_EVENT, data, { correlationId: envelope.id });
      inFlight++;
      // Announced on the next microtask, not from inside the failing delivery (no re-entrant publish).
      queueMicrotask(() => {
        transport.publish(announcement).then(handlerSettled, handlerSettled);
      });
    }
    return failure;
  }

  /** Settles an untimed async handler; shared, so the common path allocates no closure for success. */
  function passValue(value: unknown): unknown {
    handlerSettled();
    return value;
  }

  /** Wraps a handler into what the transport calls: tracks it in flight, reports failures. */
  function wrapHandler(untraced: EventHandler, group: string): TransportDeliver {
    const handler: EventHandler =
      tracing === undefined
        ? untraced
        : (envelope) => tracing.runHandler(envelope, group, () => untraced(envelope));
    if (timeHandlers) return wrapTimedHandler(handler, group);
    return (envelope) => {
      if (state === 'closed') return Promise.reject(closedError());
      inFlight++;
      let result: unknown;
      try {
        result = handler(envelope);
      } catch (error) {
        handlerSettled();
        return Promise.reject(reportFailure(error, envelope, group));
      }
      if (!isThenable(result)) {
        handlerSettled();
        return result;
      }
      return Promise.resolve(result).then(passValue, (error: unknown) => {
        handlerSettled();
        throw reportFailure(error, envelope, group);
      });
    };
  }

  /** `wrapHandler` that also reports each handler's duration (only when a metrics sink wants it). */
  function wrapTimedHandler(handler: EventHandler, group: string): TransportDeliver {
    return (envelope) => {
      if (state === 'closed') return Promise.reject(closedError());
      inFlight++;
      const started = performance.now();
      const finish = () => {
        metrics.handlerCompleted?.(envelope.type, group, (performance.now() - started) / 1000);
        handlerSettled();
      };
      let result: unknown;
      try {
        result = handler(envelope);
      } catch (error) {
        finish();
        return Promise.reject(reportFailure(error, envelope, group));
      }
      if (!isThenable(result)) {
        finish();
        return result;
      }
      return Promise.resolve(result).then(
        (value) => {
          finish();
          return value;
        },
        (error: unknown) => {
          finish();
          throw reportFailure(error, envelope, group);
        },
      );
    };
  }

  const bus: Bus = {
    emit(type, data, envelopeOptions) {
      try {
        checkSend(type);
      } catch (error) {
        return Promise.reject(error);
      }
      metrics.eventEmitted?.(type);
      // Nobody would get it (a chat turn emits several events most nodes do not listen to): nothing to do.
      if (transport.hasListeners?.(type) === false) return NOTHING_TO_DELIVER;
      return transport.publish(envelopeFor(type, data, envelopeOptions));
    },

    on(pattern, handler, subscribeOptions?: SubscribeOptions) {
      if (state !== 'open') throw closedError();
      assertPattern(pattern);
      const signal = subscribeOptions?.signal;
      if (signal?.aborted) return () => {};
      const mode = subscribeOptions?.mode ?? 'local';
      const group = subscribeOptions?.group ?? 'default';
      const unsubscribeTransport = transport.subscribe(pattern, wrapHandler(handler as EventHandler, group), {
        mode,
        group,
      });
      const unsubscribe = () => {
        if (!unsubscribers.delete(unsubscribe)) return;
        signal?.removeEventListener('abort', unsubscribe);
        unsubscribeTransport();
      };
      unsubscribers.add(unsubscribe);
      signal?.addEventListener('abort', unsubscribe, { once: true });
      return unsubscribe;
    },

    request<R>(type: string, data: unknown, requestOptions?: RequestOptions): Promise<R> {
      try {
        checkSend(type);
        requestOptions?.signal?.throwIfAborted();
      } catch (error) {
        return Promise.reject(error);
      }
      return transport.request(requestEnvelope(type, data, requestOptions), {
        timeout: requestOptions?.timeout ?? requestTimeoutMs,
        signal: requestOptions?.signal,
      }) as Promise<R>;
    },

    gather<R>(type: string, data: unknown, gatherOptions?: GatherOptions): Promise<GatherResult<R>> {
      try {
        checkSend(type);
        gatherOptions?.signal?.throwIfAborted();
      } catch (error) {
        return Promise.reject(error);
      }
      return transport.gather(requestEnvelope(type, data, gatherOptions), {
        timeout: gatherOptions?.timeout ?? gatherTimeoutMs,
        expected: gatherOptions?.expected,
        signal: gatherOptions?.signal,
      }) as Promise<GatherResult<R>>;
    },

    async pipeline<R>(stages: string[], data: unknown, pipelineOptions: PipelineOptions = {}): Promise<R> {
      const stageTypes = stages.map((stage) => `pipeline.stage.${stage}`);
      for (const type of stageTypes) checkSend(type);
      // Every stage request is its own envelope; they share one correlation id so the run can be traced.
      const { id, timeout, signal, ...envelopeOptions } = pipelineOptions;
      const stageOptions: RequestOptions = {
        ...envelopeOptions,
        correlationId: envelopeOptions.correlationId ?? id ?? newId(),
      };
      if (timeout !== undefined) stageOptions.timeout = timeout;
      if (signal !== undefined) stageOptions.signal = signal;
      let value = data;
      for (const [index, type] of stageTypes.entries()) {
        try {
          value = await bus.request(type, value, stageOptions);
        } catch (error) {
          if (signal?.aborted && error === signal.reason) throw error;
          throw stageError(error, stages, index);
        }
      }
      return value as R;
    },

    health() {
      if (state !== 'open')
        return { healthy: false, transport: transport.name, message: 'the bus is closed' };
      return { healthy: true, ...transport.health?.(), transport: transport.name };
    },

    close() {
      if (closing !== undefined) return closing;
      state = 'closing';
      // Stop taking new deliveries first (on NATS, other nodes of each work group take over), then let
      // the handlers already running finish, then release the transport.
      for (const unsubscribe of [...unsubscribers]) unsubscribe();
      closing = (async () => {
        if (inFlight > 0) {
          await new Promise<void>((resolve) => {
            onIdle = resolve;
          });
        }
        state = 'closed';
        await transport.close();
      })();
      return closing;
    },
  };
  return bus;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value instanceof Promise ||
    (typeof value === 'object' &&
      value !== null &&
      typeof (value as { then?: unknown }).then === 'function') ||
    (typeof value === 'function' && typeof (value as { then?: unknown }).then === 'function')
  );
}

/** The failure of one pipeline stage, as the same kind of error (TimeoutError stays one) naming the stage. */
function stageError(error: unknown, stages: string[], index: number): PlatformError {
  const cause = toPlatformError(error);
  const json = cause.toJSON();
  const stage = stages[index];
  const failure = errorFromJSON({
    ...json,
    message: `pipeline stage "${stage}" (${index + 1} of ${stages.length}) failed: ${json.message}`,
    details: { ...json.details, stage, stageIndex: index, stages },
  });
  Object.defineProperty(failure, 'cause', { value: cause, configurable: true, writable: true });
  return failure;
}
