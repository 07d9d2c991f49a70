/**
 * The floor: the raw AI SDK call a chat turn cannot do without — `generateText` on the mock model with the
 * user's message alone. No history, nothing stored.
 */
import { generateText } from 'ai';
import { MockLanguageModelV3 } from 'ai/test';
import { INSTRUCTIONS, REPLY, REPLY_TOKENS, type Subject } from './reply.ts';

export async function setup(): Promise<Subject> {
  const model = new MockLanguageModelV3({
    doGenerate: async () => ({
      content: [{ type: 'text', text: REPLY }],
      finishReason: { unified: 'stop', raw: 'stop' },
      usage: {
        inputTokens: { total: 12, noCache: 12, cacheRead: 0, cacheWrite: 0 },
        outputTokens: { total: REPLY_TOKENS.length, text: REPLY_TOKENS.length, reasoning: 0 },
      },
      warnings: [],
    }),
  });
  return {
    newSession: async (index) => `s${index}`,
    async turn(_sessionId, content) {
      const result = await generateText({ model, system: INSTRUCTIONS, messages: [{ role: 'user', content }] });
      return result.text;
    },
    storedMessages: async () => 0,
    close: async () => {},
  };
}
