import { ValidationError } from '../../core/errors.ts';
import type { EventEnvelope } from '../../core/events.ts';
import { defineModule } from '../../core/module.ts';
import { USER_ERASE, type UserEraseRequest } from '../../core/user-erasure.ts';
import defaults from './config.json' with { type: 'json' };
import configSchema from './config.schema.json' with { type: 'json' };
import { createConversations, type MultiAgentConfig, type StartConversation } from './conversations.ts';

/** `agents.conversation.run`: who asks, and the conversation (its id chosen by the caller, for its events). */
interface RunRequest extends Omit<StartConversation, 'ownerId'> {
  userId: string;
  conversationId?: string;
}

function userOf(event: EventEnvelope<{ userId?: unknown }>): string {
  const userId = event.data?.userId;
  if (typeof userId !== 'string' || userId === '') {
    throw new ValidationError(`${event.type} needs a userId`, { details: { field: 'userId' } });
  }
  return userId;
}

/**
 * Multi-agent conversations: agents (configured, or brought by the conversation) discuss a topic in rounds,
 * each in turn, each seeing what the others said. Every utterance streams as `agents.utterance.delta` and is
 * stored when finished (`agents.utterance`); `agents.conversation.cancel` stops a conversation under way.
 */
export default defineModule<MultiAgentConfig>({
  info: { name: 'multi_agent', version: '1.0.0', capabilities: [], dependencies: [] },
  configSchema,
  defaults,
  setup(ctx) {
    const conversations = createConversations(ctx);
    // Conversations under way on this node, with whose they are (only the owner stops one).
    const running = new Map<
      string,
      { controller: AbortController; ownerId: string; finished: Promise<unknown> }
    >();

    return {
      handlers: {
        'agents.list': () => ({
          agents: Object.entries(ctx.config.agents).map(([id, agent]) => ({
            id,
            name: agent.name,
            systemPrompt: agent.system_prompt,
            ...(agent.model === undefined ? {} : { model: agent.model }),
          })),
        }),

        // What run would refuse, refused before a stream starts (so it is a 4xx, not an error event).
        'agents.conversation.check': (event: EventEnvelope<RunRequest>) => {
          const { topic, participants, rounds } = event.data;
          conversations.check({
            ownerId: userOf(event),
            topic,
            participants,
            ...(rounds === undefined ? {} : { rounds }),
          });
          return { ok: true };
        },

        'agents.conversation.run': async (event: EventEnvelope<RunRequest>) => {
          const ownerId = userOf(event);
          const { topic, participants, rounds, conversationId } = event.data;
          const controller = new AbortController();
          const id = conversationId ?? event.correlationId;
          const entry = { controller, ownerId, finished: Promise.resolve() as Promise<unknown> };
          if (id !== undefined) running.set(id, entry);
          const envelope = { userId: ownerId, ...(id === undefined ? {} : { correlationId: id }) };
          try {
            const work = conversations.run(
              { ownerId, topic, participants, ...(rounds === undefined ? {} : { rounds }) },
              {
                signal: controller.signal,
                ...(id === undefined ? {} : { conversationId: id }),
                listener: {
                  delta: (utterance, text) =>
                    void ctx
                      .emit('agents.utterance.delta', { conversationId: id, ...utterance, text }, envelope)
                      .catch(() => {}),
                  utterance: (utterance) =>
                    void ctx
                      .emit('agents.utterance', { conversationId: id, utterance }, envelope)
                      .catch(() => {}),
                },
              },
            );
            entry.finished = work.catch(() => {});
            return await work;
          } finally {
            if (id !== undefined) running.delete(id);
          }
        },

        'agents.conversation.get': (event: EventEnvelope<{ userId: string; conversationId: string }>) =>
          conversations.get(userOf(event), String(event.data.conversationId ?? '')),

        'agents.conversation.list': async (event: EventEnvelope<{ userId: string }>) => ({
          conversations: await conversations.list(userOf(event)),
        }),

        // Every node listens: the conversation runs wherever its request was taken.
        'agents.conversation.cancel': {
          mode: 'local',
          handler: (event: EventEnvelope<{ conversationId?: string; userId?: string }>) => {
            const under = running.get(String(event.data?.conversationId));
            if (under !== undefined && under.ownerId === event.data?.userId) under.controller.abort();
          },
        },

        // An erased user: their conversations under way on this node stop, and every stored one goes.
        [USER_ERASE]: async (event: EventEnvelope<UserEraseRequest>) => {
          const ownerId = userOf(event);
          // Stopped and finished first: a conversation stopping stores its last state, which must not
          // land after the erasure.
          const stopping = [...running.values()].filter((under) => under.ownerId === ownerId);
          for (const under of stopping) under.controller.abort();
          await Promise.all(stopping.map((under) => under.finished));
          return { erased: await conversations.erase(ownerId) };
        },
      },
      health: () => ({ healthy: true }),
      dispose() {
        for (const { controller } of running.values()) controller.abort();
      },
    };
  },
});
