/**
 * The model that answers when no model is configured. It does not pretend to think: it says plainly that
 * no model is configured and how to configure one, then lists what memory and documents retrieved (passed
 * as `providerOptions.offline.retrieved`), so a fresh install still gives a useful, honest reply.
 */

import type {
  LanguageModelV3,
  LanguageModelV3CallOptions,
  LanguageModelV3StreamPart,
  LanguageModelV3Usage,
} from '@ai-sdk/provider';
import { simulateReadableStream } from 'ai';

/** The provider name of the offline model. */
export const OFFLINE_PROVIDER = 'offline';
/** The full name of the offline model. */
export const OFFLINE_MODEL_NAME = 'offline:offline';

/** Options of the offline model. */
export interface OfflineModelOptions {
  /** Checked for OPENAI_API_KEY / ANTHROPIC_API_KEY, to suggest the matching default_model. */
  env?: Readonly<Record<string, string | undefined>>;
}

/** The notice the offline model streams (without retrieved context). */
export function offlineNotice(env: Readonly<Record<string, string | undefined>> = {}): string {
  const lines = [
    'No language model is configured, so parley cannot write a real reply.',
    'To configure one, set llm.default_model to a "provider:model" name, in config/default.json or as an env var, for example:',
    '  CHAT_LLM__DEFAULT_MODEL=openai:gpt-4o-mini   (with OPENAI_API_KEY set)',
    '  CHAT_LLM__DEFAULT_MODEL=anthropic:claude-haiku-4-5   (with ANTHROPIC_API_KEY set)',
    'or point llm.providers at an OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio) or a local GGUF file.',
    'See src/llm/README.md for every option.',
  ];
  if (env.OPENAI_API_KEY)
    lines.push('OPENAI_API_KEY is already set: setting llm.default_model is all that is left.');
  else if (env.ANTHROPIC_API_KEY) {
    lines.push('ANTHROPIC_API_KEY is already set: setting llm.default_model is all that is left.');
  }
  return lines.join('\n');
}

function retrievedFrom(options: LanguageModelV3CallOptions): string[] {
  const retrieved = options.providerOptions?.[OFFLINE_PROVIDER]?.retrieved;
  if (!Array.isArray(retrieved)) return [];
  return retrieved.filter((item): item is string => typeof item === 'string' && item.trim() !== '');
}

function replyText(options: LanguageModelV3CallOptions, env: OfflineModelOptions['env']): string {
  const retrieved = retrievedFrom(options);
  const notice = offlineNotice(env);
  if (retrieved.length === 0) return notice;
  const items = retrieved.map((item) => `- ${item.trim()}`).join('\n');
  return `${notice}\n\nHere is what parley found in memory and documents for this message:\n${items}`;
}

const NO_USAGE: LanguageModelV3Usage = {
  inputTokens: { total: 0, noCache: 0, cacheRead: 0, cacheWrite: 0 },
  outputTokens: { total: 0, text: 0, reasoning: 0 },
};

/** A LanguageModelV3 that streams the "no model configured" notice; works with streamText and generateText. */
export function createOfflineModel(options: OfflineModelOptions = {}): LanguageModelV3 {
  const env = options.env ?? {};
  return {
    specificationVersion: 'v3',
    provider: OFFLINE_PROVIDER,
    modelId: 'offline',
    supportedUrls: {},
    async doGenerate(callOptions) {
      return {
        content: [{ type: 'text', text: replyText(callOptions, env) }],
        finishReason: { unified: 'stop', raw: undefined },
        usage: NO_USAGE,
        warnings: [],
      };
    },
    async doStream(callOptions) {
      // Word-sized deltas, so clients exercise the same streaming path as with a real model.
      const words = replyText(callOptions, env).split(/(?<=\s)/);
      const chunks: LanguageModelV3StreamPart[] = [
        { type: 'stream-start', warnings: [] },
        { type: 'text-start', id: 'offline' },
        ...words.map((delta): LanguageModelV3StreamPart => ({ type: 'text-delta', id: 'offline', delta })),
        { type: 'text-end', id: 'offline' },
        { type: 'finish', finishReason: { unified: 'stop', raw: undefined }, usage: NO_USAGE },
      ];
      return { stream: simulateReadableStream({ chunks }) };
    },
  };
}
