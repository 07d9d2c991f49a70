/**
 * The zero-latency model the chat benchmarks use: an AI SDK language model (the `LanguageModelV3`
 * interface every provider implements) that streams a fixed reply, behind a model registry that
 * `createPlatform({ llm })` accepts. It may wait before its first token (the first-byte measure) and
 * records how long it waited, so a benchmark can subtract the model's own time. It is a plain object, not
 * the AI SDK's `MockLanguageModelV3`: that test helper keeps every call's options (prompt, abort signal)
 * in an array, so over a benchmark of tens of thousands of turns the heap — and the time the garbage
 * collector spends walking it — grows with every turn, which no real provider does.
 */

import type { LanguageModelV3, LanguageModelV3StreamPart } from '@ai-sdk/provider';
import type { LlmCallObserver } from '../../src/core/observers.ts';
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

/** A zero-latency AI SDK model (it waits `delay()` ms first when that is above 0); it only streams. */
export function createMockModel(
  options: { delay?: () => number; onWait?: (ms: number) => void } = {},
): LanguageModelV3 {
  return {
    specificationVersion: 'v3',
    provider: 'mock',
    modelId: 'bench',
    supportedUrls: {},
    doGenerate: async () => {
      throw new Error('the benchmark model only streams (parley calls doStream)');
    },
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
  };
}

/**
 * The real model registry with `model` as provider `mock` given in code (its default `mock:bench`), so it
 * is called the way parley calls any model, reporting each call to `observer` (the platform's metrics). Pass the function
 * form to createPlatform (`llm: (observer) => createMockRegistry(model, observer)`) to get it.
 */
export function createMockRegistry(
  model: LanguageModelV3 = createMockModel(),
  observer?: LlmCallObserver,
): ModelRegistry {
  return createModelRegistry(
    { default_model: 'mock:bench', max_retries: 0, request_timeout_ms: 30_000 },
    { models: { mock: () => model }, ...(observer === undefined ? {} : { observer }) },
  );
}
