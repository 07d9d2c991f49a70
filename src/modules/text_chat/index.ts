import { randomUUID } from 'node:crypto';
import { createDeadlines } from '../../core/deadlines.ts';
import type { EventEnvelope } from '../../core/events.ts';
import { defineModule } from '../../core/module.ts';
import { USER_ERASE, type UserEraseRequest } from '../../core/user-erasure.ts';
import defaults from './config.json' with { type: 'json' };
import configSchema from './config.schema.json' with { type: 'json' };
import { createFeedbackRequests } from './feedback.ts';
import { createHistoryCache } from './history-cache.ts';
import { createKnowledgeHints } from './knowledge-hints.ts';
import { createMessageSearch } from './message-search.ts';
import { createPersonaLookup } from './persona-lookup.ts';
import { createQuotaRefusals } from './quota-refusals.ts';
import { createRateLimiter } from './rate-limiter.ts';
import { runRegenerate } from './regenerate.ts';
import { createSessionRequests } from './session-requests.ts';
import { createSessionStore } from './sessions.ts';
import { createToolCatalog } from './tools.ts';
import { runTurn, type TurnDependencies } from './turn.ts';
import { startTurnHeartbeat } from './turn-heartbeat.ts';
import { createTurnRegistry } from './turn-registry.ts';
import { createTurnsUnderWay } from './turns-under-way.ts';
import type {
  ChatCancel,
  ChatRateLimitUsed,
  ChatResponseAlive,
  ChatResponseEnd,
  ChatResponseError,
  ChatTurnStarted,
  MessageReceived,
  MessageRegenerateRequest,
  MessageSendRequest,
  SessionDeleted,
  TextChatApi,
  TextChatConfig,
} from './types.ts';

/** One minute: the window of `rate_limiting.max_messages_per_minute`. */
const RATE_WINDOW_MS = 60_000;

/**
 * Text chat (the seed's `text_chat`): sessions, chat turns streamed as `chat.response.*` events, and the
 * message log `sessions/{user_id}/{session_id}/messages.jsonl`. The HTTP server talks to it only through the
 * bus (docs: this folder's README and the chat contract), so a turn may run on any node.
 */
export default defineModule<TextChatConfig, TextChatApi>({
  info: {
    name: 'text_chat',
    version: '1.0.0',
    capabilities: ['read_messages', 'write_messages'],
    dependencies: [],
    optionalDependencies: ['persona'],
  },
  configSchema,
  defaults,
  handles: [
    'session.start',
    'session.list',
    'session.get',
    'session.update',
    'session.delete',
    USER_ERASE,
    'messages.list',
    'messages.export',
    'messages.search',
    'message.send',
    'chat.message',
    'message.regenerate',
    'message.rate',
    'messages.feedback',
  ],
  setup(ctx) {
    const config = ctx.config;
    const sessions = createSessionStore(ctx.storage, {
      touchDelayMs: config.session_touch_delay_ms,
      onTouchError: (error, sessionId) =>
        ctx.log.warn({ err: error, sessionId }, "could not write the session's updatedAt"),
    });
    const history = createHistoryCache({ maxBytes: config.history_cache.max_bytes });
    const search = createMessageSearch({
      maxBytes: config.search.max_bytes,
      resyncMs: config.search.resync_ms,
    });
    const requests = createSessionRequests(ctx, sessions, history, search);
    const feedback = createFeedbackRequests(ctx, sessions, history);
    const turns = createTurnRegistry({ rememberMs: config.turn_timeout_ms });
    const deps: TurnDependencies = {
      ctx,
      sessions,
      history,
      turns,
      persona: createPersonaLookup(ctx),
      tools: createToolCatalog(ctx, config.tools),
      search,
      knowledgeHints: createKnowledgeHints(),
      quotaRefusals: createQuotaRefusals(),
      underWay: createTurnsUnderWay({ lostAfterMs: config.turn_recovery.lost_after_ms }),
      node: randomUUID(),
      deadlines: createDeadlines(),
      rateLimiter: config.rate_limiting.enabled
        ? createRateLimiter({ limit: config.rate_limiting.max_messages_per_minute, windowMs: RATE_WINDOW_MS })
        : undefined,
    };

    const turn = (event: EventEnvelope<MessageSendRequest>) => runTurn(deps, event);
    // Alone on its bus, a node hears only its own turns' messages, ends and errors, which it knows of
    // already (a turn releases its keyed repeats and notes its messages for search itself): it does not
    // listen to them.
    const lone = ctx.cluster?.multiNode === false;
    // A turn's end or error, from any node: it is no longer generating (turns-under-way.ts).
    const turnEnded = {
      mode: 'local' as const,
      handler: (event: EventEnvelope<ChatResponseEnd | ChatResponseError>) => {
        const turnId = event.data?.turnId;
        if (typeof turnId === 'string') deps.underWay.ended(turnId, Date.parse(event.time));
      },
    };
    // Every node's search index hears what any node stored or deleted (this node's own appends are noted
    // by the turn as well; notes are deduplicated by message id).
    const noteStored = (userId: unknown, sessionId: unknown, message: unknown) => {
      if (typeof userId !== 'string' || typeof sessionId !== 'string') return;
      if (typeof message !== 'object' || message === null) return;
      search.noted(userId, sessionId, [message as MessageReceived['message']]);
    };
    const heartbeat = startTurnHeartbeat(ctx, turns, config.turn_recovery.heartbeat_ms);
    const api: TextChatApi = {
      listSessions: (userId) => requests.list({ userId }),
      getSession: (userId, sessionId) => requests.get({ userId, sessionId }),
      listMessages: (request) => requests.listMessages(request),
      searchMessages: (request) => requests.search(request),
    };

    return {
      api,
      handlers: {
        'session.start': (event) => requests.start(event.data),
        'session.list': (event) => requests.list(event.data),
        'session.get': (event) => requests.get(event.data),
        'session.update': (event) => requests.update(event.data),
        'session.delete': (event) => requests.delete(event.data),
        // An erased user: every chat of theirs goes (no session.deleted for each: the other modules erase
        // the user's data on the same request).
        [USER_ERASE]: (event: EventEnvelope<UserEraseRequest>) => requests.eraseUser(event.data),
        'messages.list': (event) => requests.listMessages(event.data),
        'messages.export': (event) => requests.exportMessages(event.data),
        'messages.search': (event) => requests.search(event.data),
        'message.rate': (event) => feedback.rate(event.data),
        'messages.feedback': (event) => feedback.list(event.data),
        // A knowledge source's change for a user, from any node: their turns gather knowledge again.
        'knowledge.changed': {
          mode: 'local',
          handler: (event: EventEnvelope<{ userId?: unknown }>) => {
            const userId = event.data?.userId;
            if (typeof userId === 'string') deps.knowledgeHints.changed(userId);
          },
        },
        'session.deleted': {
          mode: 'local',
          handler: (event: EventEnvelope<SessionDeleted>) => {
            const { userId, sessionId } = event.data ?? {};
            if (typeof userId === 'string' && typeof sessionId === 'string') {
              search.forgetSession(userId, sessionId);
            }
          },
        },
        'message.send': turn,
        'chat.message': turn,
        'message.regenerate': (event: EventEnvelope<MessageRegenerateRequest>) => runRegenerate(deps, event),
        // Every node listens: the turn runs wherever its work subscription picked it up.
        'chat.cancel': {
          mode: 'local',
          handler: (event: EventEnvelope<ChatCancel>) => {
            const turnId = event.data?.turnId;
            if (typeof turnId !== 'string' || turnId === '') return;
            if (turns.cancel(turnId, event.userId)) ctx.log.debug({ turnId }, 'turn cancel requested');
          },
        },
        // The rate limit holds across nodes: each counts the messages the others let through.
        'chat.rate_limit.used': {
          mode: 'local',
          handler: (event: EventEnvelope<ChatRateLimitUsed>) => {
            const { userId, node } = event.data ?? {};
            if (typeof userId !== 'string' || node === deps.node) return;
            deps.rateLimiter?.note(userId, Date.parse(event.time));
          },
        },
        // Every node hears which turns are still generating anywhere (the heartbeats).
        'chat.response.alive': {
          mode: 'local',
          handler: (event: EventEnvelope<ChatResponseAlive>) => {
            const turnIds = event.data?.turnIds;
            if (Array.isArray(turnIds)) deps.underWay.alive(turnIds);
          },
        },
        // Every node hears what another node begins generating, and where (turns-under-way.ts).
        'chat.turn.started': {
          mode: 'local',
          handler: (event: EventEnvelope<ChatTurnStarted>) => {
            const { turnId, sessionId, node, regeneration } = event.data ?? {};
            const userId = event.userId;
            if (node === deps.node || typeof turnId !== 'string' || typeof sessionId !== 'string') return;
            if (typeof userId !== 'string') return;
            deps.underWay.startedElsewhere(
              { turnId, userId, sessionId, regeneration: regeneration === true },
              Date.parse(event.time),
            );
          },
        },
        ...(lone
          ? {}
          : {
              'message.received': {
                mode: 'local' as const,
                handler: (event: EventEnvelope<MessageReceived>) =>
                  noteStored(event.data?.userId, event.data?.sessionId, event.data?.message),
              },
              'chat.response.end': {
                mode: 'local' as const,
                handler: (event: EventEnvelope<ChatResponseEnd>) => {
                  turnEnded.handler(event);
                  noteStored(event.userId, event.data?.sessionId, event.data?.message);
                },
              },
              'chat.response.error': turnEnded,
            }),
      },
      health: () => ({ healthy: true }),
      async dispose() {
        heartbeat.stop();
        turns.abortAll(new DOMException('text_chat is shutting down', 'AbortError'));
        await sessions.flush();
      },
    };
  },
});
