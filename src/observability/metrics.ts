/**
 * The platform's Prometheus metrics (prom-client), one registry per platform so two platforms in one
 * process (tests) never share or double-register a metric. Each layer reports through a small observer
 * interface declared in core (the bus's BusMetrics, LlmCallObserver and StorageObserver in
 * core/observers.ts) or here (the HTTP server's HttpObserver), so none of them imports prom-client.
 *
 * Label values come from code and config (event types, module names, route patterns, model names), never
 * from a URL or a message. Some can still be chosen by a caller (a request may name any model of a
 * provider), so each label keeps at most MAX_LABEL_VALUES distinct values and counts the rest as `other`:
 * a scrape stays small whatever clients send.
 */

import { collectDefaultMetrics, Registry } from 'prom-client';
import type { BusMetrics } from '../core/bus-types.ts';
import type { LlmCallObserver, StorageObserver } from '../core/observers.ts';
import { createFastCounter } from './fast-counter.ts';
import { createFastHistogram } from './fast-histogram.ts';

/** Distinct values one label keeps before it reports the rest as `other`. */
export const MAX_LABEL_VALUES = 200;
const OTHER = 'other';

/** Handler, HTTP and storage latencies: from 0.1 ms (a cached read) to 10 s. */
const FAST_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Model calls: from 10 ms to 2 minutes (a long reply of a slow model). */
const MODEL_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120];

/** The HTTP server's view of the metrics. */
export interface HttpObserver {
  /** A request was answered: `route` is the route's pattern (`/v1/sessions/:id`), or undefined for none. */
  requestCompleted(method: string, route: string | undefined, statusCode: number, seconds: number): void;
}

export interface PlatformMetrics {
  /** The registry holding every metric, for `/metrics`. */
  readonly registry: Registry;
  readonly bus: BusMetrics;
  readonly llm: LlmCallObserver;
  readonly http: HttpObserver;
  /** The observer of one storage backend's driver calls. */
  storage(backend: string): StorageObserver;
  /** The text exposition format and its content type. */
  render(): Promise<{ contentType: string; body: string }>;
}

export interface MetricsOptions {
  /** Node's process metrics (CPU, memory, event-loop lag, GC) under their usual names. Default true. */
  processMetrics?: boolean;
}

/** Maps a label's values to themselves until MAX_LABEL_VALUES were seen, then new ones to `other`. */
function boundedLabel(): (value: string) => string {
  const seen = new Set<string>();
  return (value) => {
    if (seen.has(value)) return value;
    if (seen.size >= MAX_LABEL_VALUES) return OTHER;
    seen.add(value);
    return value;
  };
}

/** Creates the metrics of one platform. */
export function createMetrics(options: MetricsOptions = {}): PlatformMetrics {
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  const eventType = boundedLabel();
  const moduleName = boundedLabel();
  const route = boundedLabel();
  const model = boundedLabel();
  const errorCode = boundedLabel();

  const eventsEmitted = createFastCounter(registry, {
    name: 'parley_events_emitted_total',
    help: 'Events emitted on the bus, by type.',
    labelNames: ['type'],
  });
  const handlerDuration = createFastHistogram(registry, {
    name: 'parley_handler_duration_seconds',
    help: 'Time a module took to handle an event (on this node), by event type and module.',
    labelNames: ['type', 'module'],
    buckets: FAST_BUCKETS,
  });
  const handlerErrors = createFastCounter(registry, {
    name: 'parley_handler_errors_total',
    help: 'Handlers that threw, by event type and module.',
    labelNames: ['type', 'module'],
  });
  const httpDuration = createFastHistogram(registry, {
    name: 'parley_http_request_duration_seconds',
    help: 'HTTP requests by method, route pattern and status code, until the response was sent.',
    labelNames: ['method', 'route', 'status_code'],
    buckets: FAST_BUCKETS,
  });
  const llmDuration = createFastHistogram(registry, {
    name: 'parley_llm_request_duration_seconds',
    help: 'Model calls from the request to the last part, by model and outcome (ok, or the error code).',
    labelNames: ['model', 'outcome'],
    buckets: MODEL_BUCKETS,
  });
  const llmFirstToken = createFastHistogram(registry, {
    name: 'parley_llm_time_to_first_token_seconds',
    help: "Time from a model call to its reply's first text, by model.",
    labelNames: ['model'],
    buckets: MODEL_BUCKETS,
  });
  const llmTokens = createFastCounter(registry, {
    name: 'parley_llm_tokens_total',
    help: 'Tokens the providers reported, by model and kind (input, output).',
    labelNames: ['model', 'kind'],
  });
  const storageDuration = createFastHistogram(registry, {
    name: 'parley_storage_operation_duration_seconds',
    help: 'Calls to the storage backend (below the read cache), by backend and operation.',
    labelNames: ['backend', 'operation'],
    buckets: FAST_BUCKETS,
  });
  const storageErrors = createFastCounter(registry, {
    name: 'parley_storage_errors_total',
    help: 'Storage backend calls that failed, by backend and operation.',
    labelNames: ['backend', 'operation'],
  });

  return {
    registry,
    bus: {
      eventEmitted: (type) => eventsEmitted.inc([eventType(type)]),
      handlerCompleted: (type, group, seconds) =>
        handlerDuration.observe([eventType(type), moduleName(group)], seconds),
      handlerError: (type, group) => handlerErrors.inc([eventType(type), moduleName(group)]),
    },
    llm: {
      firstText: (name, seconds) => llmFirstToken.observe([model(name)], seconds),
      callEnded(name, seconds, outcome) {
        const label = model(name);
        llmDuration.observe([label, outcome.error === undefined ? 'ok' : errorCode(outcome.error)], seconds);
        if (outcome.inputTokens !== undefined) llmTokens.inc([label, 'input'], outcome.inputTokens);
        if (outcome.outputTokens !== undefined) llmTokens.inc([label, 'output'], outcome.outputTokens);
      },
    },
    http: {
      requestCompleted(method, pattern, statusCode, seconds) {
        // No route matched (a 404 for an unknown path): one label, not the path, which anyone can vary.
        const routeLabel = pattern === undefined ? 'unmatched' : route(pattern);
        httpDuration.observe([method, routeLabel, String(statusCode)], seconds);
      },
    },
    storage(backend) {
      return {
        operationCompleted(operation, seconds, failed) {
          storageDuration.observe([backend, operation], seconds);
          if (failed) storageErrors.inc([backend, operation]);
        },
      };
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
