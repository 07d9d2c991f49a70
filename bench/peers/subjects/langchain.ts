/**
 * LangChain.js as its docs set up an agent with memory: `createAgent` (langchain) with a LangGraph
 * `MemorySaver` checkpointer, one thread per conversation (the whole thread goes to the model each turn).
 * MemorySaver keeps the history in memory only; the persistent checkpointers need native SQLite or a
 * database server. The model is LangChain's own zero-latency fake chat model.
 */
import { MemorySaver } from '@langchain/langgraph';
import { FakeListChatModel } from '@langchain/core/utils/testing';
import { createAgent } from 'langchain';
import { INSTRUCTIONS, REPLY, type Subject } from './reply.ts';

export async function setup(): Promise<Subject> {
  const checkpointer = new MemorySaver();
  const agent = createAgent({
    model: new FakeListChatModel({ responses: [REPLY] }),
    tools: [],
    systemPrompt: INSTRUCTIONS,
    checkpointer,
  });
  return {
    newSession: async (index) => `thread-${index}`,
    async turn(sessionId, content) {
      const state = await agent.invoke(
        { messages: [{ role: 'user', content }] },
        { configurable: { thread_id: sessionId } },
      );
      return String(state.messages.at(-1)?.content ?? '');
    },
    async storedMessages(sessionId) {
      const state = await agent.getState({ configurable: { thread_id: sessionId } });
      return (state.values as { messages?: unknown[] }).messages?.length ?? 0;
    },
    close: async () => {},
  };
}
