import type { Message } from '../../core/types.ts';
import type { MessageSequence } from './history.ts';

/**
 * Replies that a regeneration replaced. The log is append-only: a regenerated reply is a new line whose
 * `metadata.replaces` names the reply it takes the place of, and nothing already stored is rewritten. So
 * which replies are current is read from the log: a reply named by a later, successful regeneration is
 * replaced — left out of the history sent to the model and of the default listing. A regeneration that
 * failed (`metadata.error`) replaces nothing (the reply it meant to replace stays current, as a failed
 * turn loses nothing), and is itself left out of the default listing: its error was the answer to the
 * regenerate request, and the conversation reads as if it had not been asked.
 */

/** The id of the reply `message` replaces, when it is a successful regenerated reply. */
export function replacedBy(message: Message): string | undefined {
  const replaces = message.metadata.replaces;
  return message.role === 'assistant' && typeof replaces === 'string' && message.metadata.error === undefined
    ? replaces
    : undefined;
}

/** A regenerated reply that failed: it replaced nothing, and is not part of the conversation shown. */
export function isFailedRegeneration(message: Message): boolean {
  return message.metadata.replaces !== undefined && message.metadata.error !== undefined;
}

/**
 * The ids of the messages from index `from` on that the default listing leaves out: replies replaced by
 * a later one, and failed regenerations. A replacement always comes after the reply it replaces, so the
 * messages from `from` on are enough to know which of them are hidden.
 */
export function hiddenMessages(log: MessageSequence, from: number): Set<string> {
  const hidden = new Set<string>();
  for (let index = from; index < log.count; index++) {
    const message = log.at(index);
    const replaced = replacedBy(message);
    if (replaced !== undefined) hidden.add(replaced);
    else if (isFailedRegeneration(message)) hidden.add(message.id);
  }
  return hidden;
}

/** The session's last exchange: its last user message and the reply to it that is shown now. */
export interface LastExchange {
  /** Index in the log of the last user message; undefined when the session has none. */
  userIndex: number | undefined;
  user: Message | undefined;
  /** The newest reply to it that is not hidden (what a regeneration replaces); undefined when none. */
  reply: Message | undefined;
}

/**
 * The last user message of the log and its current reply. Undefined when the log's held messages (from
 * `first`) hold no user message but older ones exist: read the whole log to know.
 */
export function lastExchange(log: MessageSequence): LastExchange | undefined {
  const first = log.first ?? 0;
  let userIndex = log.count - 1;
  while (userIndex >= first && log.at(userIndex).role !== 'user') userIndex--;
  if (userIndex < first) {
    return first > 0 ? undefined : { userIndex: undefined, user: undefined, reply: undefined };
  }
  // Every message after it is a reply to it (or a regeneration of one): the newest shown one is current.
  const hidden = hiddenMessages(log, userIndex + 1);
  let reply: Message | undefined;
  for (let index = log.count - 1; index > userIndex && reply === undefined; index--) {
    const message = log.at(index);
    if (message.role === 'assistant' && !hidden.has(message.id)) reply = message;
  }
  return { userIndex, user: log.at(userIndex), reply };
}
