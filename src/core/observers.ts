/**
 * What the storage and model layers report as they work, for whoever measures them (the Prometheus
 * metrics and the OpenTelemetry spans of src/observability/). Declared here, in core, so that storage,
 * llm and observability each depend on core only, never on one another. The bus's own are BusMetrics and
 * BusTracing (bus-types.ts).
 */

/** A storage operation, as the metered wrapper names it. */
export type StorageOperation =
  | 'read'
  | 'readFrom'
  | 'size'
  | 'write'
  | 'append'
  | 'delete'
  | 'exists'
  | 'list';

/** Told of every call a metered storage passes on to the storage under it. */
export interface StorageObserver {
  operationCompleted(operation: StorageOperation, seconds: number, failed: boolean): void;
}

/** How a model call ended: its token counts (when the provider gave them) or its error code. */
export interface LlmCallOutcome {
  inputTokens?: number | undefined;
  outputTokens?: number | undefined;
  /** The PlatformError code it failed with (`CHAT_ERR_LLM_*`); undefined when it succeeded. */
  error?: string;
  /** Seconds from the call's start to the reply's first text; absent when no text came. */
  firstTextSeconds?: number;
}

/** Told of every model call: when its first text came and how it ended. `model` is "provider:model". */
export interface LlmCallObserver {
  firstText(model: string, seconds: number): void;
  callEnded(model: string, seconds: number, outcome: LlmCallOutcome): void;
}

/** One observer that tells each of `observers` that is defined; undefined when none is. */
export function tellEachLlm(
  observers: readonly (LlmCallObserver | undefined)[],
): LlmCallObserver | undefined {
  const defined = observers.filter((observer) => observer !== undefined);
  if (defined.length <= 1) return defined[0];
  return {
    firstText: (model, seconds) => {
      for (const observer of defined) observer.firstText(model, seconds);
    },
    callEnded: (model, seconds, outcome) => {
      for (const observer of defined) observer.callEnded(model, seconds, outcome);
    },
  };
}

/** One observer that tells each of `observers` that is defined; undefined when none is. */
export function tellEachStorage(
  observers: readonly (StorageObserver | undefined)[],
): StorageObserver | undefined {
  const defined = observers.filter((observer) => observer !== undefined);
  if (defined.length <= 1) return defined[0];
  return {
    operationCompleted: (operation, seconds, failed) => {
      for (const observer of defined) observer.operationCompleted(operation, seconds, failed);
    },
  };
}
