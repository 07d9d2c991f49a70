import { isPlatformError, NotFoundError, ValidationError } from '../../core/errors.ts';
import type { ModuleContext } from '../../core/module.ts';
import type { Session } from '../../core/types.ts';
import { USER_ERASE, type UserEraseReply } from '../../core/user-erasure.ts';
import type { HistoryCache } from './history-cache.ts';
import type { MessageSearch } from './message-search.ts';
import { queryTerms, snippetOf } from './message-snippet.ts';
import { pageOf } from './messages.ts';
import { assertSessionId, type NewSession, type SessionStore } from './sessions.ts';
import type {
  MessagesExportPage,
  MessagesPage,
  MessagesSearchReply,
  PersonaReply,
  SessionMetadata,
  TextChatConfig,
} from './types.ts';
import {
  codePointLength,
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
  /** `messages.export`: the session's messages oldest first, a page at a time. */
  exportMessages(data: unknown): Promise<MessagesExportPage>;
  /** `messages.search`: the user's messages across their sessions, best match first. */
  search(data: unknown): Promise<MessagesSearchReply>;
}

/** Times a search is asked again after its hits named sessions deleted meanwhile (dropped from the index). */
const SEARCH_ATTEMPTS = 3;

/** Builds the request handlers over the session store. */
export function createSessionRequests(
  ctx: ModuleContext<TextChatConfig>,
  sessions: SessionStore,
  history: HistoryCache,
  messageSearch: MessageSearch,
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
      messageSearch.forgetSession(userId, sessionId);
      await ctx.emit('session.deleted', { userId, sessionId }, { userId, sessionId });
      return { deleted: true };
    },

    async eraseUser(data) {
      const { userId } = owner(data, USER_ERASE);
      const sessionIds = await sessions.eraseUser(userId);
      for (const sessionId of sessionIds) history.forget(userId, sessionId);
      messageSearch.forgetUser(userId);
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

    async exportMessages(data) {
      const eventType = 'messages.export';
      const { payload, userId } = owner(data, eventType);
      const sessionId = requiredString(payload, 'sessionId', eventType);
      const limit =
        optionalInteger(payload, 'limit', eventType, 1, config.messages_page.max_limit) ??
        config.messages_page.max_limit;
      const after = optionalString(payload, 'after', eventType);
      assertSessionId(sessionId);
      let [, log] = await Promise.all([
        sessions.get(userId, sessionId),
        history.load(ctx.storage, userId, sessionId),
      ]);
      // An export starts at the oldest message, which the cache may have dropped.
      if (log.first > 0) log = await history.loadWhole(ctx.storage, userId, sessionId);
      let start = 0;
      if (after !== undefined) {
        while (start < log.count && log.at(start).id !== after) start++;
        if (start === log.count) {
          throw new ValidationError(`${eventType}: "after" names no message of this session`, {
            details: { field: 'after', value: after },
          });
        }
        start++;
      }
      const end = Math.min(log.count, start + limit);
      const page: MessagesExportPage = { messages: log.slice(start, end) };
      if (end < log.count) page.nextCursor = log.at(end - 1).id;
      return page;
    },

    async search(data) {
      const eventType = 'messages.search';
      const { payload, userId } = owner(data, eventType);
      const { search: searchConfig } = config;
      const raw = payload.query;
      if (typeof raw !== 'string') {
        throw new ValidationError(`${eventType}: the search query must be a string`, {
          details: { field: 'query' },
        });
      }
      const query = raw.trim();
      if (query === '') {
        throw new ValidationError(`${eventType}: the search query is empty: give at least one word`, {
          details: { field: 'query' },
        });
      }
      const length = codePointLength(query);
      if (length > searchConfig.max_query_length) {
        throw new ValidationError(
          `${eventType}: the search query is ${length} characters long, more than the limit of ${searchConfig.max_query_length} (text_chat.search.max_query_length)`,
          { details: { field: 'query', length, limit: searchConfig.max_query_length } },
        );
      }
      const limit =
        optionalInteger(payload, 'limit', eventType, 1, searchConfig.max_limit) ??
        Math.min(searchConfig.default_limit, searchConfig.max_limit);
      const terms = queryTerms(messageSearch.tokenize, query);
      for (let attempt = 1; ; attempt++) {
        const ranked = await messageSearch.search(ctx.storage, userId, query, limit);
        // Each hit's session must still be there (a deletion another node's event did not bring here yet),
        // and its title is the one of now.
        const titles = new Map<string, string | undefined>();
        await Promise.all(
          [...new Set(ranked.map((hit) => hit.sessionId))].map(async (sessionId) => {
            try {
              titles.set(sessionId, (await sessions.get(userId, sessionId)).metadata.title as string);
            } catch (error) {
              if (!(error instanceof NotFoundError)) throw error;
              titles.set(sessionId, undefined);
            }
          }),
        );
        const gone = [...titles].filter(([, title]) => title === undefined).map(([sessionId]) => sessionId);
        for (const sessionId of gone) messageSearch.forgetSession(userId, sessionId);
        if (gone.length > 0 && attempt < SEARCH_ATTEMPTS) continue;
        return {
          hits: ranked
            .filter((hit) => titles.get(hit.sessionId) !== undefined)
            .map((hit) => ({
              sessionId: hit.sessionId,
              sessionTitle: titles.get(hit.sessionId) || DEFAULT_TITLE,
              messageId: hit.messageId,
              role: hit.role,
              timestamp: hit.timestamp,
              ...snippetOf(hit.content, terms, messageSearch.tokenize, searchConfig.snippet_length),
              score: hit.score,
            })),
        };
      }
    },
  };
}
