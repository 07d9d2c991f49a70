/**
 * Mastra as its docs set up an agent with memory: `@mastra/core` Agent, `@mastra/memory` Memory on
 * `@mastra/libsql` (a SQLite file; Mastra sets WAL with synchronous=NORMAL, so a commit is not fsynced),
 * default memory options (the last 10 messages go to the model). The model is reply.ts's zero-latency AI SDK
 * model, streamed the way parley's streams.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '@mastra/core/agent';
import { LibSQLStore } from '@mastra/libsql';
import { Memory } from '@mastra/memory';
import { INSTRUCTIONS, mockModel, type Subject } from './reply.ts';

export async function setup(): Promise<Subject> {
  const directory = await mkdtemp(join(tmpdir(), 'parley-peers-mastra-'));
  const model = mockModel();
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
