import type { LanguageModelV3StreamPart } from '@ai-sdk/provider';
import { MockLanguageModelV3, simulateReadableStream } from 'ai/test';
import { describe, expect, it } from 'vitest';
import { isPlatformError, PlatformError } from '../core/errors.ts';
import type { LlmCallObserver, LlmCallOutcome } from '../core/observers.ts';
import { callModel, generateWithModel, streamModel } from './call.ts';

const messages = [{ role: 'user' as const, content: 'Hi' }];
const settings = { maxRetries: 2, requestTimeoutMs: 2000 };
const context = { model: 'mock:model', provider: 'mock' };

function textParts(words: string[]): LanguageModelV3StreamPart[] {
  return [
    { type: 'stream-start', warnings: [] },
    { type: 'text-start', id: 't' },
    ...words.map((delta): LanguageModelV3StreamPart => ({ type: 'text-delta', id: 't', delta })),
    { type: 'text-end', id: 't' },
    {
      type: 'finish',
      finishReason: { unified: 'stop', raw: 'stop' },
      usage: {
        inputTokens: { total: 3, noCache: 3, cacheRead: 0, cacheWrite: 0 },
        outputTokens: { total: words.length, text: words.length, reasoning: 0 },
      },
    },
  ];
}

describe('streamModel', () => {
  it('yields each text delta, then the finish with text and usage', async () => {
    const model = new MockLanguageModelV3({
      doStream: async () => ({ stream: simulateReadableStream({ chunks: textParts(['a', 'b', 'c']) }) }),
    });
    const parts = [];
    for await (const part of streamModel(model, { messages }, settings, context)) parts.push(part);
    expect(parts).toEqual([
      { type: 'text-delta', text: 'a' },
      { type: 'text-delta', text: 'b' },
      { type: 'text-delta', text: 'c' },
      {
        type: 'finish',
        model: 'mock:model',
        text: 'abc',
        finishReason: 'stop',
        usage: { inputTokens: 3, outputTokens: 3, totalTokens: 6 },
      },
    ]);
  });

  it('aborts the model call when the consumer stops reading', async () => {
    let signal: AbortSignal | undefined;
    const model = new MockLanguageModelV3({
      doStream: async (options) => {
        signal = options.abortSignal;
        const chunks = textParts(Array.from({ length: 50 }, (_, index) => `${index} `));
        return { stream: simulateReadableStream({ chunks, chunkDelayInMs: 5 }) };
      },
    });
    for await (const part of streamModel(model, { messages }, settings, context)) {
      if (part.type === 'text-delta') break;
    }
    expect(signal?.aborted).toBe(true);
  });

  it('passes a PlatformError thrown by the model through unchanged', async () => {
    const original = new PlatformError('CHAT_ERR_LLM_UNAVAILABLE', 'runtime missing');
    const model = new MockLanguageModelV3({
      doStream: async () => {
        throw original;
      },
    });
    const error = await generateWithModel(model, { messages }, settings, context).catch((caught) => caught);
    expect(error).toBe(original);
  });

  it('wraps an unexpected model error as a provider failure naming the model', async () => {
    const model = new MockLanguageModelV3({
      doStream: async () => {
        throw new Error('tokenizer exploded');
      },
    });
    const error = await generateWithModel(model, { messages }, settings, context).catch((caught) => caught);
    expect(isPlatformError(error, 'CHAT_ERR_LLM_PROVIDER_FAILED')).toBe(true);
    expect(error.message).toContain('mock:model');
    expect(error.message).toContain('tokenizer exploded');
  });

  it('passes the request settings to the model', async () => {
    const model = new MockLanguageModelV3({
      doStream: async () => ({ stream: simulateReadableStream({ chunks: textParts(['x']) }) }),
    });
    await generateWithModel(
      model,
      { messages, system: 'Be brief.', maxOutputTokens: 12, temperature: 0.2, stopSequences: ['\n'] },
      settings,
      context,
    );
    const call = model.doStreamCalls[0];
    expect(call?.maxOutputTokens).toBe(12);
    expect(call?.temperature).toBe(0.2);
    expect(call?.stopSequences).toEqual(['\n']);
    expect(call?.prompt[0]).toEqual({ role: 'system', content: 'Be brief.' });
  });

  it('streams a request whose messages its class makes on demand (a getter on its prototype)', async () => {
    // text_chat's model request is such a class: a copy of it would have no `messages` at all.
    class LazyRequest {
      system = 'Be brief.';
      get messages() {
        return messages;
      }
    }
    const model = new MockLanguageModelV3({
      doStream: async () => ({ stream: simulateReadableStream({ chunks: textParts(['ok']) }) }),
    });
    const parts = [];
    for await (const part of streamModel(model, new LazyRequest(), settings, context)) parts.push(part);
    expect(parts[0]).toEqual({ type: 'text-delta', text: 'ok' });
    expect(model.doStreamCalls[0]?.prompt).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: [{ type: 'text', text: 'Hi' }] },
    ]);
  });
});

describe('callModel', () => {
  it('hands each part to the handler, and waits for a promise it returns before the next', async () => {
    const model = new MockLanguageModelV3({
      doStream: async () => ({ stream: simulateReadableStream({ chunks: textParts(['a', 'b', 'c']) }) }),
    });
    const seen: string[] = [];
    let holding = false;
    await callModel(model, { messages }, settings, context, undefined, (part) => {
      // A part handed over while the handler's promise is pending would break the order a client sees.
      expect(holding).toBe(false);
      seen.push(part.type === 'text-delta' ? part.text : part.type);
      if (part.type !== 'text-delta' || part.text !== 'b') return;
      holding = true;
      return new Promise<void>((resolve) => setTimeout(resolve, 20)).then(() => {
        holding = false;
      });
    });
    expect(seen).toEqual(['a', 'b', 'c', 'finish']);
  });

  it('hands a prompt the caller keeps (request.prompt) to the model as it is, after the system prompt', async () => {
    const model = new MockLanguageModelV3({
      doStream: async () => ({ stream: simulateReadableStream({ chunks: textParts(['ok']) }) }),
    });
    const prompt = [
      { role: 'user' as const, content: [{ type: 'text' as const, text: 'Hi' }] },
      { role: 'assistant' as const, content: [{ type: 'text' as const, text: 'Hello!' }] },
      { role: 'user' as const, content: [{ type: 'text' as const, text: 'And now?' }] },
    ];
    const request = { messages: [{ role: 'user' as const, content: 'not what is sent' }], prompt };
    await callModel(model, request, settings, context, undefined, () => undefined);
    // Without a system prompt the very array; with one, the system message first, then the same messages.
    expect(model.doStreamCalls[0]?.prompt).toBe(prompt);
    await callModel(
      model,
      { ...request, system: 'Be brief.' },
      settings,
      context,
      undefined,
      () => undefined,
    );
    expect(model.doStreamCalls[1]?.prompt).toEqual([{ role: 'system', content: 'Be brief.' }, ...prompt]);
    expect(prompt).toHaveLength(3);
  });

  it("passes the handler's own failure through as it was thrown, not as a model failure", async () => {
    const model = new MockLanguageModelV3({
      doStream: async () => ({ stream: simulateReadableStream({ chunks: textParts(['a', 'b']) }) }),
    });
    // Not a PlatformError: one of the model's would be wrapped as CHAT_ERR_LLM_PROVIDER_FAILED.
    const storing = new Error('ENOSPC: the disk is full');
    const thrown = await callModel(model, { messages }, settings, context, undefined, () => {
      throw storing;
    }).catch((caught) => caught);
    expect(thrown).toBe(storing);
    const rejected = await callModel(model, { messages }, settings, context, undefined, () =>
      Promise.reject(storing),
    ).catch((caught) => caught);
    expect(rejected).toBe(storing);
  });

  it('stops the model when the handler fails midway, and leaves a call read to its end alone', async () => {
    const signals: AbortSignal[] = [];
    const model = new MockLanguageModelV3({
      doStream: async ({ abortSignal }) => {
        signals.push(abortSignal!);
        return { stream: simulateReadableStream({ chunks: textParts(['a', 'b', 'c']) }) };
      },
    });
    await callModel(model, { messages }, settings, context, undefined, () => undefined);
    expect(signals[0]!.aborted).toBe(false);
    await callModel(model, { messages }, settings, context, undefined, (part) => {
      if (part.type === 'text-delta' && part.text === 'b') throw new Error('the client went away');
    }).catch(() => {});
    expect(signals[1]!.aborted).toBe(true);
  });

  it('does not count time the handler takes against the idle timeout', async () => {
    const model = new MockLanguageModelV3({
      doStream: async () => ({ stream: simulateReadableStream({ chunks: textParts(['a', 'b']) }) }),
    });
    const parts: string[] = [];
    await callModel(
      model,
      { messages },
      { maxRetries: 0, requestTimeoutMs: 50 },
      context,
      undefined,
      (part) => {
        parts.push(part.type);
        // Slower than the idle timeout: the model is not what is slow.
        return new Promise((resolve) => setTimeout(resolve, 120));
      },
    );
    expect(parts).toEqual(['text-delta', 'text-delta', 'finish']);
  });
});

describe('streamModel reporting to an observer', () => {
  function recordingObserver() {
    const calls: { firstText: number; ended: { model: string; outcome: LlmCallOutcome }[] } = {
      firstText: 0,
      ended: [],
    };
    const observer: LlmCallObserver = {
      firstText: (_model, seconds) => {
        expect(seconds).toBeGreaterThanOrEqual(0);
        calls.firstText += 1;
      },
      callEnded: (model, seconds, outcome) => {
        expect(seconds).toBeGreaterThanOrEqual(0);
        calls.ended.push({ model, outcome });
      },
    };
    return { calls, observer };
  }

  it('tells the first text once and the end with the token counts', async () => {
    const { calls, observer } = recordingObserver();
    const model = new MockLanguageModelV3({
      doStream: async () => ({ stream: simulateReadableStream({ chunks: textParts(['a', 'b']) }) }),
    });
    await generateWithModel(model, { messages }, settings, context, observer);
    expect(calls).toEqual({
      firstText: 1,
      ended: [
        {
          model: 'mock:model',
          outcome: { inputTokens: 3, outputTokens: 2, firstTextSeconds: expect.any(Number) },
        },
      ],
    });
  });

  it('ends a failed call with its error code, and one the consumer left as cancelled', async () => {
    const failing = recordingObserver();
    const model = new MockLanguageModelV3({
      doStream: async () => {
        throw new Error('boom');
      },
    });
    await generateWithModel(model, { messages }, settings, context, failing.observer).catch(() => {});
    expect(failing.calls).toEqual({
      firstText: 0,
      ended: [{ model: 'mock:model', outcome: { error: 'CHAT_ERR_LLM_PROVIDER_FAILED' } }],
    });

    const left = recordingObserver();
    const long = new MockLanguageModelV3({
      doStream: async () => ({ stream: simulateReadableStream({ chunks: textParts(['a', 'b', 'c']) }) }),
    });
    for await (const part of streamModel(long, { messages }, settings, context, left.observer)) {
      if (part.type === 'text-delta') break;
    }
    expect(left.calls).toEqual({
      firstText: 1,
      ended: [
        {
          model: 'mock:model',
          outcome: { error: 'CHAT_ERR_LLM_CANCELLED', firstTextSeconds: expect.any(Number) },
        },
      ],
    });
  });
});

describe('streamModel with tools', () => {
  /** A model that calls `get_weather` on its first call and answers with the tool's result on its second. */
  function weatherModel() {
    const prompts: unknown[] = [];
    const model = new MockLanguageModelV3({
      doStream: async (options) => {
        prompts.push(options.prompt);
        const first = prompts.length === 1;
        const chunks: LanguageModelV3StreamPart[] = first
          ? [
              { type: 'stream-start', warnings: [] },
              {
                type: 'tool-call',
                toolCallId: 'call_1',
                toolName: 'get_weather',
                input: '{"city":"Lisbon"}',
              },
              {
                type: 'finish',
                finishReason: { unified: 'tool-calls', raw: 'tool_calls' },
                usage: {
                  inputTokens: { total: 10, noCache: 10, cacheRead: 0, cacheWrite: 0 },
                  outputTokens: { total: 5, text: 5, reasoning: 0 },
                },
              },
            ]
          : textParts(['Sunny', ' in Lisbon']);
        return { stream: simulateReadableStream({ chunks }) };
      },
    });
    return { model, prompts };
  }

  it('runs a tool the model calls, gives it the result, and streams the answer after', async () => {
    const { model, prompts } = weatherModel();
    const inputs: unknown[] = [];
    const tools = {
      get_weather: {
        description: 'The weather in a city',
        inputSchema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
        execute: async (input: unknown) => {
          inputs.push(input);
          return { sky: 'sunny', celsius: 24 };
        },
      },
    };
    const parts = [];
    for await (const part of streamModel(model, { messages, tools }, settings, context)) parts.push(part);
    expect(inputs).toEqual([{ city: 'Lisbon' }]);
    expect(parts.slice(0, 2)).toEqual([
      { type: 'tool-call', toolCallId: 'call_1', toolName: 'get_weather', input: { city: 'Lisbon' } },
      {
        type: 'tool-result',
        toolCallId: 'call_1',
        toolName: 'get_weather',
        output: { sky: 'sunny', celsius: 24 },
      },
    ]);
    expect(parts.at(-1)).toMatchObject({ type: 'finish', text: 'Sunny in Lisbon', finishReason: 'stop' });
    // The second model call saw the tool's result.
    expect(JSON.stringify(prompts[1])).toContain('"celsius":24');
  });

  it('reports a tool that throws as its result, and the model answers anyway', async () => {
    const { model, prompts } = weatherModel();
    const tools = {
      get_weather: {
        description: 'The weather in a city',
        inputSchema: { type: 'object', properties: { city: { type: 'string' } } },
        execute: async () => {
          throw new Error('weather service down');
        },
      },
    };
    const parts = [];
    for await (const part of streamModel(model, { messages, tools }, settings, context)) parts.push(part);
    expect(parts[1]).toEqual({
      type: 'tool-result',
      toolCallId: 'call_1',
      toolName: 'get_weather',
      error: 'weather service down',
    });
    expect(JSON.stringify(prompts[1])).toContain('weather service down');
    expect(parts.at(-1)).toMatchObject({ type: 'finish', text: 'Sunny in Lisbon' });
  });
});
