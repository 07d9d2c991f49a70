/**
 * The HTTP side of the chat-turn contract (notes/chat-contract.md): sessions, messages and turns are
 * requests on the bus, answered by the text_chat module wherever it runs; a streamed reply comes back as
 * `chat.response.delta|end|error` events with the turn id as correlation id. The server and the
 * in-process `parley chat` both talk to text_chat through this, never by importing it.
 */

import type { Bus } from '../core/bus-types.ts';
import type { PlatformConfig } from '../core/config-types.ts';
import { PlatformError } from '../core/errors.ts';
import { newId } from '../core/ids.ts';
import type { Message, Session } from '../core/types.ts';
import { turnIdForKey } from './idempotency-key.ts';
import { createKeyedTurns } from './keyed-turns.ts';
import { createTurnHub, type ToolEvent, type TurnHub } from './turn-hub.ts';
import { createTurnWatchdog, type TurnWatch } from './turn-watchdog.ts';

/** What creating or changing a session may set (`null` goes back to the default). */
export interface SessionInput {
  title?: string;
  personaId?: string | null;
  model?: string | null;
}

/** One page of a session's messages, oldest first; pass `nextCursor` as `before` for the older page. */
export interface MessagesPage {
  messages: Message[];
  nextCursor?: string;
}

/** One message found by a search, with where the query's words are in its snippet. */
export interface MessageSearchHit {
  sessionId: string;
  sessionTitle: string;
  messageId: string;
  role: Message['role'];
  timestamp: string;
  snippet: string;
  highlights: Array<{ start: number; end: number }>;
  score: number;
}

/** A user's rating of a reply (text_chat's feedback). */
export interface MessageFeedback {
  messageId: string;
  rating: 'up' | 'down';
  comment?: string;
  updatedAt: string;
}

/** One user message to answer. */
export interface TurnInput {
  userId: string;
  sessionId: string;
  content: string;
  model?: string;
  temperature?: number;
  /**
   * The client's Idempotency-Key: the turn id is derived from it (idempotency-key.ts), so every repeat is
   * the same turn. A repeat while the turn runs on this node waits for its outcome; a later one gets the
   * stored reply from text_chat. A keyed turn is not cancelled when its caller's signal aborts (the
   * client that gave up is the one expected to ask again); the cancel route still stops it.
   */
  idempotencyKey?: string;
}

/** Another reply to the session's last user message (text_chat's `message.regenerate`). */
export interface RegenerateInput {
  userId: string;
  sessionId: string;
  model?: string;
  temperature?: number;
}

/** A request that generates a reply: a new message's turn, or a regeneration of the last reply. */
type ReplyRequest = { kind: 'send'; input: TurnInput } | { kind: 'regenerate'; input: RegenerateInput };

/** A streamed turn under way. */
export interface StreamedTurn {
  turnId: string;
  /** The stored assistant message (finishReason `cancelled` after a cancel); rejects with the failure. */
  done: Promise<Message>;
}

/** What a streamed turn reports as it goes. */
export interface TurnHandlers {
  onDelta(text: string): void;
  /** The model called a tool, or the tool answered: shown while the tool works. */
  onTool?(event: ToolEvent): void;
  /**
   * The node generating the reply died and another node starts the reply over: drop the text so far.
   * Without this handler a turn whose text was already shown is not started over; it fails with
   * CHAT_ERR_TURN_LOST.
   */
  onRestart?(): void;
}

/** Sessions, messages and turns over the bus. */
export interface ChatGateway {
  startSession(userId: string, input?: SessionInput): Promise<Session>;
  listSessions(userId: string): Promise<Session[]>;
  /** NotFoundError for a missing session and for another user's. */
  getSession(userId: string, sessionId: string): Promise<Session>;
  updateSession(userId: string, sessionId: string, input: SessionInput): Promise<Session>;
  deleteSession(userId: string, sessionId: string): Promise<void>;
  /** `include: 'replaced'`: the replies a regeneration replaced are listed too. */
  listMessages(
    userId: string,
    sessionId: string,
    page?: { limit?: number; before?: string; include?: 'replaced' },
  ): Promise<MessagesPage>;
  /**
   * A page of the session's messages from the oldest on (an export reads them all, page after page);
   * `nextCursor` (pass as `after`) when newer ones remain.
   */
  exportMessages(
    userId: string,
    sessionId: string,
    page?: { limit?: number; after?: string },
  ): Promise<MessagesPage>;
  /** The user's own messages across their sessions that best match `query`, best first. */
  searchMessages(userId: string, query: string, limit?: number): Promise<{ hits: MessageSearchHit[] }>;
  /** Rates a reply of the user's session; `rating: null` withdraws the rating. */
  rateMessage(
    userId: string,
    sessionId: string,
    messageId: string,
    feedback: { rating: 'up' | 'down' | null; comment?: string },
  ): Promise<MessageFeedback | { messageId: string; rating: null }>;
  /** The session's current ratings, oldest first. */
  listFeedback(userId: string, sessionId: string): Promise<{ feedback: MessageFeedback[] }>;
  /**
   * One turn, answered whole. Aborting `signal` cancels the generation (the partial reply is stored),
   * unless the turn has an idempotency key.
   */
  send(input: TurnInput, options?: { signal?: AbortSignal }): Promise<Message>;
  /**
   * One turn, streamed through `handlers`; aborting `signal` cancels it (unless it has an idempotency
   * key). A turn answered from storage or joined under way streams its whole text as one delta, so a
   * stream's deltas always add up to its message.
   */
  stream(input: TurnInput, handlers: TurnHandlers, options?: { signal?: AbortSignal }): StreamedTurn;
  /**
   * Another reply to the session's last user message, replacing the newest reply to it, answered whole;
   * aborting `signal` cancels it. Recovered like a turn when its node dies.
   */
  regenerate(input: RegenerateInput, options?: { signal?: AbortSignal }): Promise<Message>;
  /** The same, streamed through `handlers` like a turn. */
  streamRegenerate(
    input: RegenerateInput,
    handlers: TurnHandlers,
    options?: { signal?: AbortSignal },
  ): StreamedTurn;
  /** Asks whichever node generates `turnId` to stop it; only a turn of `userId` stops. */
  cancel(turnId: string, userId: string): Promise<void>;
  /** Stops listening for streamed events. */
  close(): void;
}

export interface ChatGatewayOptions {
  /** How long a turn may take (text_chat.turn_timeout_ms). */
  turnTimeoutMs: number;
  /**
   * Over a networked bus (text_chat.turn_recovery): a turn silent for `lostAfterMs` is asked again, of
   * whichever node answers, up to `maxAttempts` in all. Unset (the in-process bus): a turn cannot outlive
   * its node, so nothing is watched.
   */
  recovery?: { lostAfterMs: number; maxAttempts: number };
}

/** text_chat's own defaults, for a config without the module (or the keys). */
const DEFAULT_TURN_TIMEOUT_MS = 120_000;
const DEFAULT_RECOVERY = { lostAfterMs: 5000, maxAttempts: 3 };

/** The gateway's options from the platform config: text_chat's turn timeout and, over NATS, its recovery. */
export function chatGatewayOptionsFrom(config: Readonly<PlatformConfig>): ChatGatewayOptions {
  const slice = (config as unknown as Record<string, unknown>).text_chat as
    | { turn_timeout_ms?: number; turn_recovery?: { lost_after_ms?: number; max_attempts?: number } }
    | undefined;
  const options: ChatGatewayOptions = { turnTimeoutMs: slice?.turn_timeout_ms ?? DEFAULT_TURN_TIMEOUT_MS };
  if (config.bus.transport !== 'local') {
    options.recovery = {
      lostAfterMs: slice?.turn_recovery?.lost_after_ms ?? DEFAULT_RECOVERY.lostAfterMs,
      maxAttempts: slice?.turn_recovery?.max_attempts ?? DEFAULT_RECOVERY.maxAttempts,
    };
  }
  return options;
}

/** What a turn's caller tells the recovery loop (see `requestTurn`). */
interface TurnAttempts {
  /** The watch of the attempt under way, fed with what is heard of the turn. */
  current?: TurnWatch | undefined;
  /** True once the caller has its outcome (a late attempt would be for nothing). */
  finished: boolean;
  /** Gets the caller ready for another attempt; false when the turn cannot be started over. */
  restart(): boolean;
}

// The bus request outlives text_chat's own turn timeout by this much, so that text_chat's timeout error
// (which stores the partial reply) is what the client sees, not a bare bus timeout.
const TURN_TIMEOUT_MARGIN_MS = 1000;
// Over a networked bus the reply of `message.send` and the `chat.response.end` event travel separately;
// when one of them came, the other gets this long to arrive before the turn is taken as finished.
const END_EVENT_GRACE_MS = 2000;

function stripUndefined<T extends Record<string, unknown>>(value: T): T {
  for (const key of Object.keys(value)) if (value[key] === undefined) delete value[key];
  return value;
}

/** Builds the gateway over `bus`; it subscribes once to the turn events of this node. */
export function createChatGateway(bus: Bus, options: ChatGatewayOptions): ChatGateway {
  const hub: TurnHub = createTurnHub(bus);
  const turnTimeout = options.turnTimeoutMs + TURN_TIMEOUT_MARGIN_MS;
  const recovery = options.recovery;
  const watchdog =
    recovery === undefined ? undefined : createTurnWatchdog({ lostAfterMs: recovery.lostAfterMs });
  const keyedTurns = createKeyedTurns();

  /** A new turn id, or the one the input's idempotency key names. */
  function turnIdOf(input: TurnInput): string {
    const key = input.idempotencyKey;
    return key === undefined ? newId() : turnIdForKey(input.userId, input.sessionId, key);
  }

  function turnRequest(
    ask: ReplyRequest,
    turnId: string,
    stream: boolean,
    signal?: AbortSignal,
  ): Promise<Message> {
    const { input } = ask;
    // Built field by field rather than stripped of undefined ones: deleting properties of every turn's
    // payload turns it into a slow dictionary-mode object.
    const data: Record<string, unknown> = { userId: input.userId, sessionId: input.sessionId };
    if (ask.kind === 'send') data.content = ask.input.content;
    data.stream = stream;
    if (input.model !== undefined) data.model = input.model;
    if (input.temperature !== undefined) data.temperature = input.temperature;
    // A repeat of it may reach another node: text_chat makes it wait for this one (not generate again).
    if (ask.kind === 'send' && ask.input.idempotencyKey !== undefined) data.keyed = true;
    const type = ask.kind === 'send' ? 'message.send' : 'message.regenerate';
    return bus.request<Message>(type, data, {
      correlationId: turnId,
      userId: input.userId,
      sessionId: input.sessionId,
      timeout: turnTimeout,
      ...(signal === undefined ? {} : { signal }),
    });
  }

  /**
   * `message.send` for `turnId`. With recovery on, a turn that went silent (its node died) is asked
   * again under the same turn id, so text_chat reuses the user message it stored and answers it anew.
   */
  async function requestTurn(
    ask: ReplyRequest,
    turnId: string,
    stream: boolean,
    attempts: TurnAttempts,
  ): Promise<Message> {
    if (recovery === undefined || watchdog === undefined) return turnRequest(ask, turnId, stream);
    for (let attempt = 1; ; attempt++) {
      const controller = new AbortController();
      let lost = () => {};
      const silence = new Promise<undefined>((resolve) => {
        lost = () => resolve(undefined);
      });
      const watch = watchdog.watch(lost);
      attempts.current = watch;
      const request = turnRequest(ask, turnId, stream, controller.signal);
      try {
        const message = await Promise.race([request, silence]);
        if (message !== undefined) return message;
      } finally {
        watch.stop();
        attempts.current = undefined;
      }
      // The node died with the request: stop waiting for its reply.
      request.catch(() => {});
      controller.abort();
      if (attempts.finished || attempt >= recovery.maxAttempts || !attempts.restart()) {
        throw new PlatformError(
          'CHAT_ERR_TURN_LOST',
          `the node generating the reply went silent for ${recovery.lostAfterMs} ms (text_chat.turn_recovery.lost_after_ms) after ${attempt} attempt(s); your message is stored: send it again`,
          { details: { turnId, attempts: attempt } },
        );
      }
    }
  }

  /** Emits `chat.cancel` for `turnId` when `signal` aborts; returns the cleanup. */
  function cancelOnAbort(turnId: string, userId: string, signal: AbortSignal | undefined): () => void {
    if (signal === undefined) return () => {};
    const onAbort = () => void gateway.cancel(turnId, userId).catch(() => {});
    if (signal.aborted) {
      onAbort();
      return () => {};
    }
    signal.addEventListener('abort', onAbort, { once: true });
    return () => signal.removeEventListener('abort', onAbort);
  }

  /** A turn answered whole, under `turnId`; aborting `signal` cancels it. */
  async function sendTurn(
    ask: ReplyRequest,
    turnId: string,
    signal: AbortSignal | undefined,
  ): Promise<Message> {
    const stopWatching = cancelOnAbort(turnId, ask.input.userId, signal);
    // Nothing of the reply was shown yet: a lost turn can always start over.
    const attempts: TurnAttempts = { finished: false, restart: () => true };
    const heard = () => attempts.current?.heard();
    const unregister =
      recovery === undefined
        ? () => {}
        : hub.register(turnId, { delta: heard, end: heard, error: heard, alive: heard });
    try {
      return await requestTurn(ask, turnId, false, attempts);
    } finally {
      unregister();
      stopWatching();
    }
  }

  /**
   * The turn's message, after its whole text as one delta when none of it was streamed (answered from
   * storage, or joined under way): whatever the transport, a stream's deltas add up to its message.
   */
  function completed(message: Message, handlers: TurnHandlers, shown: boolean): Message {
    if (!shown && message.content !== '') handlers.onDelta(message.content);
    return message;
  }

  /** A turn streamed through `handlers`, under `turnId`; aborting `signal` cancels it. */
  function streamTurn(
    ask: ReplyRequest,
    turnId: string,
    handlers: TurnHandlers,
    signal: AbortSignal | undefined,
  ): StreamedTurn {
    let unregister = () => {};
    let stopWatching = () => {};
    let shown = false;
    const attempts: TurnAttempts = {
      finished: false,
      restart() {
        if (handlers.onRestart !== undefined) handlers.onRestart();
        else if (shown) return false;
        shown = false;
        return true;
      },
    };
    const done = new Promise<Message>((resolve, reject) => {
      let settled = false;
      let graceTimer: NodeJS.Timeout | undefined;
      const finish = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        attempts.finished = true;
        attempts.current?.stop();
        clearTimeout(graceTimer);
        unregister();
        stopWatching();
        outcome();
      };
      // The turn is over when both the `chat.response.end` event (after the last delta) and the reply of
      // `message.send` (text_chat has finished its work) came. Over a networked bus they travel apart;
      // if one of them is lost, the other ends the turn after a grace period.
      let ended: Message | undefined;
      let replied = false;
      const arrived = (message: Message) => {
        if (settled) return;
        if (ended !== undefined && replied) {
          return finish(() => resolve(completed(ended as Message, handlers, shown)));
        }
        clearTimeout(graceTimer);
        graceTimer = setTimeout(
          () => finish(() => resolve(completed(ended ?? message, handlers, shown))),
          END_EVENT_GRACE_MS,
        );
        graceTimer.unref();
      };
      // Registered before the request goes out, so no delta can arrive unheard.
      unregister = hub.register(turnId, {
        delta: (text) => {
          attempts.current?.heard();
          if (settled || ended !== undefined) return;
          shown = true;
          handlers.onDelta(text);
        },
        end: (message) => {
          attempts.current?.heard();
          ended = message;
          arrived(message);
        },
        tool: (event) => {
          attempts.current?.heard();
          if (!settled && ended === undefined) handlers.onTool?.(event);
        },
        error: (error) => finish(() => reject(error)),
        alive: () => attempts.current?.heard(),
      });
      stopWatching = cancelOnAbort(turnId, ask.input.userId, signal);
      requestTurn(ask, turnId, true, attempts).then(
        (message) => {
          replied = true;
          arrived(message);
        },
        (error: unknown) => finish(() => reject(error)),
      );
    });
    return { turnId, done };
  }

  const gateway: ChatGateway = {
    startSession(userId, input = {}) {
      return bus.request<Session>('session.start', stripUndefined({ userId, ...input }) as never, { userId });
    },
    listSessions(userId) {
      return bus.request<Session[]>('session.list', { userId }, { userId });
    },
    getSession(userId, sessionId) {
      return bus.request<Session>('session.get', { userId, sessionId }, { userId, sessionId });
    },
    updateSession(userId, sessionId, input) {
      return bus.request<Session>('session.update', stripUndefined({ userId, sessionId, ...input }), {
        userId,
        sessionId,
      });
    },
    async deleteSession(userId, sessionId) {
      await bus.request('session.delete', { userId, sessionId }, { userId, sessionId });
    },
    listMessages(userId, sessionId, page = {}) {
      return bus.request<MessagesPage>(
        'messages.list',
        stripUndefined({ userId, sessionId, limit: page.limit, before: page.before, include: page.include }),
        { userId, sessionId },
      );
    },
    exportMessages(userId, sessionId, page = {}) {
      return bus.request<MessagesPage>(
        'messages.export',
        stripUndefined({ userId, sessionId, limit: page.limit, after: page.after }),
        { userId, sessionId },
      );
    },
    searchMessages(userId, query, limit) {
      return bus.request<{ hits: MessageSearchHit[] }>(
        'messages.search',
        stripUndefined({ userId, query, limit }),
        { userId },
      );
    },

    rateMessage(userId, sessionId, messageId, feedback) {
      return bus.request<MessageFeedback | { messageId: string; rating: null }>(
        'message.rate',
        stripUndefined({ userId, sessionId, messageId, rating: feedback.rating, comment: feedback.comment }),
        { userId, sessionId },
      );
    },
    listFeedback(userId, sessionId) {
      return bus.request<{ feedback: MessageFeedback[] }>(
        'messages.feedback',
        { userId, sessionId },
        { userId, sessionId },
      );
    },

    send(input, sendOptions = {}) {
      const turnId = turnIdOf(input);
      if (input.idempotencyKey === undefined) {
        return sendTurn({ kind: 'send', input }, turnId, sendOptions.signal);
      }
      const running = keyedTurns.join(turnId, input.content);
      if (running !== undefined) return running;
      // Not cancelled by its caller's signal: a keyed turn outlives the client that gave up on it.
      const done = sendTurn({ kind: 'send', input }, turnId, undefined);
      keyedTurns.track(turnId, input.content, done);
      return done;
    },

    stream(input, handlers, streamOptions = {}) {
      const turnId = turnIdOf(input);
      if (input.idempotencyKey === undefined) {
        return streamTurn({ kind: 'send', input }, turnId, handlers, streamOptions.signal);
      }
      // Joined under way: none of its deltas come here; its text goes as one when it ends.
      const running = keyedTurns.join(turnId, input.content);
      if (running !== undefined) {
        return { turnId, done: running.then((message) => completed(message, handlers, false)) };
      }
      const turn = streamTurn({ kind: 'send', input }, turnId, handlers, undefined);
      keyedTurns.track(turnId, input.content, turn.done);
      return turn;
    },

    regenerate(input, regenerateOptions = {}) {
      return sendTurn({ kind: 'regenerate', input }, newId(), regenerateOptions.signal);
    },

    streamRegenerate(input, handlers, streamOptions = {}) {
      return streamTurn({ kind: 'regenerate', input }, newId(), handlers, streamOptions.signal);
    },

    cancel(turnId, userId) {
      // The envelope's userId lets text_chat ignore a cancel of someone else's turn.
      return bus.emit('chat.cancel', { turnId }, { userId });
    },

    close() {
      hub.close();
    },
  };
  return gateway;
}
