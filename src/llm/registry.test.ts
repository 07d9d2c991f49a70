import { MockLanguageModelV3, simulateReadableStream } from 'ai/test';
import { describe, expect, it } from 'vitest';
import { isPlatformError, type PlatformError } from '../core/errors.ts';
import { OFFLINE_MODEL_NAME } from './offline.ts';
import { createModelRegistry, parseModelName } from './registry.ts';

function thrown(action: () => unknown): PlatformError {
  try {
    action();
  } catch (error) {
    if (isPlatformError(error)) return error;
    throw error;
  }
  throw new Error('expected a PlatformError, nothing was thrown');
}

const fullConfig = {
  default_model: 'ollama:llama3.1:8b',
  providers: {
    openai: { api_key: 'sk-config', models: ['gpt-4o-mini'] },
    anthropic: {},
    ollama: { type: 'openai-compatible', base_url: 'http://127.0.0.1:11434/v1', models: ['llama3.1:8b'] },
    vllm: { type: 'openai-compatible', base_url: 'http://127.0.0.1:8000/v1', api_key: 'token' },
    local: { models: { stories: { path: '../shared/models/stories260K-chat.gguf', max_threads: 1 } } },
  },
};

describe('createModelRegistry', () => {
  it('resolves every provider kind to an AI SDK v3 model', () => {
    const registry = createModelRegistry(fullConfig, { env: { ANTHROPIC_API_KEY: 'sk-ant-env' } });
    const cases = [
      ['openai:gpt-4o-mini', 'openai', 'gpt-4o-mini'],
      ['anthropic:claude-haiku-4-5', 'anthropic', 'claude-haiku-4-5'],
      ['ollama:llama3.1:8b', 'ollama', 'llama3.1:8b'],
      ['vllm:qwen', 'vllm', 'qwen'],
      ['local:stories', 'local', 'stories'],
      [OFFLINE_MODEL_NAME, 'offline', 'offline'],
    ] as const;
    for (const [name, providerPrefix, modelId] of cases) {
      const model = registry.resolve(name);
      expect(model.specificationVersion).toBe('v3');
      expect(model.modelId).toBe(modelId);
      expect(model.provider.startsWith(providerPrefix) || model.provider.endsWith(providerPrefix)).toBe(true);
    }
    expect(registry.defaultModel()).toBe(registry.resolve('ollama:llama3.1:8b'));
    expect(registry.isConfigured()).toBe(true);
  });

  it('falls back to the offline model when no model is configured', () => {
    const registry = createModelRegistry(undefined, { env: {} });
    expect(registry.isConfigured()).toBe(false);
    expect(registry.defaultModelName()).toBe(OFFLINE_MODEL_NAME);
    expect(registry.defaultModel().provider).toBe('offline');
    expect(registry.list()).toEqual([
      { id: OFFLINE_MODEL_NAME, provider: 'offline', type: 'offline', isDefault: true },
    ]);
  });

  it('lists configured models for /v1/models, marking the default', () => {
    const registry = createModelRegistry(fullConfig, { env: {} });
    expect(registry.list()).toEqual([
      { id: 'openai:gpt-4o-mini', provider: 'openai', type: 'openai', isDefault: false },
      { id: 'ollama:llama3.1:8b', provider: 'ollama', type: 'openai-compatible', isDefault: true },
      { id: 'local:stories', provider: 'local', type: 'local', isDefault: false },
    ]);
  });

  it('names the known providers when a model names an unknown one', () => {
    const registry = createModelRegistry(fullConfig, { env: {} });
    const error = thrown(() => registry.resolve('mistral:large'));
    expect(error.code).toBe('CHAT_ERR_LLM_UNKNOWN_MODEL');
    expect(error.status).toBe(400);
    expect(error.message).toContain('"mistral"');
    expect(error.message).toContain('anthropic, local, offline, ollama, openai, vllm');
  });

  it('names the configured local models when a local model is unknown', () => {
    const registry = createModelRegistry(fullConfig, { env: {} });
    const error = thrown(() => registry.resolve('local:llama'));
    expect(error.code).toBe('CHAT_ERR_LLM_UNKNOWN_MODEL');
    expect(error.message).toContain('configured: stories');
  });

  it('rejects a name without "provider:"', () => {
    expect(thrown(() => createModelRegistry({}, { env: {} }).resolve('gpt-4o')).code).toBe(
      'CHAT_ERR_LLM_UNKNOWN_MODEL',
    );
    expect(parseModelName('ollama:qwen2.5:0.5b')).toEqual({ provider: 'ollama', modelId: 'qwen2.5:0.5b' });
  });

  it('reads API keys from config first, then from the environment', () => {
    const withoutKey = createModelRegistry({}, { env: {} });
    const error = thrown(() => withoutKey.resolve('anthropic:claude-haiku-4-5'));
    expect(error.code).toBe('CHAT_ERR_LLM_AUTH');
    expect(error.message).toContain('ANTHROPIC_API_KEY or llm.providers.anthropic.api_key');
    const fromEnv = createModelRegistry({}, { env: { OPENAI_API_KEY: 'sk-env' } });
    expect(fromEnv.resolve('openai:gpt-4o-mini').modelId).toBe('gpt-4o-mini');
  });

  it('fails at startup when the default model names an unknown provider or local model', () => {
    expect(thrown(() => createModelRegistry({ default_model: 'nope:x' }, { env: {} })).code).toBe(
      'CHAT_ERR_LLM_UNKNOWN_MODEL',
    );
    const local = { default_model: 'local:missing', providers: { local: { models: {} } } };
    expect(thrown(() => createModelRegistry(local, { env: {} })).code).toBe('CHAT_ERR_LLM_UNKNOWN_MODEL');
  });
});

describe('providers given in code (models option)', () => {
  function ownModel() {
    return new MockLanguageModelV3({
      modelId: 'mine',
      doStream: async () => ({
        stream: simulateReadableStream({
          chunks: [
            { type: 'text-delta', id: 't', delta: 'from my own model' },
            {
              type: 'finish',
              finishReason: { unified: 'stop', raw: 'stop' },
              usage: {
                inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 },
                outputTokens: { total: 4, text: 4, reasoning: 0 },
              },
            },
          ],
        }),
      }),
    });
  }

  it('resolves "<name>:<id>" to the model the application made, called with the configured rules', async () => {
    const made: string[] = [];
    const model = ownModel();
    const registry = createModelRegistry(
      { default_model: 'app:assistant', max_retries: 0 },
      {
        env: {},
        models: {
          app: (modelId) => {
            made.push(modelId);
            return model;
          },
        },
      },
    );
    expect(registry.resolve('app:assistant')).toBe(model);
    expect(registry.providerNames()).toContain('app');
    expect(registry.list()).toContainEqual({
      id: 'app:assistant',
      provider: 'app',
      type: 'code',
      isDefault: true,
    });
    expect((await registry.generate({ messages: [{ role: 'user', content: 'Hi' }] })).text).toBe(
      'from my own model',
    );
    let handed = '';
    await registry.streamTo({ messages: [{ role: 'user', content: 'Hi' }] }, (part) => {
      if (part.type === 'text-delta') handed += part.text;
    });
    expect(handed).toBe('from my own model');
    // Made once per name, as configured providers' models are.
    expect(made).toEqual(['assistant']);
    // The configured providers are still there, and an unknown one still fails.
    expect(thrown(() => registry.resolve('nope:x')).code).toBe('CHAT_ERR_LLM_UNKNOWN_MODEL');
  });
});

describe('llm config validation', () => {
  it('fills in defaults and coerces env-var strings', () => {
    const registry = createModelRegistry({ max_retries: '4' }, { env: {} });
    expect(registry.callSettings).toEqual({ maxRetries: 4, requestTimeoutMs: 60_000 });
  });

  it('names the JSON path of a bad value', () => {
    const error = thrown(() => createModelRegistry({ request_timeout_ms: -5 }, { env: {} }));
    expect(error.code).toBe('CHAT_ERR_CONFIG_INVALID');
    expect(error.message).toContain('llm.request_timeout_ms');
    const noUrl = thrown(() =>
      createModelRegistry({ providers: { lmstudio: { type: 'openai-compatible' } } }),
    );
    expect(noUrl.message).toContain('llm.providers.lmstudio');
    expect(noUrl.message).toContain('base_url');
  });

  it('asks for a type when a provider key is not a provider type', () => {
    const error = thrown(() => createModelRegistry({ providers: { ollama: { base_url: 'http://x/v1' } } }));
    expect(error.code).toBe('CHAT_ERR_CONFIG_INVALID');
    expect(error.message).toContain('llm.providers.ollama needs a "type"');
  });
});
