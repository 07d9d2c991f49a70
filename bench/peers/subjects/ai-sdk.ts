/**
 * The floor: the raw AI SDK call a chat turn cannot do without — `generateText` on the mock model with the
 * user's message alone. No history, nothing stored.
 */
import { generateText } from 'ai';
import { INSTRUCTIONS, mockModel, type Subject } from './reply.ts';

export async function setup(): Promise<Subject> {
  const model = mockModel();
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
