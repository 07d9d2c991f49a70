/**
 * The zero-latency model the chat benchmarks use: an AI SDK `MockLanguageModelV3` that streams a fixed
 * reply, behind a model registry that `createPlatform({ llm })` accepts. It may wait before its first token
 * (the first-byte measure) and records how long it waited, so a benchmark can subtract the model's own time.
 */

import type { LanguageModelV3StreamPart } from '@ai-sdk/provider';
import { MockLanguageModelV3 } from 'ai/test';
import { streamModel } from '../../src/llm/call.ts';
import { createModelRegistry, type ModelRegistry } from '../../src/llm/registry.ts';

/** The reply the mock model streams, token by token. */
export const REPLY_TOKENS = ['Hello', ' from', ' the', ' benchmark', ' model', '.'];

/** The model's stream: the reply tokens, then a finish with usage. */
export function replyParts(tokens: readonly string[] = REPLY_TOKENS): LanguageModelV3StreamPart[] {
  return [
    { type: 'stream-start', warnings: [] },
    { type: 'text-start', id: 't' },
    ...tokens.map((delta): LanguageModelV3StreamPart => ({ type: 'text-delta', id: 't', delta })),
    { type: 'text-end', id: 't' },
    {
      type: 'finish',
      finishReason: { unified: 'stop', raw: 'stop' },
      usage: {
        inputTokens: { total: 12, noCache: 12, cacheRead: 0, cacheWrite: 0 },
        outputTokens: { total: tokens.length, text: tokens.length, reasoning: 0 },
      },
    },
  ];
}

/** A zero-latency AI SDK mock model (it waits `delay()` ms first when that is above 0). */
export function createMockModel(
  options: { delay?: () => number; onWait?: (ms: number) => void } = {},
): MockLanguageModelV3 {
  return new MockLanguageModelV3({
    doStream: async () => {
      const calledAt = performance.now();
      const parts = replyParts();
      const delayMs = options.delay?.() ?? 0;
      if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
      options.onWait?.(performance.now() - calledAt);
      return {
        stream: new ReadableStream<LanguageModelV3StreamPart>({
          start(controller) {
            for (const part of parts) controller.enqueue(part);
            controller.close();
          },
        }),
      };
    },
  });
}

/** A model registry whose every model is `model` (named `mock:bench`), called the way parley calls any. */
export function createMockRegistry(model: MockLanguageModelV3 = createMockModel()): ModelRegistry {
  const real = createModelRegistry({});
  const settings = { maxRetries: 0, requestTimeoutMs: 30_000 };
  const registry: ModelRegistry = {
    ...real,
    resolve: () => model,
    defaultModel: () => model,
    defaultModelName: () => 'mock:bench',
    isConfigured: () => true,
    stream(request) {
      return streamModel(model, request, settings, { model: 'mock:bench', provider: 'mock' });
    },
    async generate(request) {
      for await (const part of registry.stream(request)) {
        if (part.type === 'finish') {
          const { type: _type, ...result } = part;
          return result;
        }
      }
      throw new Error('the mock stream ended without a finish');
    },
  };
  return registry;
}
