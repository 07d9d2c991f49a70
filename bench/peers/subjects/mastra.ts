/**
 * Mastra as its docs set up an agent with memory: `@mastra/core` Agent, `@mastra/memory` Memory on
 * `@mastra/libsql` (a SQLite file; Mastra sets WAL with synchronous=NORMAL, so a commit is not fsynced),
 * default memory options (the last 10 messages go to the model). The model is the AI SDK mock, streamed
 * the way parley's mock streams.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '@mastra/core/agent';
import { LibSQLStore } from '@mastra/libsql';
import { Memory } from '@mastra/memory';
import { MockLanguageModelV3 } from 'ai/test';
import { INSTRUCTIONS, REPLY, REPLY_TOKENS, type Subject } from './reply.ts';

const usage = {
  inputTokens: { total: 12, noCache: 12, cacheRead: 0, cacheWrite: 0 },
  outputTokens: { total: REPLY_TOKENS.length, text: REPLY_TOKENS.length, reasoning: 0 },
};

export async function setup(): Promise<Subject> {
  const directory = await mkdtemp(join(tmpdir(), 'parley-peers-mastra-'));
  const model = new MockLanguageModelV3({
    doGenerate: async () => ({
      content: [{ type: 'text', text: REPLY }],
      finishReason: { unified: 'stop', raw: 'stop' },
      usage,
      warnings: [],
    }),
    doStream: async () => ({
      stream: new ReadableStream({
        start(controller) {
          controller.enqueue({ type: 'stream-start', warnings: [] });
          controller.enqueue({ type: 'text-start', id: 't' });
          for (const delta of REPLY_TOKENS) controller.enqueue({ type: 'text-delta', id: 't', delta });
          controller.enqueue({ type: 'text-end', id: 't' });
          controller.enqueue({ type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage });
          controller.close();
        },
      }),
    }),
  });
  const storage = new LibSQLStore({ id: 'bench', url: `file:${join(directory, 'mastra.db')}` });
  const memory = new Memory({ storage });
  const agent = new Agent({ id: 'bench', name: 'bench', instructions: INSTRUCTIONS, model, memory });
  return {
    newSession: async (index) => `thread-${index}`,
    async turn(sessionId, content) {
      const result = await agent.generate(content, { memory: { thread: sessionId, resource: 'user-1' } });
      return result.text;
    },
    async storedMessages(sessionId) {
      const { messages } = await memory.recall({ threadId: sessionId, resourceId: 'user-1', perPage: false });
      return messages.length;
    },
    async close() {
      await rm(directory, { recursive: true, force: true });
    },
  };
}
