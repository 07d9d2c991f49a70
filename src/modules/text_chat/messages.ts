import { ValidationError } from '../../core/errors.ts';
import type { ModuleStorage } from '../../core/module.ts';
import type { Message } from '../../core/types.ts';
import { encodeJsonLines } from '../../storage/json-lines.ts';
import type { SessionLog } from './history-cache.ts';
import { hiddenMessages } from './replies.ts';
import { messagesKey } from './sessions.ts';
import type { MessagesPage } from './types.ts';

/**
 * A session's messages live in `{user_id}/{session_id}/messages.jsonl`, one JSON message per line. Each
 * append holds whole lines (atomic, durable before it resolves), so two turns of one session running at
 * once interleave whole messages; the log's order is the order of the appends.
 */

/**
 * Appends messages to the session's log, in order, in one append; durable when the promise resolves,
 * with the bytes appended.
 */
export async function appendMessages(
  storage: ModuleStorage,
  userId: string,
  sessionId: string,
  messages: readonly Message[],
): Promise<Uint8Array> {
  const bytes = encodeJsonLines(messages);
  await storage.append(messagesKey(userId, sessionId), bytes);
  return bytes;
}

/**
 * The page of `limit` messages that ends just before the message `before` (the newest ones when `before` is
 * absent), oldest first. `nextCursor` is the first message of the page when older ones remain. Undefined
 * when the page reaches before what `log` holds (`first`): ask again with the whole log. Unless
 * `includeReplaced`, the replies a regeneration replaced and failed regenerations are not counted nor
 * listed (replies.ts); the cursor works the same either way.
 */
export function pageOf(
  log: SessionLog,
  limit: number,
  before: string | undefined,
  includeReplaced = false,
): MessagesPage | undefined {
  let end = log.count;
  if (before !== undefined) {
    // Newest first: a cursor usually points near the end of the log.
    end = log.count - 1;
    while (end >= log.first && log.at(end).id !== before) end--;
    if (end < log.first && log.first > 0) return undefined;
    if (end === -1) {
      throw new ValidationError(`messages.list: "before" names no message of this session`, {
        details: { field: 'before', value: before },
      });
    }
  }
  if (includeReplaced) {
    const start = Math.max(0, end - limit);
    if (start < log.first) return undefined;
    const page: MessagesPage = { messages: log.slice(start, end) };
    if (start > 0) page.nextCursor = log.at(start).id;
    return page;
  }
  return currentPage(log, limit, end);
}

/** `pageOf` without the hidden messages: the `limit` shown ones before index `end`. */
function currentPage(log: SessionLog, limit: number, end: number): MessagesPage | undefined {
  // A replacement comes after the reply it replaces, so the held messages tell which of them are hidden.
  const hidden = hiddenMessages(log, log.first);
  const messages: Message[] = [];
  let start = end;
  while (messages.length < limit && start > 0) {
    if (start - 1 < log.first) return undefined;
    const message = log.at(--start);
    if (!hidden.has(message.id)) messages.push(message);
  }
  messages.reverse();
  const page: MessagesPage = { messages };
  // Older messages remain: at least a user message (a hidden message is a reply to one before it).
  if (start > 0) page.nextCursor = log.at(start).id;
  return page;
}
