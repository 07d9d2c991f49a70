import { NotFoundError, ValidationError } from '../../core/errors.ts';
import type { ModuleContext, ModuleStorage } from '../../core/module.ts';
import type { Message } from '../../core/types.ts';
import { encodeJsonLine, parseJsonLines } from '../../storage/json-lines.ts';
import type { HistoryCache, SessionLog } from './history-cache.ts';
import { type SessionStore, sessionFolder } from './sessions.ts';
import type { FeedbackRating, MessageFeedback, MessageFeedbackList, TextChatConfig } from './types.ts';
import { codePointLength, payloadOf, requiredString } from './validate.ts';

/**
 * Feedback on replies: a user rates an assistant reply up or down, with an optional comment, and may change
 * or withdraw it. What a chat product learns its quality from: every rating is emitted as `message.rated`
 * (a webhook can carry it out) and kept beside the messages, in `{user_id}/{session_id}/feedback.jsonl`,
 * one line per rating, the newest line of a message winning (`rating: null` withdraws it). Append-only like
 * the message log, so a rating is durable once acknowledged and two ratings at once never tear the file;
 * and in the session's folder, so deleting the chat or erasing the user removes it with the messages.
 */

/** One line of `feedback.jsonl`. */
interface FeedbackLine {
  messageId: string;
  rating: FeedbackRating | null;
  comment?: string;
  at: string;
}

const RATINGS: ReadonlySet<unknown> = new Set(['up', 'down']);

/** The key of a session's feedback, beside its message log. */
function feedbackKey(userId: string, sessionId: string): string {
  return `${sessionFolder(userId, sessionId)}feedback.jsonl`;
}

/** The session's current feedback, by message id (withdrawn ratings left out). */
export async function readFeedback(
  storage: ModuleStorage,
  userId: string,
  sessionId: string,
): Promise<Map<string, MessageFeedback>> {
  const bytes = await storage.read(feedbackKey(userId, sessionId));
  const current = new Map<string, MessageFeedback>();
  if (bytes === undefined) return current;
  for (const line of parseJsonLines<FeedbackLine>(bytes, feedbackKey(userId, sessionId))) {
    if (line.rating === null) {
      current.delete(line.messageId);
      continue;
    }
    const feedback: MessageFeedback = { messageId: line.messageId, rating: line.rating, updatedAt: line.at };
    if (line.comment !== undefined) feedback.comment = line.comment;
    current.set(line.messageId, feedback);
  }
  return current;
}

/** The message `messageId` of the log, looked for from the newest (ratings are mostly of recent replies). */
function findMessage(log: SessionLog, messageId: string): Message | undefined {
  for (let index = log.count - 1; index >= log.first; index--) {
    const message = log.at(index);
    if (message.id === messageId) return message;
  }
  return undefined;
}

/** `message.rate` and `messages.feedback`, over the session store and the history cache. */
export interface FeedbackRequests {
  /** Rates a reply (`rating: null` withdraws the rating); answers with the feedback now held. */
  rate(data: unknown): Promise<MessageFeedback | { messageId: string; rating: null }>;
  /** The session's current feedback, oldest rating first. */
  list(data: unknown): Promise<MessageFeedbackList>;
}

export function createFeedbackRequests(
  ctx: ModuleContext<TextChatConfig>,
  sessions: SessionStore,
  history: HistoryCache,
): FeedbackRequests {
  const maxComment = ctx.config.feedback.max_comment_length;

  function parseRating(payload: Record<string, unknown>, eventType: string): FeedbackRating | null {
    const rating = payload.rating;
    if (rating === null || RATINGS.has(rating)) return rating as FeedbackRating | null;
    throw new ValidationError(`${eventType}: "rating" must be "up", "down" or null (withdraw the rating)`, {
      details: { field: 'rating' },
    });
  }

  function parseComment(payload: Record<string, unknown>, eventType: string): string | undefined {
    const comment = payload.comment;
    if (comment === undefined || comment === null) return undefined;
    if (typeof comment !== 'string') {
      throw new ValidationError(`${eventType}: "comment" must be a string`, {
        details: { field: 'comment' },
      });
    }
    const length = codePointLength(comment);
    if (length > maxComment) {
      throw new ValidationError(
        `${eventType}: the comment is ${length} characters long; the limit is ${maxComment} (text_chat.feedback.max_comment_length)`,
        { details: { field: 'comment', length, limit: maxComment } },
      );
    }
    return comment.trim() === '' ? undefined : comment;
  }

  /** Checks that the message is a reply in this user's session (else not found, as a missing one is). */
  async function assertRatable(userId: string, sessionId: string, messageId: string): Promise<void> {
    const [, log] = await Promise.all([
      sessions.get(userId, sessionId),
      history.load(ctx.storage, userId, sessionId),
    ]);
    // An older reply than the cache holds is in the whole log.
    const message =
      findMessage(log, messageId) ??
      (log.first > 0
        ? findMessage(await history.loadWhole(ctx.storage, userId, sessionId), messageId)
        : undefined);
    if (message === undefined) {
      throw new NotFoundError(`message "${messageId}" not found in session "${sessionId}"`, {
        details: { sessionId, messageId },
      });
    }
    if (message.role !== 'assistant') {
      throw new ValidationError(
        `message.rate: only the assistant's replies can be rated, not a ${message.role} message`,
        {
          details: { field: 'messageId', role: message.role },
        },
      );
    }
  }

  return {
    async rate(data) {
      const eventType = 'message.rate';
      const payload = payloadOf(data, eventType);
      const userId = requiredString(payload, 'userId', eventType);
      const sessionId = requiredString(payload, 'sessionId', eventType);
      const messageId = requiredString(payload, 'messageId', eventType);
      const rating = parseRating(payload, eventType);
      const comment = rating === null ? undefined : parseComment(payload, eventType);
      await assertRatable(userId, sessionId, messageId);
      const line: FeedbackLine = { messageId, rating, at: new Date().toISOString() };
      if (comment !== undefined) line.comment = comment;
      await ctx.storage.append(feedbackKey(userId, sessionId), encodeJsonLine(line));
      await ctx.emit(
        'message.rated',
        { userId, sessionId, messageId, rating, ...(comment === undefined ? {} : { comment }) },
        { userId, sessionId },
      );
      if (rating === null) return { messageId, rating: null };
      const feedback: MessageFeedback = { messageId, rating, updatedAt: line.at };
      if (comment !== undefined) feedback.comment = comment;
      return feedback;
    },

    async list(data) {
      const eventType = 'messages.feedback';
      const payload = payloadOf(data, eventType);
      const userId = requiredString(payload, 'userId', eventType);
      const sessionId = requiredString(payload, 'sessionId', eventType);
      await sessions.get(userId, sessionId);
      const current = await readFeedback(ctx.storage, userId, sessionId);
      return {
        feedback: [...current.values()].sort((a, b) => a.updatedAt.localeCompare(b.updatedAt)),
      };
    },
  };
}
