/**
 * OpenTelemetry tracing (`observability.tracing`): spans for each HTTP request, each bus handler, each
 * model call and each storage backend call, exported over OTLP/HTTP to a collector (Jaeger, Tempo, an
 * OpenTelemetry Collector…). The W3C `traceparent` travels in every event envelope, so a chat turn is one
 * trace across modules and nodes: the HTTP span on the node the client reached, the `message.send` handler
 * on whichever node ran it, the model call and the storage writes beneath it.
 *
 * The tracer provider is this platform's own, not registered globally, so two platforms in one process
 * keep their spans apart. What is global is the context manager (AsyncLocalStorage), which only carries
 * the active span across awaits; it is installed on the first platform that enables tracing.
 *
 * Model and storage calls are reported when they end (the observers in core/observers.ts); their spans are
 * made then, with the start time the call began, under the span active at that point — the handler that
 * made the call.
 */

import { hostname } from 'node:os';
import {
  type Context,
  context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  ParentBasedSampler,
  type SpanExporter,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import type { BusTracing } from '../core/bus-types.ts';
import { toPlatformError } from '../core/errors.ts';
import type { EventEnvelope } from '../core/events.ts';
import type { LlmCallObserver, StorageObserver } from '../core/observers.ts';

/** The `observability.tracing` config section. */
export interface TracingConfig {
  enabled: boolean;
  service_name: string;
  /** The collector's OTLP/HTTP traces URL. */
  endpoint: string;
  /** Share of new traces recorded (0–1); a trace a caller started keeps the caller's decision. */
  sample_ratio: number;
  /** How long finished spans wait to be sent in one batch. */
  export_delay_ms: number;
}

export interface TracingOptions {
  /** Where spans go instead of OTLP (tests). */
  exporter?: SpanExporter;
}

/** The HTTP server's view of tracing. */
export interface HttpTracing {
  /** Starts the span of a request, continuing the caller's `traceparent` header if it sent one. */
  startRequest(method: string, route: string | undefined, traceparent: string | undefined): Span;
  /** Runs `work` with `span` active, so what it calls (the bus) carries the span on. */
  within<T>(span: Span, work: () => T): T;
  /** Ends a request's span with its status code. */
  endRequest(span: Span, statusCode: number): void;
}

export interface PlatformTracing {
  readonly bus: BusTracing;
  readonly llm: LlmCallObserver;
  storage(backend: string): StorageObserver;
  readonly http: HttpTracing;
  /** Sends the spans not sent yet and stops. */
  shutdown(): Promise<void>;
}

const propagator = new W3CTraceContextPropagator();
let contextManagerInstalled = false;

/** The context that continues `traceparent` (or a new trace when there is none or it is malformed). */
function contextOf(traceparent: string | undefined): Context {
  if (traceparent === undefined) return ROOT_CONTEXT;
  return propagator.extract(ROOT_CONTEXT, { traceparent }, defaultTextMapGetter);
}

/** A span's end time from the seconds a call took, which ended now. */
function startedSecondsAgo(seconds: number): number {
  return performance.timeOrigin + performance.now() - seconds * 1000;
}

/** Ends `span` as failed with `error`'s code. */
function endFailed(span: Span, error: unknown): void {
  const failure = toPlatformError(error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: failure.message });
  span.setAttribute('error.type', failure.code);
  span.end();
}

/** Ends `span` once `result` settles (at once when it is no promise), marking a failure. */
function endWhenSettled(span: Span, result: unknown): unknown {
  if (result === null || typeof (result as { then?: unknown })?.then !== 'function') {
    span.end();
    return result;
  }
  return (result as Promise<unknown>).then(
    (value) => {
      span.end();
      return value;
    },
    (error: unknown) => {
      endFailed(span, error);
      throw error;
    },
  );
}

/** Starts tracing for one platform. */
export function createTracing(config: TracingConfig, options: TracingOptions = {}): PlatformTracing {
  if (!contextManagerInstalled) {
    contextManagerInstalled = context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  }
  const exporter = options.exporter ?? new OTLPTraceExporter({ url: config.endpoint });
  const provider = new TracerProvider({
    // The instance tells a trace's spans from different nodes apart.
    resource: resourceFromAttributes({
      'service.name': config.service_name,
      'service.instance.id': `${hostname()}:${process.pid}`,
    }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.sample_ratio) }),
    spanProcessors: [new BatchSpanProcessor({ exporter, scheduledDelayMillis: config.export_delay_ms })],
  });
  const tracer: Tracer = provider.getTracer('parley');

  /** A span for a call that just ended after `seconds`, under the span active now; the caller ends it. */
  function endedCall(name: string, seconds: number, attributes: Record<string, string | number>): Span {
    return tracer.startSpan(name, {
      kind: SpanKind.CLIENT,
      startTime: startedSecondsAgo(seconds),
      attributes,
    });
  }

  return {
    bus: {
      currentTraceparent() {
        const carrier: { traceparent?: string } = {};
        propagator.inject(context.active(), carrier, defaultTextMapSetter);
        return carrier.traceparent;
      },
      runHandler(envelope: EventEnvelope, group: string, handler: () => unknown) {
        const parent = contextOf(envelope.traceparent);
        const span = tracer.startSpan(
          `${envelope.type} ${group}`,
          {
            kind: SpanKind.CONSUMER,
            attributes: {
              'messaging.system': 'parley',
              'messaging.operation.type': 'process',
              'messaging.destination.name': envelope.type,
              'messaging.message.id': envelope.id,
              'parley.module': group,
            },
          },
          parent,
        );
        let result: unknown;
        try {
          result = context.with(trace.setSpan(parent, span), handler);
        } catch (error) {
          endFailed(span, error);
          throw error;
        }
        return endWhenSettled(span, result);
      },
    },
    llm: {
      // The call's span is made when it ends (concurrent calls of one model cannot be told apart before):
      // the time to its first text comes with the outcome.
      firstText() {},
      callEnded(model, seconds, outcome) {
        const [provider, ...rest] = model.split(':');
        const span = endedCall(`chat ${model}`, seconds, {
          'gen_ai.operation.name': 'chat',
          'gen_ai.provider.name': provider ?? model,
          'gen_ai.request.model': rest.join(':') || model,
        });
        if (outcome.inputTokens !== undefined)
          span.setAttribute('gen_ai.usage.input_tokens', outcome.inputTokens);
        if (outcome.outputTokens !== undefined)
          span.setAttribute('gen_ai.usage.output_tokens', outcome.outputTokens);
        if (outcome.firstTextSeconds !== undefined)
          span.setAttribute('parley.llm.time_to_first_token_seconds', outcome.firstTextSeconds);
        if (outcome.error !== undefined) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.error });
          span.setAttribute('error.type', outcome.error);
        }
        span.end();
      },
    },
    storage(backend) {
      return {
        operationCompleted(operation, seconds, failed) {
          const span = endedCall(`storage ${operation}`, seconds, {
            'parley.storage.backend': backend,
            'parley.storage.operation': operation,
          });
          if (failed) span.setStatus({ code: SpanStatusCode.ERROR });
          span.end();
        },
      };
    },
    http: {
      startRequest(method, route, traceparent) {
        return tracer.startSpan(
          route === undefined ? method : `${method} ${route}`,
          {
            kind: SpanKind.SERVER,
            attributes: {
              'http.request.method': method,
              ...(route === undefined ? {} : { 'http.route': route }),
            },
          },
          contextOf(traceparent),
        );
      },
      within(span, work) {
        return context.with(trace.setSpan(ROOT_CONTEXT, span), work);
      },
      endRequest(span, statusCode) {
        span.setAttribute('http.response.status_code', statusCode);
        if (statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      },
    },
    async shutdown() {
      await provider.shutdown();
    },
  };
}
