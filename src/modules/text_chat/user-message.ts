import type { Deadline, Deadlines } from '../../core/deadlines.ts';
import type { ModuleStorage } from '../../core/module.ts';
import type { Message } from '../../core/types.ts';
import { appendMessages } from './messages.ts';
import type { SessionStore } from './sessions.ts';

/**
 * The user's message of a turn on its way to the log, stored while the model is already working on the
 * reply (neither needs the other), and always before anything of the reply is shown:
 *
 * - a streamed turn starts storing it at once (once the model has been called), and its first delta
 *   waits until it is durable;
 * - a turn that is not streamed shows nothing before its reply is stored, so the user message waits up to
 *   `windowMs` for the reply and goes to the log in the same append (one fsync instead of two); a reply
 *   that takes longer finds the user message already stored when the window ran out.
 *
 * Either way the user message is durable before any byte of the reply leaves, and before the turn is
 * acknowledged. What the window changes is only how soon it is stored while nothing has been answered.
 */
export interface PendingUserMessage {
  /** True once the user message is durable. */
  readonly durable: boolean;
  /** Stores the user message now unless that has begun; resolves once it is durable. */
  store(): Promise<void>;
  /**
   * Stores `reply` after the user message: in one append with it when it was not stored yet, else on its
   * own once the user message is durable. Undefined `reply`: the user message alone.
   */
  storeWith(reply: Message | undefined): Promise<void>;
}

export interface PendingUserMessageOptions {
  storage: ModuleStorage;
  sessions: SessionStore;
  userId: string;
  sessionId: string;
  message: Message;
  /** How long the user message waits for the reply; 0: stored at once. */
  windowMs: number;
  /** Where the wait's deadline is kept (the turn's timer: core/deadlines.ts). */
  deadlines: Deadlines;
  /** Told once the user message is durable (emits `message.received`). */
  onStored: (message: Message) => Promise<void>;
  /** Told of every append this makes (its messages and bytes), once durable (the history cache keeps them). */
  onAppended: (messages: readonly Message[], bytes: Uint8Array) => void;
}

/** Starts the wait for a new user message (and, with `windowMs` 0, its storing). */
export function createPendingUserMessage(options: PendingUserMessageOptions): PendingUserMessage {
  const { storage, sessions, userId, sessionId, message } = options;
  let stored: Promise<void> | undefined;
  let timer: Deadline | undefined;

  function begin(messages: Message[]): Promise<void> {
    if (timer !== undefined) options.deadlines.cancel(timer);
    stored = (async () => {
      // The session may have been deleted since the turn began: writing would bring its folder back.
      // Nearly always the read cache can tell at once; else (or when it is gone, for the error) it is asked.
      if (sessions.existsNow(userId, sessionId) !== true) await sessions.assertExists(userId, sessionId);
      options.onAppended(messages, await appendMessages(storage, userId, sessionId, messages));
      pending.durable = true;
      await options.onStored(message);
    })();
    // Awaited by whoever needs it; a failure before then must not count as unhandled.
    stored.catch(() => {});
    return stored;
  }

  // `durable` is a property set once the message is, not a getter (lint/no-object-literal-accessor.grit).
  const pending: { -readonly [Key in keyof PendingUserMessage]: PendingUserMessage[Key] } = {
    durable: false,
    store: () => stored ?? begin([message]),
    async storeWith(reply) {
      if (stored === undefined) return begin(reply === undefined ? [message] : [message, reply]);
      await stored;
      if (reply === undefined) return;
      if (sessions.existsNow(userId, sessionId) !== true) await sessions.assertExists(userId, sessionId);
      options.onAppended([reply], await appendMessages(storage, userId, sessionId, [reply]));
    },
  };
  // "At once" is on the next turn of the event loop: by then the turn has called the model (its setup
  // has no I/O to wait for), so the write's system calls do not delay the request to the model.
  if (options.windowMs <= 0) setImmediate(() => void pending.store());
  else timer = options.deadlines.add(options.windowMs, () => void pending.store());
  return pending;
}

/** The user message of a turn delivered again (its node died), already in the log. */
export function storedUserMessage(
  options: Pick<PendingUserMessageOptions, 'storage' | 'sessions' | 'userId' | 'sessionId' | 'onAppended'>,
): PendingUserMessage {
  const { storage, sessions, userId, sessionId } = options;
  return {
    durable: true,
    store: async () => {},
    async storeWith(reply) {
      if (reply === undefined) return;
      if (sessions.existsNow(userId, sessionId) !== true) await sessions.assertExists(userId, sessionId);
      options.onAppended([reply], await appendMessages(storage, userId, sessionId, [reply]));
    },
  };
}
