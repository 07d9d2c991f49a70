/**
 * Agent conversations over HTTP (the multi_agent module, on any node): the configured agents, a
 * conversation run to its end — answered as JSON when it is over, or streamed over SSE utterance by
 * utterance — and a user's own conversations (another user's id is a 404, like a missing one).
 */

import type { FastifyInstance } from 'fastify';
import type { EventEnvelope } from '../../core/events.ts';
import { newId } from '../../core/ids.ts';
import { principalOf } from '../auth-hook.ts';
import { toHttpError } from '../http-errors.ts';
import { requestOptionalModule } from '../optional-module.ts';
import { errorResponses, idParams } from '../schemas.ts';
import type { ServerContext } from '../server-context.ts';
import { createSseStream } from '../sse.ts';

/** How long a conversation may run before its request gives up waiting (it goes on and is stored). */
const CONVERSATION_TIMEOUT_MS = 15 * 60 * 1000;

const agentSchema = {
  type: 'object',
  required: ['name', 'systemPrompt'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 100 },
    systemPrompt: { type: 'string', minLength: 1, maxLength: 20000 },
    model: { type: 'string', pattern: '^[^:\\s]+:\\S+$' },
    temperature: { type: 'number', minimum: 0, maximum: 2 },
  },
} as const;

const conversationBody = {
  type: 'object',
  required: ['topic', 'participants'],
  additionalProperties: false,
  properties: {
    topic: { type: 'string', minLength: 1, maxLength: 2000 },
    participants: {
      type: 'array',
      minItems: 2,
      maxItems: 20,
      items: { anyOf: [{ type: 'string', minLength: 1, maxLength: 64 }, agentSchema] },
      description:
        'Agent ids (GET /v1/agents), or agents brought whole: { name, systemPrompt, model?, temperature? }',
    },
    rounds: {
      type: 'integer',
      minimum: 1,
      maximum: 50,
      description: 'Each participant speaks once a round (default 2)',
    },
  },
} as const;

interface ConversationBody {
  topic: string;
  participants: unknown[];
  rounds?: number;
}

/** Registers /v1/agents and /v1/agent-conversations. */
export function registerAgentRoutes(app: FastifyInstance, context: ServerContext): void {
  const { bus } = context.platform;
  const tags = ['agents'];

  /** Asks the multi_agent module (on any node). */
  const ask = <Reply>(type: string, data: Record<string, unknown>, options: { timeout?: number } = {}) =>
    requestOptionalModule<Reply>(bus, type, data, {
      ...(typeof data.userId === 'string' ? { userId: data.userId } : {}),
      ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
      whenOff: 'agent conversations are off: the multi_agent module is not loaded (multi_agent.enabled)',
    });

  app.get(
    '/v1/agents',
    { schema: { tags, summary: 'The configured agents a conversation can name' } },
    async () => ask('agents.list', {}),
  );

  app.get(
    '/v1/agent-conversations',
    { schema: { tags, summary: 'Your agent conversations, newest first' } },
    async (request) => ask('agents.conversation.list', { userId: principalOf(request).userId }),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/agent-conversations/:id',
    {
      schema: {
        tags,
        summary: 'An agent conversation and its transcript',
        params: idParams,
        response: errorResponses,
      },
    },
    async (request) =>
      ask('agents.conversation.get', {
        userId: principalOf(request).userId,
        conversationId: request.params.id,
      }),
  );

  app.post<{ Body: ConversationBody; Querystring: { stream?: string } }>(
    '/v1/agent-conversations',
    {
      schema: {
        tags,
        summary: 'Run an agent conversation: JSON when it is over, or ?stream=sse utterance by utterance',
        body: conversationBody,
        querystring: { type: 'object', properties: { stream: { type: 'string', enum: ['sse'] } } },
        response: errorResponses,
      },
    },
    async (request, reply) => {
      const userId = principalOf(request).userId;
      const conversationId = newId();
      const run = () =>
        ask<{ conversation: { status: string } }>(
          'agents.conversation.run',
          { userId, conversationId, ...request.body },
          { timeout: CONVERSATION_TIMEOUT_MS },
        );
      if (request.query.stream !== 'sse') return reply.status(201).send(await run());
      // A request the module would refuse is answered 400 now, before the stream (and its 200) starts.
      await ask('agents.conversation.check', { userId, ...request.body });

      const stream = createSseStream(reply, { heartbeatMs: context.sseHeartbeatMs });
      const ours = (event: EventEnvelope) => event.correlationId === conversationId;
      // The module's events (its types are the module's own: a route never imports a module).
      const stopDeltas = bus.on('agents.utterance.delta', (event: EventEnvelope) => {
        if (!ours(event)) return;
        const { conversationId: _id, ...delta } = event.data as Record<string, unknown>;
        stream.send('delta', delta);
      });
      const stopUtterances = bus.on('agents.utterance', (event: EventEnvelope) => {
        if (ours(event)) stream.send('utterance', (event.data as { utterance: unknown }).utterance);
      });
      // The client went away: the conversation stops where it is (what was said is stored).
      stream.onDisconnect(
        () => void bus.emit('agents.conversation.cancel', { conversationId, userId }).catch(() => {}),
      );
      stream.send('start', { conversationId });
      try {
        const result = await run();
        stream.send('end', result);
      } catch (error) {
        stream.send('error', toHttpError(error, context).body);
      } finally {
        stopDeltas();
        stopUtterances();
        stream.end();
      }
      return reply;
    },
  );
}
