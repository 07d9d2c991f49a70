import type { LanguageModelV3Prompt } from '@ai-sdk/provider';
import { type ModelMessage, streamText } from 'ai';
import { MockLanguageModelV3, simulateReadableStream } from 'ai/test';
import { describe, expect, it } from 'vitest';
import { plainTextPrompt } from './plain-text-prompt.ts';

function message(role: 'user' | 'assistant', content: string, frozen = true): ModelMessage {
  const made: ModelMessage = { role, content };
  return frozen ? Object.freeze(made) : made;
}

/** A conversation of `count` frozen messages, alternating user and assistant. */
function conversation(count: number, label = 'm'): ModelMessage[] {
  return Array.from({ length: count }, (_, index) =>
    message(index % 2 === 0 ? 'user' : 'assistant', `${label} ${index}`),
  );
}

/** The prompt the AI SDK's own streamText hands the model for the same conversation. */
async function sdkPrompt(
  system: string | undefined,
  messages: ModelMessage[],
): Promise<LanguageModelV3Prompt> {
  const model = new MockLanguageModelV3({
    doStream: async () => ({
      stream: simulateReadableStream({
        chunks: [
          {
            type: 'finish',
            finishReason: { unified: 'stop', raw: 'stop' },
            usage: {
              inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 },
              outputTokens: { total: 0, text: 0, reasoning: 0 },
            },
          },
        ],
      }),
    }),
  });
  const result = streamText({ model, messages, ...(system === undefined ? {} : { system }) });
  await result.consumeStream();
  return model.doStreamCalls[0]!.prompt;
}

describe('plainTextPrompt', () => {
  it('converts a plain conversation exactly as the AI SDK does', async () => {
    const messages = conversation(5);
    expect(plainTextPrompt('Be brief.', messages)).toEqual(await sdkPrompt('Be brief.', messages));
    expect(plainTextPrompt(undefined, messages)).toEqual(await sdkPrompt(undefined, messages));
  });

  it('gives the same prompt as a fresh conversion when a chat window slides turn after turn', () => {
    // A window of 6: each turn adds a user message and the previous reply, and drops the oldest.
    const all = conversation(40, 'slide');
    for (let end = 6; end <= all.length; end += 2) {
      const window = all.slice(end - 6, end);
      const fresh = window.map((one) => ({ ...one })); // unfrozen copies: converted from scratch
      expect(plainTextPrompt('sys', window)).toEqual(plainTextPrompt('sys', fresh));
    }
  });

  it('stays right over a long chat: windows that grow, slide and shrink, with and without a system prompt', () => {
    const all = conversation(600, 'long');
    let start = 0;
    for (let end = 1; end <= all.length; end += 2) {
      // Grows to 40 messages, then slides; now and then drops more than it adds.
      if (end - start > 40) start = end - 40 + (end % 7 === 0 ? 6 : 0);
      const window = all.slice(start, end);
      const fresh = window.map((one) => ({ ...one }));
      const system = end % 3 === 0 ? undefined : 'sys';
      expect(plainTextPrompt(system, window)).toEqual(plainTextPrompt(system, fresh));
    }
  });

  it('does not reuse a run that the new call does not continue message for message', () => {
    const first = conversation(6, 'a');
    plainTextPrompt(undefined, first);
    // Same last message, a different one before it: nothing of the old run may leak in.
    const changed = [...first.slice(0, 3), message('assistant', 'edited'), ...first.slice(4)];
    expect(plainTextPrompt(undefined, changed)?.[3]).toEqual({
      role: 'assistant',
      content: [{ type: 'text', text: 'edited' }],
    });
  });

  it('sees a change to a message object that was not frozen', () => {
    const mutable = [message('user', 'before', false)];
    plainTextPrompt(undefined, mutable);
    (mutable[0] as { content: string }).content = 'after';
    expect(plainTextPrompt(undefined, mutable)).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'after' }] },
    ]);
  });

  it('hands out a new array each call, so a provider changing it cannot change the next prompt', () => {
    const messages = conversation(4, 'own');
    const first = plainTextPrompt(undefined, messages)!;
    first.length = 0;
    expect(plainTextPrompt(undefined, [...messages, message('user', 'next')])).toHaveLength(5);
  });

  it('answers undefined for anything but plain user and assistant text', () => {
    expect(plainTextPrompt(undefined, [])).toBeUndefined();
    expect(plainTextPrompt(undefined, [{ role: 'system', content: 'x' }])).toBeUndefined();
    expect(
      plainTextPrompt(undefined, [{ role: 'user', content: [{ type: 'text', text: 'parts' }] }]),
    ).toBeUndefined();
    expect(
      plainTextPrompt(undefined, [
        { role: 'user', content: 'x', providerOptions: { openai: { cache: true } } },
      ]),
    ).toBeUndefined();
  });
});
