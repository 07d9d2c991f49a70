/**
 * What every AI SDK client of a remote provider is built with — the key (from config or the provider's env
 * variable), base URL and headers — shared by chat models (registry.ts) and embedding models
 * (embeddings.ts), so both find keys and explain a missing one the same way.
 */
import { PlatformError } from '../core/errors.ts';
import { API_KEY_ENV, type RemoteProviderSettings } from './config.ts';

/** The settings common to createOpenAI, createAnthropic and createOpenAICompatible. */
export interface ProviderClientSettings {
  headers: RemoteProviderSettings['headers'];
  apiKey?: string;
  baseURL?: string;
}

/** Where a provider's key can be set: its env variable and its config key. */
export function keyHint(provider: RemoteProviderSettings): string {
  const variable = API_KEY_ENV[provider.type];
  const configKey = `llm.providers.${provider.name}.api_key`;
  return variable === undefined ? configKey : `${variable} or ${configKey}`;
}

/** The provider's API key: from config, else from its env variable; empty counts as unset. */
export function apiKeyOf(
  provider: RemoteProviderSettings,
  env: Readonly<Record<string, string | undefined>>,
): string | undefined {
  if (provider.apiKey !== undefined && provider.apiKey !== '') return provider.apiKey;
  const variable = API_KEY_ENV[provider.type];
  const fromEnv = variable === undefined ? undefined : env[variable];
  return fromEnv === '' ? undefined : fromEnv;
}

/**
 * The client settings of a remote provider. Throws CHAT_ERR_LLM_AUTH when a provider that needs a key has
 * none; OpenAI-compatible servers (Ollama and the like) may run without one.
 */
export function providerClientSettings(
  provider: RemoteProviderSettings,
  env: Readonly<Record<string, string | undefined>>,
): ProviderClientSettings {
  const apiKey = apiKeyOf(provider, env);
  if (apiKey === undefined && provider.type !== 'openai-compatible') {
    throw new PlatformError(
      'CHAT_ERR_LLM_AUTH',
      `provider "${provider.name}" has no API key: set ${keyHint(provider)}`,
      {
        details: { provider: provider.name },
      },
    );
  }
  return {
    headers: provider.headers,
    ...(apiKey === undefined ? {} : { apiKey }),
    ...(provider.baseUrl === undefined ? {} : { baseURL: provider.baseUrl }),
  };
}
