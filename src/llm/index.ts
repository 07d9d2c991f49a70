/** The LLM layer: the model registry, the local and offline providers, calls and their errors. */

export type { CallSettings, LlmPartHandler, LlmRequest, LlmResult, LlmStreamPart, LlmUsage } from './call.ts';
export { callModel, generateWithModel, streamModel } from './call.ts';
export type {
  LlmSettings,
  LocalGpu,
  LocalModelSettings,
  LocalProviderSettings,
  ProviderSettings,
  ProviderType,
  RemoteProviderSettings,
} from './config.ts';
export {
  API_KEY_ENV,
  DEFAULT_LOCAL_CONTEXT_SIZE,
  DEFAULT_MAX_RETRIES,
  DEFAULT_REQUEST_TIMEOUT_MS,
  LLM_CONFIG_SCHEMA,
  PROVIDER_TYPES,
  parseLlmConfig,
} from './config.ts';
export type {
  EmbedCallOptions,
  Embedder,
  EmbedderOptions,
  EmbeddingRegistry,
  EmbeddingRegistryOptions,
} from './embeddings.ts';
export {
  createEmbedder,
  createEmbeddingRegistry,
  createEmbeddingRegistryFromSettings,
  DEFAULT_EMBEDDING_BATCH_SIZE,
} from './embeddings.ts';
export type { LlmErrorContext } from './errors.ts';
export { toLlmError } from './errors.ts';
export type { LocalRuntime, LocalRuntimeOptions } from './local.ts';
export { createLocalRuntime, LOCAL_RUNTIME_INSTALL, LOCAL_RUNTIME_PACKAGE } from './local.ts';
export type { OfflineModelOptions } from './offline.ts';
export { createOfflineModel, OFFLINE_MODEL_NAME, OFFLINE_PROVIDER, offlineNotice } from './offline.ts';
export type { ModelInfo, ModelRegistry, ModelRegistryOptions } from './registry.ts';
export { createModelRegistry, parseModelName } from './registry.ts';
