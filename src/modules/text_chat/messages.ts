import { ValidationError } from '../../core/errors.ts';
import type { ModuleStorage } from '../../core/module.ts';
import type { Message } from '../../core/types.ts';
import { appendJsonLine, readJsonLines } from '../../storage/json-lines.ts';
import { messagesKey } from './sessions.ts';
import type { MessagesPage } from './types.ts';

/**
 * A session's messages live in `{user_id}/{session_id}/messages.jsonl`, one JSON message per line. Each
 * message is one append (atomic per line, durable before it resolves), so two turns of one session running
 * at once interleave whole messages; the log's order is the order of the appends.
 */

/** Appends one message to the session's log; durable when the promise resolves. */
export function appendMessage(
  storage: ModuleStorage,
  userId: string,
  sessionId: string,
  message: Message,
): Promise<void> {
  return appendJsonLine(storage, messagesKey(userId, sessionId), message);
}

/** Every message of the session, in log order (oldest first). */
export function readMessages(storage: ModuleStorage, userId: string, sessionId: string): Promise<Message[]> {
  return readJsonLines<Message>(storage, messagesKey(userId, sessionId));
}

/**
 * The page of `limit` messages that ends just before the message `before` (the newest ones when `before` is
 * absent), oldest first. `nextCursor` is the first message of the page when older ones remain.
 */
export function pageOf(
  messages: readonly Message[],
  limit: number,
  before: string | undefined,
): MessagesPage {
  let end = messages.length;
  if (before !== undefined) {
    end = messages.findIndex((message) => message.id === before);
    if (end === -1) {
      throw new ValidationError(`messages.list: "before" names no message of this session`, {
        details: { field: 'before', value: before },
      });
    }
  }
  const start = Math.max(0, end - limit);
  const page: MessagesPage = { messages: messages.slice(start, end) };
  if (start > 0) page.nextCursor = messages[start]!.id;
  return page;
}
