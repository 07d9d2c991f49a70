/**
 * The model registry: built from the `llm` config slice, it turns "provider:model" names into AI SDK
 * models. Hosted providers come from the AI SDK (`@ai-sdk/openai`, `@ai-sdk/anthropic`,
 * `@ai-sdk/openai-compatible`); `local` runs GGUF files through node-llama-cpp; `offline` answers when no
 * model is configured. It also makes calls with the configured retries and timeout (see call.ts).
 */

import { createAnthropic } from '@ai-sdk/anthropic';
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import type { LanguageModelV3 } from '@ai-sdk/provider';
import { PlatformError } from '../core/errors.ts';
import type { LlmCallObserver } from '../core/observers.ts';
import {
  type CallSettings,
  callModel,
  generateWithModel,
  type LlmPartHandler,
  type LlmRequest,
  type LlmResult,
  type LlmStreamPart,
  streamModel,
} from './call.ts';
import {
  BUILT_IN_PROVIDERS,
  type LlmSettings,
  type LocalProviderSettings,
  type ProviderType,
  parseLlmConfig,
  type RemoteProviderSettings,
} from './config.ts';
import {
  createEmbeddingRegistryFromSettings,
  type Embedder,
  type EmbedderOptions,
  type EmbeddingRegistry,
} from './embeddings.ts';
import type { LlmErrorContext } from './errors.ts';
import { createLocalRuntime, type LocalRuntime, type LocalRuntimeOptions } from './local.ts';
import { createOfflineModel, OFFLINE_MODEL_NAME, OFFLINE_PROVIDER } from './offline.ts';
import { keyHint, providerClientSettings } from './provider-client.ts';

/** Options of createModelRegistry besides the config slice. */
export interface ModelRegistryOptions {
  /** Where OPENAI_API_KEY and ANTHROPIC_API_KEY are read; `process.env` by default. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Base of relative GGUF paths; the working directory by default. */
  baseDir?: string;
  /** Options of the local runtime (node-llama-cpp), created on the first local call. */
  local?: LocalRuntimeOptions;
  /** Told of every model call made through `stream`, `streamTo` and `generate` (the platform's metrics). */
  observer?: LlmCallObserver;
  /**
   * Providers given in code, by name: `"<name>:<id>"` resolves to `models[name](id)`, an AI SDK model an
   * application (or a test, a benchmark) made itself, called with the same retries, timeout and errors as
   * the configured providers. A name here shadows a configured provider of that name.
   */
  models?: Readonly<Record<string, (modelId: string) => LanguageModelV3>>;
}

/** One entry of `list()`, the source of `/v1/models`. */
export interface ModelInfo {
  /** "provider:model". */
  id: string;
  provider: string;
  /** `code`: a provider given in code (ModelRegistryOptions.models). */
  type: ProviderType | 'offline' | 'code';
  /** True for the model used when a request names none. */
  isDefault: boolean;
}

/** Resolves "provider:model" names to AI SDK models, and calls them with the configured rules. */
export interface ModelRegistry {
  /** The AI SDK model for "provider:model"; throws CHAT_ERR_LLM_UNKNOWN_MODEL or CHAT_ERR_LLM_AUTH. */
  resolve(name: string): LanguageModelV3;
  /** The model of `llm.default_model`, or the offline model when none is configured. */
  defaultModel(): LanguageModelV3;
  /** The name of the default model ("offline:offline" when none is configured). */
  defaultModelName(): string;
  /** False when no model is configured and the offline model answers. */
  isConfigured(): boolean;
  /** The configured models, for `/v1/models`. */
  list(): ModelInfo[];
  /** The provider names a model name may start with. */
  providerNames(): string[];
  /** The retries and idle timeout calls use (pass them to streamText when calling `resolve()` yourself). */
  readonly callSettings: Readonly<CallSettings>;
  /** What toLlmError needs to explain a failure of `name`. */
  errorContext(name: string): LlmErrorContext;
  /** Streams a reply; throws a PlatformError (CHAT_ERR_LLM_*) when the model fails. */
  stream(request: LlmRequest): AsyncGenerator<LlmStreamPart, void, undefined>;
  /**
   * Hands each part of a reply to `onPart` as it arrives (callModel: no round of promises per part, as
   * `stream`'s generator takes); rejects with a PlatformError (CHAT_ERR_LLM_*) when the model fails.
   */
  streamTo(request: LlmRequest, onPart: LlmPartHandler): Promise<void>;
  /** Returns a whole reply; throws a PlatformError (CHAT_ERR_LLM_*) when the model fails. */
  generate(request: LlmRequest): Promise<LlmResult>;
  /** The embedding model of "provider:model" (openai, openai-compatible, local GGUF); see embeddings.ts. */
  embedder(name: string, options?: EmbedderOptions): Embedder;
  /** Unloads local models. */
  dispose(): Promise<void>;
}

/** Splits "provider:model" at the first colon (model ids such as "llama3.1:8b" keep theirs). */
export function parseModelName(name: string): { provider: string; modelId: string } {
  const colon = name.indexOf(':');
  if (colon <= 0 || colon === name.length - 1) {
    throw new PlatformError(
      'CHAT_ERR_LLM_UNKNOWN_MODEL',
      `"${name}" is not a model name: write "provider:model", for example "openai:gpt-4o-mini"`,
      { details: { model: name } },
    );
  }
  return { provider: name.slice(0, colon), modelId: name.slice(colon + 1) };
}

/** Builds the registry from the `llm` config slice (snake_case JSON, as in config/default.json). */
export function createModelRegistry(config: unknown = {}, options: ModelRegistryOptions = {}): ModelRegistry {
  const settings: LlmSettings = parseLlmConfig(
    config,
    options.baseDir === undefined ? {} : { baseDir: options.baseDir },
  );
  const env = options.env ?? process.env;
  const callSettings: CallSettings = Object.freeze({
    maxRetries: settings.maxRetries,
    requestTimeoutMs: settings.requestTimeoutMs,
  });
  // openai and anthropic need nothing but a key, so they are known even without a providers entry.
  const providers: Record<string, RemoteProviderSettings | LocalProviderSettings> = {
    ...BUILT_IN_PROVIDERS,
    ...settings.providers,
  };
  const codeProviders = options.models ?? {};
  const offline = createOfflineModel({ env });
  const models = new Map<string, LanguageModelV3>();
  const factories = new Map<string, (modelId: string) => LanguageModelV3>();
  let localRuntime: LocalRuntime | undefined;
  let embeddings: EmbeddingRegistry | undefined;

  function providerNames(): string[] {
    return [...new Set([...Object.keys(providers), ...Object.keys(codeProviders), OFFLINE_PROVIDER])].sort();
  }

  function remoteFactory(provider: RemoteProviderSettings): (modelId: string) => LanguageModelV3 {
    const common = providerClientSettings(provider, env);
    if (provider.type === 'openai') {
      const openai = createOpenAI({
        ...common,
        name: provider.name,
        ...(provider.organization === undefined ? {} : { organization: provider.organization }),
        ...(provider.project === undefined ? {} : { project: provider.project }),
      });
      return provider.api === 'chat'
        ? (modelId) => openai.chat(modelId)
        : (modelId) => openai.responses(modelId);
    }
    if (provider.type === 'anthropic') {
      const anthropic = createAnthropic({ ...common, name: provider.name });
      return (modelId) => anthropic.languageModel(modelId);
    }
    // The SDK puts "Bearer <key>" only when a key is given: local servers such as Ollama need none.
    const compatible = createOpenAICompatible({
      ...common,
      name: provider.name,
      baseURL: provider.baseUrl ?? '',
      includeUsage: true,
    });
    return (modelId) => compatible.chatModel(modelId);
  }

  function localFactory(provider: LocalProviderSettings): (modelId: string) => LanguageModelV3 {
    return (modelId) => {
      const model = provider.models[modelId];
      if (model === undefined) {
        const known = Object.keys(provider.models);
        throw new PlatformError(
          'CHAT_ERR_LLM_UNKNOWN_MODEL',
          `provider "${provider.name}" has no model "${modelId}"; configured: ${known.length === 0 ? 'none' : known.join(', ')} ` +
            `(add it under llm.providers.${provider.name}.models)`,
          { details: { provider: provider.name, model: modelId, known } },
        );
      }
      localRuntime ??= createLocalRuntime(options.local);
      return localRuntime.languageModel(provider.name, modelId, model);
    };
  }

  function providerOf(name: string) {
    const { provider: providerName, modelId } = parseModelName(name);
    const provider = providers[providerName];
    if (
      provider === undefined &&
      codeProviders[providerName] === undefined &&
      providerName !== OFFLINE_PROVIDER
    ) {
      throw new PlatformError(
        'CHAT_ERR_LLM_UNKNOWN_MODEL',
        `unknown provider "${providerName}" in model "${name}"; known providers: ${providerNames().join(', ')} ` +
          '(configure others under llm.providers)',
        { details: { model: name, provider: providerName, known: providerNames() } },
      );
    }
    return { providerName, modelId, provider };
  }

  function resolve(name: string): LanguageModelV3 {
    const cached = models.get(name);
    if (cached !== undefined) return cached;
    const { providerName, modelId, provider } = providerOf(name);
    const fromCode = codeProviders[providerName];
    let model: LanguageModelV3;
    if (fromCode !== undefined) {
      model = fromCode(modelId);
    } else if (provider === undefined) {
      model = offline;
    } else {
      let factory = factories.get(providerName);
      if (factory === undefined) {
        factory = provider.type === 'local' ? localFactory(provider) : remoteFactory(provider);
        factories.set(providerName, factory);
      }
      model = factory(modelId);
    }
    models.set(name, model);
    return model;
  }

  function errorContext(name: string): LlmErrorContext {
    const context: LlmErrorContext = { model: name, provider: name.split(':', 1)[0] ?? name };
    const provider = codeProviders[context.provider] === undefined ? providers[context.provider] : undefined;
    if (provider !== undefined && provider.type !== 'local') {
      context.keyHint = keyHint(provider);
      if (provider.baseUrl !== undefined) context.baseUrl = provider.baseUrl;
    }
    return context;
  }

  function defaultModelName(): string {
    return settings.defaultModel ?? OFFLINE_MODEL_NAME;
  }

  function list(): ModelInfo[] {
    const entries: ModelInfo[] = [];
    const add = (id: string, provider: string, type: ModelInfo['type']) => {
      if (!entries.some((entry) => entry.id === id)) {
        entries.push({ id, provider, type, isDefault: id === defaultModelName() });
      }
    };
    for (const provider of Object.values(providers)) {
      const ids = provider.type === 'local' ? Object.keys(provider.models) : provider.models;
      for (const id of ids) add(`${provider.name}:${id}`, provider.name, provider.type);
    }
    const name = defaultModelName();
    const providerName = name.split(':', 1)[0] ?? '';
    if (codeProviders[providerName] !== undefined) {
      add(name, providerName, 'code');
      return entries;
    }
    const provider = providers[providerName];
    add(name, provider?.name ?? OFFLINE_PROVIDER, provider?.type ?? 'offline');
    return entries;
  }

  /**
   * Calls `call` with the request's model (the default when it names none). A bad name rejects the
   * returned promise, like any other failure of the call (not a throw before the caller can catch).
   */
  function withModel<T>(
    request: LlmRequest,
    call: (model: LanguageModelV3, name: string) => Promise<T>,
  ): Promise<T> {
    const name = request.model ?? defaultModelName();
    let model: LanguageModelV3;
    try {
      model = resolve(name);
    } catch (error) {
      return Promise.reject(error);
    }
    return call(model, name);
  }

  // A misspelt default model is a config error: report it at startup rather than on the first message.
  // Keys are not checked here: they may come later through the environment of a call.
  if (settings.defaultModel !== undefined) {
    const { providerName, provider, modelId } = providerOf(settings.defaultModel);
    const local = codeProviders[providerName] === undefined && provider?.type === 'local';
    if (local && provider.models[modelId] === undefined) localFactory(provider)(modelId);
  }

  return {
    resolve,
    defaultModel: () => resolve(defaultModelName()),
    defaultModelName,
    isConfigured: () => settings.defaultModel !== undefined,
    list,
    providerNames,
    callSettings,
    errorContext,
    stream(request) {
      const name = request.model ?? defaultModelName();
      // Resolving inside the generator makes a bad name fail on the first next(), like any other failure.
      return (async function* () {
        yield* streamModel(resolve(name), request, callSettings, errorContext(name), options.observer);
      })();
    },
    streamTo(request, onPart) {
      return withModel(request, (model, name) =>
        callModel(model, request, callSettings, errorContext(name), options.observer, onPart),
      );
    },
    generate(request) {
      return withModel(request, (model, name) =>
        generateWithModel(model, request, callSettings, errorContext(name), options.observer),
      );
    },
    embedder(name, embedderOptions) {
      embeddings ??= createEmbeddingRegistryFromSettings(settings, {
        env,
        ...(options.local?.importRuntime === undefined ? {} : { importRuntime: options.local.importRuntime }),
        ...(options.local?.log === undefined ? {} : { log: options.local.log }),
      });
      return embeddings.embedder(name, embedderOptions);
    },
    async dispose() {
      await embeddings?.dispose();
      embeddings = undefined;
      await localRuntime?.dispose();
      localRuntime = undefined;
      models.clear();
      factories.clear();
    },
  };
}

declare module '../core/module.ts' {
  interface PlatformServices {
    /** The model registry built from the `llm` config section. */
    llm: ModelRegistry;
  }
}
