import { isPlatformError, ValidationError } from '../../core/errors.ts';
import type { ModuleContext } from '../../core/module.ts';
import type { Session } from '../../core/types.ts';
import { USER_ERASE, type UserEraseReply } from '../../core/user-erasure.ts';
import type { HistoryCache } from './history-cache.ts';
import { pageOf } from './messages.ts';
import { assertSessionId, type NewSession, type SessionStore } from './sessions.ts';
import type { MessagesPage, PersonaReply, SessionMetadata, TextChatConfig } from './types.ts';
import {
  optionalInteger,
  optionalModelName,
  optionalString,
  optionalTitle,
  payloadOf,
  requiredString,
} from './validate.ts';

/** The title of a session started without one. */
export const DEFAULT_TITLE = 'New chat';

/**
 * The session and message-listing requests of the chat contract. Each checks its payload, and every
 * lookup goes through the requesting user's own folder, so another user's session is simply not found.
 */
export interface SessionRequests {
  start(data: unknown): Promise<Session>;
  list(data: unknown): Promise<Session[]>;
  get(data: unknown): Promise<Session>;
  update(data: unknown): Promise<Session>;
  delete(data: unknown): Promise<{ deleted: true }>;
  /** `platform.user.erase`: every session of the user, gone. */
  eraseUser(data: unknown): Promise<UserEraseReply>;
  listMessages(data: unknown): Promise<MessagesPage>;
}

/** Builds the request handlers over the session store. */
export function createSessionRequests(
  ctx: ModuleContext<TextChatConfig>,
  sessions: SessionStore,
  history: HistoryCache,
): SessionRequests {
  const config = ctx.config;

  /** A persona id the session may use: the persona module must know it. */
  async function checkPersona(personaId: string, eventType: string): Promise<void> {
    if (ctx.missingOptionalDependencies.includes('persona')) {
      throw new ValidationError(
        `${eventType}: personas are not available (the persona module is not enabled)`,
        {
          details: { field: 'personaId', value: personaId },
        },
      );
    }
    const persona = await ctx.request<PersonaReply | null>('persona.get', { personaId });
    if (persona === null) {
      throw new ValidationError(`${eventType}: there is no persona "${personaId}"`, {
        details: { field: 'personaId', value: personaId },
      });
    }
  }

  /** A model the session may use: its provider must be configured (keys are checked on use). */
  function checkModel(model: string): void {
    try {
      ctx.llm.resolve(model);
    } catch (error) {
      if (isPlatformError(error, 'CHAT_ERR_LLM_UNKNOWN_MODEL')) throw error;
    }
  }

  function owner(data: unknown, eventType: string): { payload: Record<string, unknown>; userId: string } {
    const payload = payloadOf(data, eventType);
    return { payload, userId: requiredString(payload, 'userId', eventType) };
  }

  return {
    async start(data) {
      const { payload, userId } = owner(data, 'session.start');
      const fields: NewSession = {
        title: optionalTitle(payload, 'session.start', config.max_title_length) || DEFAULT_TITLE,
      };
      const personaId = optionalString(payload, 'personaId', 'session.start');
      const model = optionalModelName(payload, 'model', 'session.start');
      if (personaId !== undefined) {
        await checkPersona(personaId, 'session.start');
        fields.personaId = personaId;
      }
      if (model !== undefined) {
        checkModel(model);
        fields.model = model;
      }
      return sessions.create(userId, fields);
    },

    async list(data) {
      const { userId } = owner(data, 'session.list');
      return sessions.list(userId);
    },

    async get(data) {
      const { payload, userId } = owner(data, 'session.get');
      return sessions.get(userId, requiredString(payload, 'sessionId', 'session.get'));
    },

    async update(data) {
      const eventType = 'session.update';
      const { payload, userId } = owner(data, eventType);
      const sessionId = requiredString(payload, 'sessionId', eventType);
      const title = optionalTitle(payload, eventType, config.max_title_length);
      // null clears a choice (back to the default persona or model); undefined leaves it.
      const personaId = payload.personaId === null ? null : optionalString(payload, 'personaId', eventType);
      const model = payload.model === null ? null : optionalModelName(payload, 'model', eventType);
      await sessions.get(userId, sessionId); // NotFound before any other check
      if (typeof personaId === 'string') await checkPersona(personaId, eventType);
      if (typeof model === 'string') checkModel(model);
      return sessions.update(userId, sessionId, (metadata) => {
        const next: SessionMetadata = { ...metadata, updatedAt: new Date().toISOString() };
        if (title !== undefined) next.title = title || DEFAULT_TITLE;
        if (personaId === null) delete next.personaId;
        else if (personaId !== undefined) next.personaId = personaId;
        if (model === null) delete next.model;
        else if (model !== undefined) next.model = model;
        return next;
      });
    },

    async delete(data) {
      const { payload, userId } = owner(data, 'session.delete');
      const sessionId = requiredString(payload, 'sessionId', 'session.delete');
      await sessions.delete(userId, sessionId);
      history.forget(userId, sessionId);
      await ctx.emit('session.deleted', { userId, sessionId }, { userId, sessionId });
      return { deleted: true };
    },

    async eraseUser(data) {
      const { userId } = owner(data, USER_ERASE);
      const sessionIds = await sessions.eraseUser(userId);
      for (const sessionId of sessionIds) history.forget(userId, sessionId);
      return { erased: sessionIds.length };
    },

    async listMessages(data) {
      const eventType = 'messages.list';
      const { payload, userId } = owner(data, eventType);
      const sessionId = requiredString(payload, 'sessionId', eventType);
      const limit =
        optionalInteger(payload, 'limit', eventType, 1, config.messages_page.max_limit) ??
        Math.min(config.messages_page.default_limit, config.messages_page.max_limit);
      const before = optionalString(payload, 'before', eventType);
      const include = optionalString(payload, 'include', eventType);
      if (include !== undefined && include !== 'replaced') {
        throw new ValidationError(`${eventType}: "include" may only be "replaced"`, {
          details: { field: 'include', value: include },
        });
      }
      const includeReplaced = include === 'replaced';
      assertSessionId(sessionId);
      const [, log] = await Promise.all([
        sessions.get(userId, sessionId),
        history.load(ctx.storage, userId, sessionId),
      ]);
      // Older pages than the cache holds come from the whole log.
      return (
        pageOf(log, limit, before, includeReplaced) ??
        (pageOf(
          await history.loadWhole(ctx.storage, userId, sessionId),
          limit,
          before,
          includeReplaced,
        ) as MessagesPage)
      );
    },
  };
}
