/**
 * What the storage and model layers report as they work, for whoever measures them (the Prometheus
 * metrics in src/observability/metrics.ts). Declared here, in core, so that storage, llm and
 * observability each depend on core only, never on one another. The bus's own is BusMetrics
 * (bus-types.ts).
 */

/** A storage operation, as the metered wrapper names it. */
export type StorageOperation = 'read' | 'readFrom' | 'write' | 'append' | 'delete' | 'exists' | 'list';

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
}

/** Told of every model call: when its first text came and how it ended. `model` is "provider:model". */
export interface LlmCallObserver {
  firstText(model: string, seconds: number): void;
  callEnded(model: string, seconds: number, outcome: LlmCallOutcome): void;
}
