import { ValidationError } from '../../core/errors.ts';
import type { EventEnvelope } from '../../core/events.ts';
import { defineModule } from '../../core/module.ts';
import { USER_ERASE, type UserEraseRequest } from '../../core/user-erasure.ts';
import defaults from './config.json' with { type: 'json' };
import configSchema from './config.schema.json' with { type: 'json' };
import { createMemoryBanks, type Memory } from './memory-bank.ts';
import type { MemoryConfig, MemoryForgetRequest, MemoryListRequest } from './types.ts';

/** A message as text_chat's `message.received` carries it. */
interface ReceivedMessage {
  userId: string;
  sessionId: string;
  message: { id: string; role: string; content: string; timestamp: string };
}

/** The part of `knowledge.query` memory reads. */
interface KnowledgeQuery {
  userId?: string;
  query: string;
  sessionId?: string;
  topK?: number;
}

/** The user a request is for: its data's `userId`, else the envelope's; a ValidationError without one. */
function userOf(event: EventEnvelope<{ userId?: unknown }>): string {
  const userId = event.data?.userId ?? event.userId;
  if (typeof userId !== 'string' || userId === '') {
    throw new ValidationError(`${event.type} needs a userId (in the data or the envelope)`, {
      details: { field: 'userId' },
    });
  }
  return userId;
}

/**
 * Long-term memory across conversations: what a user writes in one chat is remembered in their memory bank
 * (`memory/long_term/{user_id}/memory_bank.jsonl`), and a turn in another chat is given the memories that
 * bear on it — through `knowledge.query`, the aggregation text_chat already gathers for each turn — so
 * "what was my dog called again?" in a new chat finds "my dog Max…" from last week. A user lists and
 * forgets their memories (`memory.list`, `memory.forget`; `GET` / `DELETE /v1/memories`); deleting a chat
 * forgets what was said in it.
 */
export default defineModule<MemoryConfig>({
  info: {
    name: 'memory',
    version: '1.0.0',
    capabilities: ['read_messages', 'access_user_data'],
    dependencies: [],
  },
  configSchema,
  defaults,
  handles: [
    'message.received',
    'knowledge.query',
    'memory.list',
    'memory.forget',
    'session.deleted',
    USER_ERASE,
  ],
  setup(ctx) {
    const config = ctx.config;
    const banks = createMemoryBanks(ctx.storage, { maxUsers: config.max_users_cached });

    return {
      handlers: {
        'message.received': async (event: EventEnvelope<ReceivedMessage>) => {
          const { userId, sessionId, message } = event.data ?? {};
          if (!config.capture.enabled || message?.role !== 'user') return;
          const text = message.content.trim();
          if (text.length < config.capture.min_characters) return;
          const memory: Memory = { id: message.id, sessionId, time: message.timestamp, text };
          // Not awaited: the turn that emitted this waits for its handlers, and a memory is no reason to
          // hold up a reply. A failure is logged; the message itself is safe in the session's log.
          banks.remember(userId, memory).catch((error: unknown) => {
            ctx.log.warn({ err: error, userId, sessionId }, 'memory: a message could not be remembered');
          });
        },

        // The seed's aggregation: memory's part of a turn's knowledge, beside rag's documents.
        'knowledge.query': async (event: EventEnvelope<KnowledgeQuery>) => {
          // Recall off: nothing here for anyone, ever (text_chat stops asking: knowledge-hints.ts).
          if (!config.recall.enabled) return { results: [], empty: true };
          const userId = userOf(event);
          const limit = Math.min(event.data.topK ?? config.recall.top_k, config.recall.top_k);
          const recalled = await banks.recall(userId, String(event.data.query ?? ''), {
            limit,
            ...(event.data.sessionId === undefined ? {} : { excludeSessionId: event.data.sessionId }),
          });
          return {
            results: recalled.map((memory) => ({
              source: 'memory',
              docId: `memory:${memory.sessionId}`,
              chunkId: memory.id,
              title: 'An earlier conversation',
              start: 0,
              end: memory.text.length,
              text: memory.text,
              time: memory.time,
              sessionId: memory.sessionId,
              score: memory.score,
            })),
          };
        },

        'memory.list': async (event: EventEnvelope<MemoryListRequest>) => {
          const limit = event.data?.limit ?? 100;
          if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
            throw new ValidationError('memory.list: limit must be an integer from 1 to 1000', {
              details: { field: 'limit', value: limit },
            });
          }
          const before = event.data?.before;
          return {
            memories: await banks.list(userOf(event), { limit, ...(before === undefined ? {} : { before }) }),
          };
        },

        'memory.forget': async (event: EventEnvelope<MemoryForgetRequest>) => {
          const userId = userOf(event);
          const data = event.data as { memoryId?: unknown; all?: unknown };
          if (data.all === true) return { forgotten: await banks.forget(userId, { all: true }) };
          if (typeof data.memoryId !== 'string' || data.memoryId === '') {
            throw new ValidationError('memory.forget needs a memoryId, or all: true', {
              details: { field: 'memoryId' },
            });
          }
          return { forgotten: await banks.forget(userId, { memoryId: data.memoryId }) };
        },

        // A deleted chat takes what was said in it out of memory too.
        'session.deleted': async (event: EventEnvelope<{ userId: string; sessionId: string }>) => {
          const { userId, sessionId } = event.data;
          await banks.forget(userId, { sessionId });
        },

        // An erased user: the whole bank goes.
        [USER_ERASE]: async (event: EventEnvelope<UserEraseRequest>) => ({
          erased: await banks.erase(userOf(event)),
        }),
      },
      health: () => ({ healthy: true }),
      // Memories on their way to storage are written before the platform closes storage.
      dispose: () => banks.settled(),
    };
  },
});
