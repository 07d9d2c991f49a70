/**
 * Agent conversations: two or more agents (a name, a system prompt, a model) discuss a topic for a number
 * of rounds, each speaking once a round in order, each seeing the transcript so far — its own words as the
 * assistant's, the others' as what it was told, named. The seed's storage:
 * `agents/conversations/{conversation_id}/participants.json` (who, what, whose, how it went) and
 * `transcript.jsonl` (an utterance a line, appended as each is finished); `owners/{user_id}.jsonl` lists a
 * user's conversations.
 */

import type { ModelMessage } from 'ai';
import { isPlatformError, NotFoundError, toPlatformError, ValidationError } from '../../core/errors.ts';
import { currentTime } from '../../core/events.ts';
import { isIdSegment, newId } from '../../core/ids.ts';
import type { ModuleContext } from '../../core/module.ts';
import { appendJsonLine, encodeJsonLine, readJsonLines } from '../../storage/json-lines.ts';
import { chargeStorageTo } from '../../storage/quota.ts';

/** An agent as a conversation holds it. */
export interface Agent {
  /** Its id in config, or `guest-<n>` for one the conversation brought. */
  id: string;
  name: string;
  systemPrompt: string;
  model?: string;
  temperature?: number;
}

/** A conversation's record (`participants.json`). */
export interface AgentConversation {
  id: string;
  ownerId: string;
  topic: string;
  participants: Agent[];
  rounds: number;
  status: 'running' | 'done' | 'failed' | 'cancelled';
  /** Why it failed (a model error), when it did. */
  error?: { code: string; message: string };
  createdAt: string;
  updatedAt: string;
}

/** One thing an agent said. */
export interface Utterance {
  id: string;
  round: number;
  agentId: string;
  name: string;
  content: string;
  time: string;
}

/** `multi_agent` config. */
export interface MultiAgentConfig {
  agents: Record<string, { name: string; system_prompt: string; model?: string; temperature?: number }>;
  max_rounds: number;
  max_participants: number;
  max_output_tokens: number;
  /** A `running` record unchanged this long is shown as interrupted (`failed`). */
  interrupted_after_ms: number;
}

/** What starting a conversation asks: participants by config id, or brought whole. */
export interface StartConversation {
  ownerId: string;
  topic: string;
  participants: (string | { name: string; systemPrompt: string; model?: string; temperature?: number })[];
  rounds?: number;
}

/** Told as the conversation goes: an utterance's text as it is written, and each utterance once done. */
export interface ConversationListener {
  delta?(utterance: { id: string; agentId: string; name: string; round: number }, text: string): void;
  utterance?(utterance: Utterance): void;
}

const decoder = new TextDecoder();

/** The conversation's participants, checked: config ids resolved, brought agents validated. */
function participantsOf(request: StartConversation, config: MultiAgentConfig): Agent[] {
  const listed = request.participants;
  if (!Array.isArray(listed) || listed.length < 2 || listed.length > config.max_participants) {
    throw new ValidationError(
      `participants: from 2 to ${config.max_participants} agents (multi_agent.max_participants)`,
      {
        details: { field: 'participants', limit: config.max_participants },
      },
    );
  }
  return listed.map((participant, index): Agent => {
    if (typeof participant === 'string') {
      const configured = Object.hasOwn(config.agents, participant) ? config.agents[participant] : undefined;
      if (configured === undefined) {
        throw new ValidationError(
          `participants[${index}]: no agent "${participant}" (GET /v1/agents lists them)`,
          {
            details: { field: `participants[${index}]`, known: Object.keys(config.agents) },
          },
        );
      }
      return {
        id: participant,
        name: configured.name,
        systemPrompt: configured.system_prompt,
        ...(configured.model === undefined ? {} : { model: configured.model }),
        ...(configured.temperature === undefined ? {} : { temperature: configured.temperature }),
      };
    }
    const { name, systemPrompt, model, temperature } = participant ?? {};
    if (
      typeof name !== 'string' ||
      name.trim() === '' ||
      typeof systemPrompt !== 'string' ||
      systemPrompt.trim() === ''
    ) {
      throw new ValidationError(
        `participants[${index}]: an agent id, or { name, systemPrompt, model?, temperature? }`,
        {
          details: { field: `participants[${index}]` },
        },
      );
    }
    return {
      id: `guest-${index + 1}`,
      name: name.trim(),
      systemPrompt,
      ...(typeof model === 'string' ? { model } : {}),
      ...(typeof temperature === 'number' ? { temperature } : {}),
    };
  });
}

/** What `agent` is told: its part, then the transcript — its own words as its, the others' named. */
export function promptFor(agent: Agent, conversation: AgentConversation, transcript: readonly Utterance[]) {
  const others = conversation.participants
    .filter((participant) => participant.id !== agent.id)
    .map((p) => p.name);
  const system =
    `${agent.systemPrompt}\n\n` +
    `You are ${agent.name}, in a conversation with ${others.join(', ')} about: ${conversation.topic}\n` +
    `Speak only as ${agent.name}, in a few sentences; answer what was said before you. Do not write the others' lines.`;
  const messages: ModelMessage[] = [{ role: 'user', content: `The topic: ${conversation.topic}` }];
  for (const utterance of transcript) {
    messages.push(
      utterance.agentId === agent.id
        ? { role: 'assistant', content: utterance.content }
        : { role: 'user', content: `${utterance.name}: ${utterance.content}` },
    );
  }
  return { system, messages };
}

export interface Conversations {
  /** Throws the ValidationError `run` would throw for `request` (a stream checks before it starts). */
  check(request: StartConversation): void;
  /** Runs a conversation to its end (or a failure, or `signal`); resolves with its record and transcript. */
  run(
    request: StartConversation,
    options: { signal?: AbortSignal; listener?: ConversationListener; conversationId?: string },
  ): Promise<{ conversation: AgentConversation; transcript: Utterance[] }>;
  /** A conversation of `ownerId` with its transcript; NotFoundError for a missing one and another user's. */
  get(
    ownerId: string,
    conversationId: string,
  ): Promise<{ conversation: AgentConversation; transcript: Utterance[] }>;
  /** `ownerId`'s conversations, newest first. */
  list(ownerId: string): Promise<AgentConversation[]>;
  /** Deletes every conversation of `ownerId` and the list of them (an erased user); how many there were. */
  erase(ownerId: string): Promise<number>;
}

export function createConversations(
  ctx: Pick<ModuleContext<MultiAgentConfig>, 'storage' | 'llm' | 'config' | 'log'>,
): Conversations {
  const { storage, config } = ctx;
  const folder = (id: string) => `conversations/${id}`;
  /** The conversations this node is running now (never shown as interrupted, however slow). */
  const runningHere = new Set<string>();

  /** The request's topic, rounds and agents, or the ValidationError that says what is wrong with it. */
  function checked(request: StartConversation): { topic: string; rounds: number; participants: Agent[] } {
    if (typeof request.topic !== 'string' || request.topic.trim() === '' || request.topic.length > 2000) {
      throw new ValidationError('topic: 1 to 2,000 characters', { details: { field: 'topic' } });
    }
    const rounds = request.rounds ?? 2;
    if (!Number.isInteger(rounds) || rounds < 1 || rounds > config.max_rounds) {
      throw new ValidationError(`rounds: from 1 to ${config.max_rounds} (multi_agent.max_rounds)`, {
        details: { field: 'rounds', limit: config.max_rounds },
      });
    }
    return { topic: request.topic.trim(), rounds, participants: participantsOf(request, config) };
  }

  async function save(conversation: AgentConversation): Promise<void> {
    await storage.write(`${folder(conversation.id)}/participants.json`, encodeJsonLine(conversation));
  }

  /**
   * The record of a conversation that ended. One stopped by its owner's storage quota may have no room for
   * the error it ended with: it is stored without it then (a record that does not grow is never refused),
   * so it never stays `running`; the caller still gets the whole record.
   */
  async function saveEnd(conversation: AgentConversation): Promise<void> {
    try {
      await save(conversation);
    } catch (error) {
      if (!isPlatformError(error, 'CHAT_ERR_STORAGE_QUOTA_EXCEEDED') || conversation.error === undefined) {
        throw error;
      }
      const { error: _left, ...withoutError } = conversation;
      await save(withoutError);
    }
  }

  async function readRecord(conversationId: string): Promise<AgentConversation | undefined> {
    if (!isIdSegment(conversationId)) return undefined;
    const bytes = await storage.read(`${folder(conversationId)}/participants.json`);
    return bytes === undefined ? undefined : shown(JSON.parse(decoder.decode(bytes)) as AgentConversation);
  }

  /**
   * The record as it is shown: one still `running` that no node has touched for `interrupted_after_ms`
   * (a running conversation refreshes it at every utterance) stopped without finishing — its node stopped
   * or crashed mid-way, or its end could not be stored — so it is `failed`, not running forever.
   */
  function shown(record: AgentConversation): AgentConversation {
    if (record.status !== 'running' || runningHere.has(record.id)) return record;
    const idleMs = Date.now() - Date.parse(record.updatedAt);
    if (!(idleMs >= config.interrupted_after_ms)) return record;
    return {
      ...record,
      status: 'failed',
      error: {
        code: 'CHAT_ERR_AGENT_CONVERSATION_INTERRUPTED',
        message: `the conversation stopped without finishing: nothing happened in it for ${Math.round(idleMs / 1000)} s (multi_agent.interrupted_after_ms); start it again`,
      },
    };
  }

  function readTranscript(conversationId: string): Promise<Utterance[]> {
    return readJsonLines<Utterance>(storage, `${folder(conversationId)}/transcript.jsonl`);
  }

  /** One utterance of `agent`, streamed to the listener as it is written. */
  async function speak(
    agent: Agent,
    conversation: AgentConversation,
    transcript: readonly Utterance[],
    round: number,
    options: { signal?: AbortSignal; listener?: ConversationListener },
  ): Promise<Utterance> {
    const { system, messages } = promptFor(agent, conversation, transcript);
    const id = newId();
    const heading = { id, agentId: agent.id, name: agent.name, round };
    let content = '';
    for await (const part of ctx.llm.stream({
      system,
      messages,
      maxOutputTokens: config.max_output_tokens,
      ...(agent.model === undefined ? {} : { model: agent.model }),
      ...(agent.temperature === undefined ? {} : { temperature: agent.temperature }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    })) {
      if (part.type === 'text-delta') {
        content += part.text;
        options.listener?.delta?.(heading, part.text);
      }
    }
    return { ...heading, content: content.trim(), time: currentTime() };
  }

  /**
   * Speaks the rounds of a conversation whose record is stored, storing each utterance as it is done and
   * refreshing the record's `updatedAt` (how readers tell a conversation under way from one that stopped
   * without finishing), then stores how it ended; resolves with the transcript.
   */
  async function runRounds(
    conversation: AgentConversation,
    options: { signal?: AbortSignal; listener?: ConversationListener },
  ): Promise<Utterance[]> {
    const transcript: Utterance[] = [];
    try {
      for (let round = 1; round <= conversation.rounds; round++) {
        for (const agent of conversation.participants) {
          const utterance = await speak(agent, conversation, transcript, round, options);
          transcript.push(utterance);
          await appendJsonLine(storage, `${folder(conversation.id)}/transcript.jsonl`, utterance);
          options.listener?.utterance?.(utterance);
          // The same size (a timestamp for a timestamp): never refused by the storage quota.
          conversation.updatedAt = utterance.time;
          await save(conversation);
        }
      }
      conversation.status = 'done';
    } catch (error) {
      const failure = toPlatformError(error);
      conversation.status = options.signal?.aborted ? 'cancelled' : 'failed';
      if (conversation.status === 'failed')
        conversation.error = { code: failure.code, message: failure.message };
      ctx.log.info(
        { conversationId: conversation.id, status: conversation.status },
        'agent conversation stopped',
      );
    }
    conversation.updatedAt = currentTime();
    await saveEnd(conversation);
    return transcript;
  }

  return {
    check(request) {
      checked(request);
    },

    async run(request, options) {
      const { topic, rounds, participants } = checked(request);
      // Everything the conversation stores is its owner's, counted against their storage quota: its keys
      // do not name the user, so they are charged by context (storage/quota.ts).
      return chargeStorageTo(request.ownerId, async () => {
        const now = currentTime();
        const conversation: AgentConversation = {
          id: options.conversationId ?? newId(),
          ownerId: request.ownerId,
          topic,
          participants,
          rounds,
          status: 'running',
          createdAt: now,
          updatedAt: now,
        };
        runningHere.add(conversation.id);
        try {
          await save(conversation);
          await appendJsonLine(storage, `owners/${request.ownerId}.jsonl`, {
            id: conversation.id,
            createdAt: now,
          });
          const transcript = await runRounds(conversation, options);
          return { conversation, transcript };
        } finally {
          runningHere.delete(conversation.id);
        }
      });
    },

    async get(ownerId, conversationId) {
      const conversation = await readRecord(conversationId);
      // Another user's conversation answers like a missing one.
      if (conversation === undefined || conversation.ownerId !== ownerId) {
        throw new NotFoundError(`no agent conversation "${conversationId}"`);
      }
      return { conversation, transcript: await readTranscript(conversationId) };
    },

    async list(ownerId) {
      if (!isIdSegment(ownerId)) throw new ValidationError(`not a user id: "${ownerId}"`);
      const ids = (await readJsonLines<{ id: string }>(storage, `owners/${ownerId}.jsonl`)).map(
        (line) => line.id,
      );
      const records = await Promise.all(ids.map((id) => readRecord(id)));
      return records
        .filter((record): record is AgentConversation => record?.ownerId === ownerId)
        .sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
    },

    async erase(ownerId) {
      if (!isIdSegment(ownerId)) throw new ValidationError(`not a user id: "${ownerId}"`);
      const ownersKey = `owners/${ownerId}.jsonl`;
      const ids = new Set((await readJsonLines<{ id: string }>(storage, ownersKey)).map((line) => line.id));
      let erased = 0;
      for (const id of ids) {
        // Only the owner's: a listed id whose record names another owner is not theirs to delete.
        if ((await readRecord(id))?.ownerId !== ownerId) continue;
        for (const key of await storage.list(`${folder(id)}/`)) await storage.delete(key);
        erased += 1;
      }
      await storage.delete(ownersKey);
      return erased;
    },
  };
}
