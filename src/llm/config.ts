/**
 * The `llm` config slice: its JSON Schema (with every default), and its parsing into the settings the
 * registry uses. The platform schema leaves `llm` open, so this layer validates its own slice and names the
 * JSON path of any bad value.
 */

import { availableParallelism } from 'node:os';
import path from 'node:path';
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import { PlatformError } from '../core/errors.ts';

/** The provider kinds a `providers.<name>.type` may name. */
export const PROVIDER_TYPES = ['openai', 'anthropic', 'openai-compatible', 'local'] as const;
export type ProviderType = (typeof PROVIDER_TYPES)[number];

/** Where the local provider may run its layers: `false` is CPU only. */
export type LocalGpu = false | 'auto' | 'cuda' | 'vulkan' | 'metal';

/** Default of `llm.request_timeout_ms`: how long to wait for the first chunk, and between chunks. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
/** Default of `llm.max_retries`: retries of a 429, 5xx or unreachable provider (the AI SDK's default). */
export const DEFAULT_MAX_RETRIES = 2;
/** Default context window of a local model, capped by what the model was trained with. */
export const DEFAULT_LOCAL_CONTEXT_SIZE = 4096;

/** The env var each hosted provider type reads its key from when config gives none. */
export const API_KEY_ENV: Readonly<Partial<Record<ProviderType, string>>> = {
  openai: 'OPENAI_API_KEY',
  anthropic: 'ANTHROPIC_API_KEY',
};

const stringMap = { type: 'object', additionalProperties: { type: 'string' } };

const remoteProperties = {
  type: { enum: PROVIDER_TYPES },
  api_key: { type: 'string', description: 'API key; when absent, the env var of the provider type.' },
  base_url: { type: 'string', minLength: 1 },
  headers: { ...stringMap, default: {} },
  models: {
    type: 'array',
    items: { type: 'string', minLength: 1 },
    default: [],
    description: 'Model ids to advertise in /v1/models (any id resolves).',
  },
};

const localModelSchema = {
  type: 'object',
  required: ['path'],
  additionalProperties: false,
  properties: {
    path: {
      type: 'string',
      minLength: 1,
      description: 'GGUF file; relative paths start at the working dir.',
    },
    context_size: { type: 'integer', minimum: 16, default: DEFAULT_LOCAL_CONTEXT_SIZE },
    max_threads: { type: 'integer', minimum: 0, default: 0, description: '0: one per CPU core.' },
    gpu: { enum: [false, 'auto', 'cuda', 'vulkan', 'metal'], default: false },
    parallel: { type: 'integer', minimum: 1, maximum: 64, default: 1 },
  },
};

/** JSON Schema of each provider type's settings. */
const PROVIDER_SCHEMAS: Record<ProviderType, object> = {
  openai: {
    type: 'object',
    additionalProperties: false,
    properties: {
      ...remoteProperties,
      organization: { type: 'string' },
      project: { type: 'string' },
      api: { enum: ['responses', 'chat'], default: 'responses' },
    },
  },
  anthropic: { type: 'object', additionalProperties: false, properties: remoteProperties },
  'openai-compatible': {
    type: 'object',
    required: ['base_url'],
    additionalProperties: false,
    properties: remoteProperties,
  },
  local: {
    type: 'object',
    additionalProperties: false,
    properties: {
      type: { enum: PROVIDER_TYPES },
      models: { type: 'object', additionalProperties: localModelSchema, default: {} },
    },
  },
};

/** JSON Schema of the `llm` slice (providers are checked again by the schema of their type). */
export const LLM_CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    default_model: {
      type: 'string',
      pattern: '^[^:]+:.+$',
      description: '"provider:model"; when absent, the offline model answers.',
    },
    request_timeout_ms: { type: 'integer', minimum: 1, default: DEFAULT_REQUEST_TIMEOUT_MS },
    max_retries: { type: 'integer', minimum: 0, maximum: 10, default: DEFAULT_MAX_RETRIES },
    providers: {
      type: 'object',
      default: {},
      propertyNames: { pattern: '^[^:]+$' },
      additionalProperties: { type: 'object' },
    },
  },
} as const;

/** Settings of one hosted or OpenAI-compatible provider. */
export interface RemoteProviderSettings {
  type: 'openai' | 'anthropic' | 'openai-compatible';
  name: string;
  apiKey: string | undefined;
  baseUrl: string | undefined;
  headers: Record<string, string>;
  models: string[];
  organization?: string;
  project?: string;
  api: 'responses' | 'chat';
}

/** A hosted provider that needs nothing but a key (from env), so it is known without a providers entry. */
function builtIn(type: 'openai' | 'anthropic'): RemoteProviderSettings {
  return {
    type,
    name: type,
    apiKey: undefined,
    baseUrl: undefined,
    headers: {},
    models: [],
    api: 'responses',
  };
}

/** `openai` and `anthropic` as they are when the config does not name them. */
export const BUILT_IN_PROVIDERS: Readonly<Record<'openai' | 'anthropic', RemoteProviderSettings>> = {
  openai: builtIn('openai'),
  anthropic: builtIn('anthropic'),
};

/** Settings of one GGUF model of the local provider. */
export interface LocalModelSettings {
  path: string;
  contextSize: number;
  maxThreads: number;
  gpu: LocalGpu;
  parallel: number;
}

/** Settings of a local provider: its GGUF models by name. */
export interface LocalProviderSettings {
  type: 'local';
  name: string;
  models: Record<string, LocalModelSettings>;
}

export type ProviderSettings = RemoteProviderSettings | LocalProviderSettings;

/** The parsed `llm` slice, defaults filled in. */
export interface LlmSettings {
  defaultModel: string | undefined;
  requestTimeoutMs: number;
  maxRetries: number;
  providers: Record<string, ProviderSettings>;
}

interface RawProvider {
  type?: ProviderType;
  api_key?: string;
  base_url?: string;
  headers?: Record<string, string>;
  models?: string[] | Record<string, RawLocalModel>;
  organization?: string;
  project?: string;
  api?: 'responses' | 'chat';
}

interface RawLocalModel {
  path: string;
  context_size: number;
  max_threads: number;
  gpu: LocalGpu;
  parallel: number;
}

let ajv: Ajv2020 | undefined;

function validator(): Ajv2020 {
  // Env vars arrive as strings ("3"), so scalars are coerced to the schema's type.
  ajv ??= new Ajv2020({ allErrors: true, useDefaults: true, coerceTypes: true, strict: false });
  return ajv;
}

function invalid(errors: ErrorObject[] | null | undefined, prefix: string): PlatformError {
  const problems = (errors ?? []).map((error) => {
    const where = `llm${prefix}${error.instancePath.replaceAll('/', '.')}`;
    return { path: where, rule: error.keyword, message: `${where} ${error.message ?? 'is invalid'}` };
  });
  return new PlatformError(
    'CHAT_ERR_CONFIG_INVALID',
    `invalid llm config: ${problems.map((p) => p.message).join('; ')}`,
    {
      details: { problems },
    },
  );
}

function providerType(name: string, raw: RawProvider): ProviderType {
  if (raw.type !== undefined) return raw.type;
  if ((PROVIDER_TYPES as readonly string[]).includes(name)) return name as ProviderType;
  throw new PlatformError(
    'CHAT_ERR_CONFIG_INVALID',
    `llm.providers.${name} needs a "type" (one of ${PROVIDER_TYPES.join(', ')}), since "${name}" is not a provider type`,
    { details: { problems: [{ path: `llm.providers.${name}.type`, rule: 'required' }] } },
  );
}

/** Validates the raw `llm` slice (snake_case JSON) and returns its settings; throws CHAT_ERR_CONFIG_INVALID. */
export function parseLlmConfig(raw: unknown = {}, options: { baseDir?: string } = {}): LlmSettings {
  const slice = structuredClone(raw ?? {}) as Record<string, unknown>;
  const validateSlice = validator().compile(LLM_CONFIG_SCHEMA);
  if (!validateSlice(slice)) throw invalid(validateSlice.errors, '');
  const baseDir = options.baseDir ?? process.cwd();
  const providers: Record<string, ProviderSettings> = {};
  for (const [name, value] of Object.entries(slice.providers as Record<string, RawProvider>)) {
    const type = providerType(name, value);
    const validateProvider = validator().compile(PROVIDER_SCHEMAS[type]);
    if (!validateProvider(value)) throw invalid(validateProvider.errors, `.providers.${name}`);
    if (type === 'local') {
      const models: Record<string, LocalModelSettings> = {};
      for (const [modelName, model] of Object.entries(value.models as Record<string, RawLocalModel>)) {
        models[modelName] = {
          path: path.resolve(baseDir, model.path),
          contextSize: model.context_size,
          maxThreads: model.max_threads === 0 ? availableParallelism() : model.max_threads,
          gpu: model.gpu,
          parallel: model.parallel,
        };
      }
      providers[name] = { type, name, models };
      continue;
    }
    const settings: RemoteProviderSettings = {
      type,
      name,
      apiKey: value.api_key,
      baseUrl: value.base_url,
      headers: value.headers ?? {},
      models: (value.models as string[] | undefined) ?? [],
      api: value.api ?? 'responses',
    };
    if (value.organization !== undefined) settings.organization = value.organization;
    if (value.project !== undefined) settings.project = value.project;
    providers[name] = settings;
  }
  return {
    defaultModel: slice.default_model as string | undefined,
    requestTimeoutMs: slice.request_timeout_ms as number,
    maxRetries: slice.max_retries as number,
    providers,
  };
}
