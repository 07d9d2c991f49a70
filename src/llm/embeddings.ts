/**
 * Embedding models by name, from the same `llm` config as chat models: `openai:text-embedding-3-small`,
 * `ollama:nomic-embed-text` (any `openai-compatible` provider: Ollama, vLLM, llama.cpp server, LM Studio),
 * or `local:<name>` for a GGUF file run in-process by node-llama-cpp's embedding context. Remote calls go
 * through the AI SDK's `embedMany` with the configured retries and idle timeout, and fail with the same
 * CHAT_ERR_LLM_* errors as chat calls. Texts are sent in batches of `batchSize`.
 */

import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import type { EmbeddingModelV3 } from '@ai-sdk/provider';
import { embedMany } from 'ai';
import type { LlamaEmbeddingContext, LlamaModel } from 'node-llama-cpp';
import { PlatformError } from '../core/errors.ts';
import {
  BUILT_IN_PROVIDERS,
  type LlmSettings,
  type LocalModelSettings,
  parseLlmConfig,
  type RemoteProviderSettings,
} from './config.ts';
import { type LlmErrorContext, toLlmError } from './errors.ts';
import { createLlamaLoader, localUnavailable, type NodeLlamaCpp } from './llama-loader.ts';
import { keyHint, providerClientSettings } from './provider-client.ts';

/** Texts per request (or per local run) when the caller sets none: small enough for every server's limit. */
export const DEFAULT_EMBEDDING_BATCH_SIZE = 64;

/** Options of one embedder. */
export interface EmbedderOptions {
  /** Texts per request to the provider. Default 64. */
  batchSize?: number;
}

/** Options of one `embed` call. */
export interface EmbedCallOptions {
  /** Cancels the call (CHAT_ERR_LLM_CANCELLED). */
  signal?: AbortSignal;
}

/** Turns texts into vectors with one model. */
export interface Embedder {
  /** "provider:model", as configured: what a vector index records. */
  readonly name: string;
  readonly batchSize: number;
  /** The vectors' length: known after the first call, else one short text is embedded to learn it. */
  dimension(): Promise<number>;
  /** One vector per text, in order. Throws a PlatformError (CHAT_ERR_LLM_*) when the model fails. */
  embed(texts: readonly string[], options?: EmbedCallOptions): Promise<Float32Array[]>;
}

/** Where embedders come from: the model registry's `embedder()`, or `createEmbeddingRegistry`. */
export interface EmbeddingRegistry {
  /** The embedder of "provider:model"; throws CHAT_ERR_LLM_UNKNOWN_MODEL or CHAT_ERR_LLM_AUTH. */
  embedder(name: string, options?: EmbedderOptions): Embedder;
  /** Unloads local embedding models. */
  dispose(): Promise<void>;
}

/** Options of an embedding registry besides the config. */
export interface EmbeddingRegistryOptions {
  /** Where OPENAI_API_KEY is read; `process.env` by default. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Base of relative GGUF paths; the working directory by default. */
  baseDir?: string;
  /** Loads node-llama-cpp; replaceable so the "not installed" path can be tested. */
  importRuntime?: () => Promise<NodeLlamaCpp>;
  /** Receives llama.cpp's warnings and errors (dropped when absent). */
  log?: (level: 'warn' | 'error', message: string) => void;
}

/** Builds an embedding registry from the raw `llm` config slice (snake_case JSON). */
export function createEmbeddingRegistry(
  config: unknown = {},
  options: EmbeddingRegistryOptions = {},
): EmbeddingRegistry {
  const settings = parseLlmConfig(config, options.baseDir === undefined ? {} : { baseDir: options.baseDir });
  return createEmbeddingRegistryFromSettings(settings, options);
}

/**
 * The embedder of `name` from a model registry (anything with `embedder()`) or from a raw `llm` config
 * slice. An embedder made from a config owns its own registry: call its `dispose()` when done.
 */
export function createEmbedder(
  source: { embedder(name: string, options?: EmbedderOptions): Embedder } | unknown,
  name: string,
  options: EmbedderOptions & EmbeddingRegistryOptions = {},
): Embedder & { dispose(): Promise<void> } {
  const candidate = source as { embedder?: unknown } | null | undefined;
  if (typeof candidate?.embedder === 'function') {
    const embedder = (candidate.embedder as EmbeddingRegistry['embedder'])(name, options);
    return { ...bind(embedder), dispose: async () => {} };
  }
  const registry = createEmbeddingRegistry(source, options);
  return { ...bind(registry.embedder(name, options)), dispose: () => registry.dispose() };
}

function bind(embedder: Embedder): Embedder {
  return {
    name: embedder.name,
    batchSize: embedder.batchSize,
    dimension: () => embedder.dimension(),
    embed: (texts, callOptions) => embedder.embed(texts, callOptions),
  };
}

/** Builds an embedding registry from parsed settings (the model registry shares its own). */
export function createEmbeddingRegistryFromSettings(
  settings: LlmSettings,
  options: EmbeddingRegistryOptions = {},
): EmbeddingRegistry {
  const env = options.env ?? process.env;
  const embedders = new Map<string, Embedder>();
  const local = createLocalEmbeddings(options);
  // Only OpenAI of the built-in providers offers embeddings.
  const providers: Record<string, LlmSettings['providers'][string]> = {
    openai: BUILT_IN_PROVIDERS.openai,
    ...settings.providers,
  };

  function embedder(name: string, embedderOptions: EmbedderOptions = {}): Embedder {
    const batchSize = embedderOptions.batchSize ?? DEFAULT_EMBEDDING_BATCH_SIZE;
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
      throw new PlatformError(
        'CHAT_ERR_CONFIG_INVALID',
        `embedding batch size must be an integer ≥ 1, got ${batchSize}`,
        {
          details: { batchSize },
        },
      );
    }
    const key = `${name}|${batchSize}`;
    let made = embedders.get(key);
    if (made === undefined) {
      made = makeEmbedder(name, batchSize);
      embedders.set(key, made);
    }
    return made;
  }

  function makeEmbedder(name: string, batchSize: number): Embedder {
    const colon = name.indexOf(':');
    if (colon <= 0 || colon === name.length - 1) {
      throw new PlatformError(
        'CHAT_ERR_LLM_UNKNOWN_MODEL',
        `"${name}" is not an embedding model name: write "provider:model", for example "openai:text-embedding-3-small"`,
        { details: { model: name } },
      );
    }
    const providerName = name.slice(0, colon);
    const modelId = name.slice(colon + 1);
    const provider = providers[providerName];
    if (provider === undefined) {
      const known = Object.keys(providers).sort();
      throw new PlatformError(
        'CHAT_ERR_LLM_UNKNOWN_MODEL',
        `unknown provider "${providerName}" in embedding model "${name}"; known providers: ${known.join(', ')} ` +
          '(configure others under llm.providers)',
        { details: { model: name, provider: providerName, known } },
      );
    }
    if (provider.type === 'local') {
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
      return batched(
        name,
        batchSize,
        (texts, signal) => local.embed(provider.name, modelId, model, texts, signal),
        {
          dimension: () => local.dimension(provider.name, modelId, model),
        },
      );
    }
    if (provider.type === 'anthropic') {
      throw new PlatformError(
        'CHAT_ERR_LLM_UNKNOWN_MODEL',
        `provider "${provider.name}" (anthropic) has no embedding models; use openai, an openai-compatible server ` +
          '(Ollama: nomic-embed-text) or a local GGUF embedding model',
        { details: { model: name, provider: provider.name } },
      );
    }
    const model = remoteModel(provider, modelId);
    const context: LlmErrorContext = { model: name, provider: provider.name, keyHint: keyHint(provider) };
    if (provider.baseUrl !== undefined) context.baseUrl = provider.baseUrl;
    context.timeoutMs = settings.requestTimeoutMs;
    return batched(name, batchSize, async (texts, signal) => {
      // The idle timeout of chat calls becomes a per-request deadline: an embedding reply is not streamed.
      const deadline = AbortSignal.timeout(settings.requestTimeoutMs);
      const abortSignal = signal === undefined ? deadline : AbortSignal.any([signal, deadline]);
      try {
        const { embeddings } = await embedMany({
          model,
          values: [...texts],
          maxRetries: settings.maxRetries,
          maxParallelCalls: 1,
          abortSignal,
        });
        return embeddings;
      } catch (error) {
        throw toLlmError(error, {
          ...context,
          timedOut: deadline.aborted && signal?.aborted !== true,
          cancelled: signal?.aborted === true,
        });
      }
    });
  }

  function remoteModel(provider: RemoteProviderSettings, modelId: string): EmbeddingModelV3 {
    const common = providerClientSettings(provider, env);
    if (provider.type === 'openai') {
      return createOpenAI({
        ...common,
        name: provider.name,
        ...(provider.organization === undefined ? {} : { organization: provider.organization }),
        ...(provider.project === undefined ? {} : { project: provider.project }),
      }).embedding(modelId);
    }
    return createOpenAICompatible({
      ...common,
      name: provider.name,
      baseURL: provider.baseUrl ?? '',
    }).embeddingModel(modelId);
  }

  return {
    embedder,
    async dispose() {
      embedders.clear();
      await local.dispose();
    },
  };
}

/** Wraps a function that embeds one batch into an Embedder: batching, order, dimension checks. */
function batched(
  name: string,
  batchSize: number,
  embedBatch: (
    texts: readonly string[],
    signal: AbortSignal | undefined,
  ) => Promise<ReadonlyArray<ArrayLike<number>>>,
  extra: { dimension?: () => Promise<number> } = {},
): Embedder {
  let knownDimension: number | undefined;

  function check(vectors: ReadonlyArray<ArrayLike<number>>, expected: number): Float32Array[] {
    if (vectors.length !== expected) {
      throw new PlatformError(
        'CHAT_ERR_LLM_PROVIDER_FAILED',
        `embedding model ${name} returned ${vectors.length} vectors for ${expected} texts`,
        { details: { model: name } },
      );
    }
    return vectors.map((vector) => {
      knownDimension ??= vector.length;
      if (vector.length !== knownDimension || vector.length === 0) {
        throw new PlatformError(
          'CHAT_ERR_LLM_PROVIDER_FAILED',
          `embedding model ${name} returned vectors of length ${vector.length} after ${knownDimension}`,
          { details: { model: name } },
        );
      }
      return Float32Array.from(vector);
    });
  }

  const embedder: Embedder = {
    name,
    batchSize,
    async dimension() {
      if (knownDimension !== undefined) return knownDimension;
      if (extra.dimension !== undefined) {
        knownDimension = await extra.dimension();
        return knownDimension;
      }
      await embedder.embed(['dimension']);
      return knownDimension as unknown as number;
    },
    async embed(texts, options = {}) {
      const vectors: Float32Array[] = [];
      for (let start = 0; start < texts.length; start += batchSize) {
        if (options.signal?.aborted === true) {
          throw new PlatformError(
            'CHAT_ERR_LLM_CANCELLED',
            `the call to embedding model ${name} was cancelled by the caller`,
            {
              details: { model: name },
            },
          );
        }
        const batch = texts.slice(start, start + batchSize);
        vectors.push(...check(await embedBatch(batch, options.signal), batch.length));
      }
      return vectors;
    },
  };
  return embedder;
}

interface LoadedEmbeddingModel {
  model: LlamaModel;
  context: LlamaEmbeddingContext;
  contextSize: number;
  /** Calls on one context run one after another. */
  queue: Promise<unknown>;
}

/** Local GGUF embedding models, loaded on first use (the same rules as the local chat provider). */
function createLocalEmbeddings(options: EmbeddingRegistryOptions) {
  const loader = createLlamaLoader({
    importRuntime: options.importRuntime,
    log: options.log,
    needs: 'local embedding models',
  });
  const { loadRuntime, loadLlama } = loader;
  const models = new Map<string, Promise<LoadedEmbeddingModel>>();

  async function loadModel(provider: string, modelName: string, settings: LocalModelSettings) {
    const runtime = await loadRuntime();
    const llama = await loadLlama(runtime, settings);
    let model: LlamaModel;
    try {
      model = await llama.loadModel({ modelPath: settings.path });
    } catch (error) {
      throw localUnavailable(
        `local embedding model "${provider}:${modelName}" failed to load from ${settings.path}: ${(error as Error).message}; ` +
          `check llm.providers.${provider}.models.${modelName}.path`,
        error,
        { path: settings.path },
      );
    }
    const contextSize = Math.min(settings.contextSize, model.trainContextSize);
    const context = await model.createEmbeddingContext({ contextSize, threads: settings.maxThreads });
    return { model, context, contextSize, queue: Promise.resolve() };
  }

  function loaded(
    provider: string,
    modelName: string,
    settings: LocalModelSettings,
  ): Promise<LoadedEmbeddingModel> {
    const key = `${settings.path}|${settings.contextSize}|${settings.gpu}|${settings.maxThreads}`;
    let entry = models.get(key);
    if (entry === undefined) {
      entry = loadModel(provider, modelName, settings);
      entry.catch(() => models.delete(key));
      models.set(key, entry);
    }
    return entry;
  }

  return {
    async dimension(provider: string, modelName: string, settings: LocalModelSettings): Promise<number> {
      return (await loaded(provider, modelName, settings)).model.embeddingVectorSize;
    },

    async embed(
      provider: string,
      modelName: string,
      settings: LocalModelSettings,
      texts: readonly string[],
      signal: AbortSignal | undefined,
    ): Promise<Array<readonly number[]>> {
      const target = await loaded(provider, modelName, settings);
      const run = target.queue.then(async () => {
        const vectors: Array<readonly number[]> = [];
        for (const text of texts) {
          if (signal?.aborted) {
            throw new PlatformError(
              'CHAT_ERR_LLM_CANCELLED',
              `the call to local embedding model ${modelName} was cancelled`,
            );
          }
          let tokens = target.model.tokenize(text);
          if (tokens.length === 0) {
            // llama.cpp gives an empty vector for no tokens; a zero vector keeps every vector one length.
            vectors.push(new Array<number>(target.model.embeddingVectorSize).fill(0));
            continue;
          }
          // A text longer than the context is cut to its first tokens (what remote servers do too), leaving
          // room for the special tokens the model adds (BOS, EOS) and the one llama.cpp keeps free.
          const added = target.context.calculateInputLength(tokens.slice(0, 1)) - 1;
          const room = target.contextSize - 1 - added;
          if (tokens.length > room) tokens = tokens.slice(0, room);
          vectors.push((await target.context.getEmbeddingFor(tokens)).vector);
        }
        return vectors;
      });
      target.queue = run.catch(() => undefined);
      return run;
    },

    dispose: () => loader.dispose(models),
  };
}
