import type { LanguageModelV3Prompt } from '@ai-sdk/provider';
import type { ModelMessage } from 'ai';
import { deliveredToNobody } from '../../core/bus.ts';
import type { Deadlines } from '../../core/deadlines.ts';
import { NotFoundError, PlatformError, toPlatformError, ValidationError } from '../../core/errors.ts';
import { currentTime, type EnvelopeOptions, type EventData, type EventEnvelope } from '../../core/events.ts';
import { newId } from '../../core/ids.ts';
import type { ModuleContext } from '../../core/module.ts';
import type { Message } from '../../core/types.ts';
import type { LlmRequest, LlmStreamPart } from '../../llm/call.ts';
import { createDeltaChunker } from './delta-chunker.ts';
import {
  loadTokenCounter,
  type MessageSequence,
  type SelectedHistory,
  type SelectHistoryOptions,
  selectHistory,
  selectWithoutCounting,
  tokenCounterIfLoaded,
} from './history.ts';
import type { HistoryCache, SessionLog } from './history-cache.ts';
import { lookupKnowledge, systemWithKnowledge, type TurnKnowledge } from './knowledge.ts';
import type { KnowledgeHints } from './knowledge-hints.ts';
import type { MessageSearch } from './message-search.ts';
import type { PersonaLookup } from './persona-lookup.ts';
import type { QuotaRefusals } from './quota-refusals.ts';
import type { RateLimiter } from './rate-limiter.ts';
import { assertSessionId, type SessionStore } from './sessions.ts';
import type { ToolCallRecord, ToolCatalog, TurnTools } from './tools.ts';
import { CANCELLED, type TurnRegistry } from './turn-registry.ts';
import type { TurnsUnderWay } from './turns-under-way.ts';
import type {
  ChatResponseTool,
  MessageMetadata,
  MessageSendRequest,
  PersonaReply,
  ReplyFinishReason,
  SessionMetadata,
  StreamingConfig,
  TextChatConfig,
} from './types.ts';
import { createPendingUserMessage, type PendingUserMessage, storedUserMessage } from './user-message.ts';
import {
  codePointLength,
  optionalModelName,
  optionalTemperature,
  payloadOf,
  requiredString,
} from './validate.ts';

/** What a turn needs from the module. */
export interface TurnDependencies {
  ctx: ModuleContext<TextChatConfig>;
  sessions: SessionStore;
  history: HistoryCache;
  /** Undefined when rate limiting is off. */
  rateLimiter: RateLimiter | undefined;
  /** This text_chat instance, in `chat.rate_limit.used` (it ignores its own). */
  node: string;
  persona: PersonaLookup;
  turns: TurnRegistry;
  tools: ToolCatalog;
  /** Told of every message this node appends (indexed at the user's next search). */
  search: MessageSearch;
  /** Users found without any knowledge, whose turns skip the knowledge gather. */
  knowledgeHints: KnowledgeHints;
  /** Users refused lately for their storage quota, whose turns store the message before the model call. */
  quotaRefusals: QuotaRefusals;
  /**
   * The replies generating anywhere, as this node knows (a regeneration runs alone in its session; a
   * keyed turn generates once).
   */
  underWay: TurnsUnderWay;
  /** The turns' deadlines and their user messages' windows, on one timer (core/deadlines.ts). */
  deadlines: Deadlines;
}

/** A checked `message.send` payload. */
interface SendInput {
  userId: string;
  sessionId: string;
  content: string;
  model: string | undefined;
  temperature: number | undefined;
  stream: boolean;
  keyed: boolean;
}

/** A `chat.response.tool` event without what every event of the turn carries. */
type ToolEvent = Omit<ChatResponseTool, 'turnId' | 'sessionId'>;

/** How generation ended. */
interface Outcome {
  text: string;
  finishReason: ReplyFinishReason;
  usage: MessageMetadata['usage'];
  error: PlatformError | undefined;
  /** The tools called for it, in order. */
  toolCalls: ToolCallRecord[];
}

/** The reason the abort carries when the turn's deadline fired (not a cancel). */
const TURN_TIMED_OUT = new DOMException(
  'the turn took longer than text_chat.turn_timeout_ms',
  'TimeoutError',
);

function parseSendInput(data: unknown, eventType: string, config: Readonly<TextChatConfig>): SendInput {
  const payload = payloadOf(data, eventType);
  const userId = requiredString(payload, 'userId', eventType);
  const sessionId = requiredString(payload, 'sessionId', eventType);
  const content = payload.content;
  if (typeof content !== 'string' || content.trim() === '') {
    throw new ValidationError(`${eventType}: "content" must be a non-empty string`, {
      details: { field: 'content' },
    });
  }
  const length = codePointLength(content);
  if (length > config.max_message_length) {
    throw new ValidationError(
      `the message is ${length} characters long; the limit is ${config.max_message_length} (text_chat.max_message_length)`,
      { details: { field: 'content', length, limit: config.max_message_length } },
    );
  }
  const stream = payload.stream;
  if (stream !== undefined && typeof stream !== 'boolean') {
    throw new ValidationError(`${eventType}: "stream" must be a boolean`, { details: { field: 'stream' } });
  }
  const keyed = payload.keyed;
  if (keyed !== undefined && typeof keyed !== 'boolean') {
    throw new ValidationError(`${eventType}: "keyed" must be a boolean`, { details: { field: 'keyed' } });
  }
  return {
    userId,
    sessionId,
    content,
    model: optionalModelName(payload, 'model', eventType),
    temperature: optionalTemperature(payload, eventType),
    stream: stream ?? true,
    keyed: keyed ?? false,
  };
}

/**
 * One chat turn (`message.send` / `chat.message`): checks the message and the user's rate, stores the user
 * message, asks the session's persona, sends the history that fits the token budget to the model, emits
 * the reply as `chat.response.delta` chunks, stores it and emits `chat.response.end` and `chat.response`.
 * Resolves with the stored assistant message. A failure after the user message was stored is emitted as
 * `chat.response.error` and thrown; earlier ones (bad input, unknown session, rate limit) are only thrown.
 */
export async function runTurn(
  deps: TurnDependencies,
  event: EventEnvelope<MessageSendRequest>,
): Promise<Message> {
  const input = parseSendInput(event.data, event.type, deps.ctx.config);
  // Not beside a regeneration of the session (turns-under-way.ts).
  const leave = deps.underWay.enterTurn(input.userId, input.sessionId);
  try {
    return await sendTurn(deps, event, input);
  } finally {
    leave();
  }
}

async function sendTurn(
  deps: TurnDependencies,
  event: EventEnvelope<MessageSendRequest>,
  input: SendInput,
): Promise<Message> {
  const { ctx, sessions } = deps;
  const config = ctx.config;
  const { userId, sessionId: requestedId } = input;
  const turnId = event.correlationId ?? newId();
  // A repeat of a keyed turn another node (or this one) is generating waits for it, then is answered
  // from the log like any later repeat (not counted against the rate limit while it waits).
  if (input.keyed) await deps.underWay.settled(turnId);

  countAgainstRateLimit(deps, userId);

  // The session (ownership: another user's is not found) and its log: known at once when the caches hold
  // them (nearly every turn of a conversation), else read together.
  assertSessionId(requestedId);
  const knownSession = sessions.peek(userId, requestedId);
  const knownLog = deps.history.loadNow(ctx.storage, userId, requestedId);
  const [session, cachedLog] =
    knownSession !== undefined && knownLog !== undefined
      ? [knownSession, knownLog]
      : await Promise.all([
          knownSession ?? sessions.get(userId, requestedId),
          knownLog ?? deps.history.load(ctx.storage, userId, requestedId),
        ]);
  // The session's own id from here on: the request's is often a slice of its URL, which each message kept
  // in a history window would otherwise keep alive with it.
  const sessionId = session.id;
  let log = cachedLog;
  const envelope: EnvelopeOptions = { correlationId: turnId, userId, sessionId };

  // A turn asked again (its node died and the gateway resent it; a client repeated its Idempotency-Key):
  // reuse what it already stored. Its message must be the one stored, or the key was reused for another.
  // Its messages may be older than the cache holds: then the whole log is read.
  let earlier = log.turn(turnId);
  if (earlier === undefined) {
    log = await deps.history.loadWhole(ctx.storage, userId, sessionId);
    earlier = log.turn(turnId) ?? {};
  }
  if (earlier.user !== undefined && earlier.user.content !== input.content) {
    throw new PlatformError(
      'CHAT_ERR_IDEMPOTENCY_KEY_REUSED',
      'this Idempotency-Key (turn id) was already used for a different message in this session: send a new message with a new key',
      { details: { turnId } },
    );
  }
  const answered = finishedReply(log, turnId, earlier.reply);
  if (answered !== undefined) {
    await safeEmit(ctx, 'chat.response.end', { turnId, sessionId, message: answered }, envelope);
    return answered;
  }
  const metadata = session.metadata as unknown as SessionMetadata;
  // The persona, the user's documents and the tools are asked while the user message is being stored.
  const lookups = startLookups(deps, {
    userId,
    sessionId,
    turnId,
    personaId: metadata.personaId,
    query: input.content,
    // The earlier messages make a follow-up's query ("and its weight?"); this turn's own is left out.
    history: log,
    ownTurnId: turnId,
  });
  // Streamed: deltas leave as the model writes. Not streamed: one delta, once the reply is stored.
  const streamed = config.streaming.enabled && input.stream;
  // The history this turn sends ends with its own message, whatever other turns store meanwhile.
  let historyOf: (log: SessionLog) => MessageSequence;
  let userMessage: PendingUserMessage;
  if (earlier.user === undefined) {
    const stored: Message = {
      id: newId(),
      content: input.content,
      role: 'user',
      timestamp: currentTime(),
      metadata: { sessionId, turnId } satisfies MessageMetadata,
    };
    // Stored while the model works, and durable before any of the reply is shown (user-message.ts).
    userMessage = createPendingUserMessage({
      storage: ctx.storage,
      sessions,
      userId,
      sessionId,
      message: stored,
      windowMs: streamed ? 0 : config.reply_commit_window_ms,
      deadlines: deps.deadlines,
      onStored: (message) => safeEmit(ctx, 'message.received', { userId, sessionId, message }, envelope),
      onAppended: appendedTo(deps, userId, sessionId),
    });
    historyOf = (log) => ({
      count: log.count + 1,
      first: log.first,
      identity: log.identity,
      at: (index) => (index === log.count ? stored : log.at(index)),
    });
  } else {
    // A redelivered turn whose reply was never stored: its history ends at its own message.
    historyOf = historyEndingAt(earlier.user);
    userMessage = storedUserMessage({
      storage: ctx.storage,
      sessions,
      userId,
      sessionId,
      onAppended: appendedTo(deps, userId, sessionId),
    });
  }

  // A repeat of this keyed turn waits for it, here until it is over, elsewhere until its end event.
  const keyedDone = input.keyed ? deps.underWay.generatingKeyed(turnId) : undefined;
  announceGenerating(deps, { turnId, sessionId, regeneration: false }, envelope);
  const answering = answerTurn(deps, {
    userId,
    sessionId,
    turnId,
    envelope,
    log,
    sessionModel: metadata.model,
    model: input.model,
    temperature: input.temperature,
    streamed,
    lookups,
    historyOf,
    userMessage,
    replyMetadata: {},
  });
  return keyedDone === undefined ? answering : answering.finally(keyedDone);
}

/**
 * Counts a message against the user's rate limit (rate_limiting), or throws CHAT_ERR_RATE_LIMITED; the
 * other nodes are told, so the limit holds across nodes.
 */
export function countAgainstRateLimit(deps: TurnDependencies, userId: string): void {
  const { ctx } = deps;
  if (deps.rateLimiter === undefined) return;
  const decision = deps.rateLimiter.take(userId);
  if (!decision.allowed) {
    const retryAfterSeconds = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
    const limit = ctx.config.rate_limiting.max_messages_per_minute;
    throw new PlatformError(
      'CHAT_ERR_RATE_LIMITED',
      `too many messages: at most ${limit} per minute (text_chat.rate_limiting.max_messages_per_minute); retry in ${retryAfterSeconds} s`,
      { details: { retryAfterSeconds, limit } },
    );
  }
  // The other nodes count it too (not waited for: a node that misses it lets a message more through).
  ctx.emit('chat.rate_limit.used', { userId, node: deps.node }, { userId }).catch((error: unknown) => {
    ctx.log.debug({ err: error, userId }, 'could not tell the other nodes of a counted message');
  });
}

/**
 * Tells every other node that this one begins generating a reply in the session (turns-under-way.ts):
 * they refuse a regeneration beside it (and, beside a regeneration, a new message) until it ends, and a
 * repeat of a keyed turn waits for it.
 */
export function announceGenerating(
  deps: TurnDependencies,
  turn: { turnId: string; sessionId: string; regeneration: boolean },
  envelope: EnvelopeOptions,
): void {
  const { ctx } = deps;
  // Only other nodes act on it (this one knows its own turns): a node alone on its bus sends nothing.
  if (ctx.cluster?.multiNode === false) return;
  const { turnId } = turn;
  const started = { ...turn, node: deps.node };
  ctx.emit('chat.turn.started', started, envelope).catch((error: unknown) => {
    // The bus is down: no other node could take a turn of the session either.
    ctx.log.debug({ err: error, turnId }, 'could not tell the other nodes of a turn starting');
  });
}

/** The persona lookup's outcome: a failure is carried, and fails the turn when it is taken. */
interface PersonaOutcome {
  persona: PersonaReply | undefined;
  error: unknown;
}

/**
 * What a turn asks of others before the model is called, each started at once and taken when needed:
 * a value when it was known at once (usually: each is cached), else a promise that never rejects.
 */
export interface TurnLookups {
  /** The session's persona. */
  persona: PersonaOutcome | Promise<PersonaOutcome>;
  /** The user's documents (knowledge.ts; a turn goes on without knowledge). */
  knowledge: TurnKnowledge | Promise<TurnKnowledge>;
  /** The tools modules offer (tools.ts; cached, so usually no bus round at all). */
  tools: TurnTools | undefined | Promise<TurnTools | undefined>;
}

/** The persona of `lookup`, its failure carried rather than thrown. */
function personaOutcome(lookup: () => ReturnType<PersonaLookup>): PersonaOutcome | Promise<PersonaOutcome> {
  let found: ReturnType<PersonaLookup>;
  try {
    found = lookup();
  } catch (error) {
    return { persona: undefined, error };
  }
  if (!(found instanceof Promise)) return { persona: found, error: undefined };
  return found.then(
    (persona) => ({ persona, error: undefined }),
    (error: unknown) => ({ persona: undefined, error }),
  );
}

/** Starts the persona, knowledge and tools lookups of a turn: neither needs the other, nor the storing. */
export function startLookups(
  deps: TurnDependencies,
  turn: {
    userId: string;
    sessionId: string;
    turnId: string;
    personaId: string | undefined;
    /** The user message the reply answers: the knowledge query. */
    query: string;
    /** The log, for the follow-up context of the query. */
    history: SessionLog;
    /** The turn id of the user message answered: left out of that context. */
    ownTurnId: string | undefined;
  },
): TurnLookups {
  const { ctx } = deps;
  const { userId, sessionId, turnId } = turn;
  return {
    persona: personaOutcome(() => deps.persona(turn.personaId)),
    knowledge: lookupKnowledge(
      ctx,
      ctx.config.knowledge,
      {
        userId,
        sessionId,
        query: turn.query,
        history: turn.history,
        ...(turn.ownTurnId === undefined ? {} : { turnId: turn.ownTurnId }),
      },
      deps.knowledgeHints,
    ),
    tools: deps.tools.forTurn({ userId, sessionId, turnId }),
  };
}

/**
 * The history cache takes back the objects a turn stores (their token counts are known), and the search
 * index notes them (indexed at the user's next search).
 */
export function appendedTo(
  deps: TurnDependencies,
  userId: string,
  sessionId: string,
): (messages: readonly Message[], bytes: Uint8Array) => void {
  return (messages, bytes) => {
    deps.history.appended(userId, sessionId, messages, bytes);
    deps.search.noted(userId, sessionId, messages);
  };
}

/**
 * The history of a reply to a user message already in the log (a redelivered turn, a regeneration): the
 * log up to that message, by its id (a log read anew holds other objects). What follows it — the replies
 * a regeneration replaces, other turns' messages stored meanwhile — is not sent.
 */
export function historyEndingAt(own: Message): (log: SessionLog) => MessageSequence {
  return (log) => {
    let end = log.count;
    while (end > log.first && log.at(end - 1).id !== own.id) end--;
    return { count: end, first: log.first, identity: log.identity, at: (index) => log.at(index) };
  };
}

/** What a turn has settled before it answers: the user message, its history and the lookups under way. */
export interface TurnAnswer {
  userId: string;
  sessionId: string;
  turnId: string;
  envelope: EnvelopeOptions;
  log: SessionLog;
  /** The session's model, and the request's model and temperature (each undefined when not chosen). */
  sessionModel: string | undefined;
  model: string | undefined;
  temperature: number | undefined;
  streamed: boolean;
  lookups: TurnLookups;
  /** The history of the reply, from a log as loaded (the log may be read whole again). */
  historyOf: (log: SessionLog) => MessageSequence;
  userMessage: PendingUserMessage;
  /** Added to the reply's metadata (a regeneration names the reply it replaces). */
  replyMetadata: Partial<MessageMetadata>;
}

/** What a text handler of a turn that is not streamed returns: its text is kept, nothing to wait for. */
const HELD_BACK: Promise<void> = Promise.resolve();

/**
 * A turn's model request: its history in the prompt's form, kept with the window, and in the AI SDK's
 * (`messages`) only once read — by a call with tools; the others send the prompt. A class, not a literal
 * with a getter (lint/no-object-literal-accessor.grit). The other settings are set on it as the turn finds
 * them.
 */
class WindowRequest implements LlmRequest {
  readonly model: string;
  readonly prompt: LanguageModelV3Prompt;
  readonly #history: SelectedHistory;

  constructor(model: string, history: SelectedHistory) {
    this.model = model;
    this.prompt = history.prompt;
    this.#history = history;
  }

  get messages(): ModelMessage[] {
    return this.#history.messages;
  }
}

/**
 * Generates, streams and stores the reply of a turn whose user message is known (new or stored), and
 * emits `chat.response.end` and `chat.response`; a failure is emitted as `chat.response.error` and thrown,
 * with the user message stored whatever failed (unless storing it is what failed).
 */
export async function answerTurn(deps: TurnDependencies, turn: TurnAnswer): Promise<Message> {
  const { ctx, sessions } = deps;
  const config = ctx.config;
  const { userId, sessionId, turnId, envelope, historyOf, userMessage, streamed } = turn;
  let log = turn.log;
  try {
    // A user refused for their storage quota lately: the message first, so a refusal costs no model call.
    if (!userMessage.durable && deps.quotaRefusals.refusedLately(userId)) {
      await userMessage.store();
      deps.quotaRefusals.stored(userId);
    }
    // Each lookup is awaited only when it is a promise: an await costs a turn even with nothing to wait for.
    const { lookups } = turn;
    const { persona, error: personaError } =
      lookups.persona instanceof Promise ? await lookups.persona : lookups.persona;
    if (personaError !== undefined) throw personaError;
    const model =
      turn.model ?? turn.sessionModel ?? persona?.model ?? config.default_model ?? ctx.llm.defaultModelName();
    const temperature = turn.temperature ?? persona?.temperature;
    let window = {
      messages: historyOf(log),
      system: persona?.systemPrompt,
      budget: config.history_token_budget,
    };
    let selected = selectWithoutCounting(window) ?? selectCounting(window) ?? (await selectLoading(window));
    // The budget has room for messages older than the cache held (a shorter system prompt than before):
    // choose from the whole log.
    if (selected.truncated) {
      log = await deps.history.loadWhole(ctx.storage, userId, sessionId);
      window = { ...window, messages: historyOf(log) };
      selected = selectWithoutCounting(window) ?? selectCounting(window) ?? (await selectLoading(window));
    }
    // Later turns of this conversation start their window here or later: the cache may drop what is older.
    deps.history.retain(userId, sessionId, selected.start);
    // A conversation past half the budget will soon need counting: load the tokenizer (about a second)
    // now, in the background, rather than in the turn that first needs it.
    if (selected.tokens > window.budget / 2) {
      loadTokenCounter().catch((error: unknown) =>
        ctx.log.error({ err: error }, 'could not load gpt-tokenizer'),
      );
    }
    ctx.log.debug(
      { turnId, sessionId, model, tokens: selected.tokens, omitted: selected.omitted },
      'turn started',
    );

    // The prompt form is kept with the window: the LLM layer need not convert the history again.
    const request: LlmRequest = new WindowRequest(model, selected);
    const knowledge = lookups.knowledge instanceof Promise ? await lookups.knowledge : lookups.knowledge;
    const system = systemWithKnowledge(persona?.systemPrompt, knowledge);
    if (system !== undefined) request.system = system;
    if (temperature !== undefined) request.temperature = temperature;
    if (config.max_output_tokens !== undefined) request.maxOutputTokens = config.max_output_tokens;
    const tools = lookups.tools instanceof Promise ? await lookups.tools : lookups.tools;
    if (tools !== undefined) {
      request.tools = tools;
      request.maxSteps = config.tools.max_steps;
    }
    const streaming: StreamingConfig = streamed
      ? config.streaming
      : { ...config.streaming, chunk_size: Number.POSITIVE_INFINITY };
    const emitDelta = (text: string) =>
      safeEmit(ctx, 'chat.response.delta', { turnId, sessionId, text }, envelope);
    // A turn that is not streamed shows its one delta after the reply is stored.
    const heldBack: string[] = [];
    const emitTool = (data: ToolEvent) =>
      safeEmit(ctx, 'chat.response.tool', { turnId, sessionId, ...data }, envelope);
    const outcome = await generate(deps, request, turnId, userId, streaming, emitTool, (text) => {
      if (!streamed) {
        heldBack.push(text);
        return HELD_BACK;
      }
      return userMessage.durable ? emitDelta(text) : userMessage.store().then(() => emitDelta(text));
    });

    const replyMetadata: MessageMetadata = {
      sessionId,
      turnId,
      model,
      finishReason: outcome.finishReason,
      ...turn.replyMetadata,
    };
    if (persona !== undefined) replyMetadata.personaId = persona.id;
    if (outcome.usage !== undefined) replyMetadata.usage = outcome.usage;
    if (knowledge.citations.length > 0) replyMetadata.citations = knowledge.citations;
    if (outcome.toolCalls.length > 0) replyMetadata.toolCalls = outcome.toolCalls;
    if (outcome.error !== undefined) replyMetadata.error = outcome.error.toJSON();
    const reply: Message = {
      id: newId(),
      content: outcome.text,
      role: 'assistant',
      timestamp: currentTime(),
      metadata: { ...replyMetadata },
    };
    // A failed generation keeps its partial text (marked with the error); an empty one is not a message.
    // A session deleted during the turn stays deleted (NotFoundError): nothing is written.
    await userMessage.storeWith(outcome.error === undefined || outcome.text !== '' ? reply : undefined);
    for (const text of heldBack) await emitDelta(text);
    // updatedAt follows the newest message; written a little later, off the turn's path.
    sessions.touch(userId, sessionId, reply.timestamp);
    if (outcome.error !== undefined) throw outcome.error;

    await safeEmit(ctx, 'chat.response.end', { turnId, sessionId, message: reply }, envelope);
    await safeEmit(
      ctx,
      'chat.response',
      { sessionId, content: reply.content, messageId: reply.id },
      envelope,
    );
    return reply;
  } catch (caught) {
    // The user's message is stored whatever failed (unless storing it is what failed).
    await userMessage.store().catch(() => {});
    const error = toPlatformError(caught);
    if (error.code === 'CHAT_ERR_STORAGE_QUOTA_EXCEEDED') deps.quotaRefusals.refused(userId);
    // A session deleted while its reply was being generated is the user's doing, not a failure to look into.
    if (error instanceof NotFoundError)
      ctx.log.info({ turnId, sessionId }, 'turn ended: its session was deleted');
    else ctx.log.warn({ turnId, sessionId, code: error.code, err: caught }, 'turn failed');
    await safeEmit(ctx, 'chat.response.error', { turnId, sessionId, error: error.toJSON() }, envelope);
    throw error;
  }
}

/*
 * The history that fits the window's budget is chosen without a wait when it can be: most conversations fit
 * whole by their size alone (`selectWithoutCounting`); longer ones are counted with the tokenizer, loaded
 * (about a second) only when the first of them comes. Each step is tried in turn, so a turn awaits only
 * that first load — an await costs a turn even when there is nothing to wait for.
 */

/** The history counted with the tokenizer, when it is loaded; undefined before. */
function selectCounting(window: Omit<SelectHistoryOptions, 'countTokens'>): SelectedHistory | undefined {
  const countTokens = tokenCounterIfLoaded();
  return countTokens === undefined ? undefined : selectHistory({ ...window, countTokens });
}

/** The history counted with the tokenizer, loading it first. */
async function selectLoading(window: Omit<SelectHistoryOptions, 'countTokens'>): Promise<SelectedHistory> {
  return selectHistory({ ...window, countTokens: await loadTokenCounter() });
}

/**
 * The reply a turn asked again already has: its first reply, unless that one failed (`metadata.error`);
 * then a later reply of the turn that did not fail, if an earlier repeat stored one. A failed turn asked
 * again is answered again (for its stored user message), as one that stored no reply at all is.
 */
export function finishedReply(
  log: SessionLog,
  turnId: string,
  first: Message | undefined,
): Message | undefined {
  if (first === undefined || first.metadata.error === undefined) return first;
  // Only the messages after the failed reply can hold a later one: scan back to it.
  for (let index = log.count - 1; index >= log.first; index--) {
    const message = log.at(index);
    if (message === first) return undefined;
    const metadata = message.metadata;
    if (message.role === 'assistant' && metadata.turnId === turnId && metadata.error === undefined) {
      return message;
    }
  }
  return undefined;
}

/**
 * Streams the reply through the chunker. A cancel ends it as `cancelled` with the text so far; a model
 * failure or the turn deadline returns the text so far with the error.
 */
async function generate(
  deps: TurnDependencies,
  request: LlmRequest,
  turnId: string,
  userId: string,
  streaming: StreamingConfig,
  emitTool: (data: ToolEvent) => Promise<void>,
  emitDelta: (text: string) => Promise<void>,
): Promise<Outcome> {
  const { ctx, turns } = deps;
  const timeoutMs = ctx.config.turn_timeout_ms;
  const controller = turns.start(turnId, userId);
  const deadline = deps.deadlines.add(timeoutMs, () => controller.abort(TURN_TIMED_OUT));
  const chunker = createDeltaChunker(
    { chunkSize: streaming.chunk_size, maxDelayMs: streaming.max_delay_ms },
    emitDelta,
  );
  let text = '';
  const toolCalls: ToolCallRecord[] = [];
  const callsById = new Map<string, ToolCallRecord>();
  let finish: Extract<LlmStreamPart, { type: 'finish' }> | undefined;
  /** Each part as it comes; a promise returned (a chunk or tool event on its way) holds the next back. */
  const onPart = (part: LlmStreamPart): Promise<void> | undefined => {
    if (part.type === 'text-delta') {
      text += part.text;
      return chunker.push(part.text);
    }
    if (part.type === 'tool-call') {
      const call: ToolCallRecord = { name: part.toolName, input: part.input };
      toolCalls.push(call);
      callsById.set(part.toolCallId, call);
      // Shown while the tool works: a client can say what the assistant is doing.
      return emitTool({ phase: 'call', toolCallId: part.toolCallId, name: part.toolName, input: part.input });
    }
    if (part.type === 'tool-result') {
      const call = callsById.get(part.toolCallId);
      if (call !== undefined) {
        if (part.error === undefined) call.output = part.output;
        else call.error = part.error;
      }
      return emitTool({
        phase: 'result',
        toolCallId: part.toolCallId,
        name: part.toolName,
        ...(part.error === undefined ? { output: part.output } : { error: part.error }),
      });
    }
    finish ??= part;
    return undefined;
  };
  try {
    // Set, not spread into a copy: a copy would make the request's messages, which only tools need.
    request.signal = controller.signal;
    await ctx.llm.streamTo(request, onPart);
    if (finish !== undefined) {
      await chunker.end();
      const usage: NonNullable<MessageMetadata['usage']> = {};
      if (finish.usage.inputTokens !== undefined) usage.inputTokens = finish.usage.inputTokens;
      if (finish.usage.outputTokens !== undefined) usage.outputTokens = finish.usage.outputTokens;
      return {
        text,
        finishReason: finish.finishReason === 'error' ? 'error' : (finish.finishReason as ReplyFinishReason),
        usage: Object.keys(usage).length === 0 ? undefined : usage,
        error: undefined,
        toolCalls,
      };
    }
    throw new PlatformError('CHAT_ERR_LLM_PROVIDER_FAILED', 'the model stream ended without a finish');
  } catch (caught) {
    // What was generated before the stop is shown and stored, so flush it.
    await chunker.end();
    if (controller.signal.reason === CANCELLED) {
      ctx.log.info({ turnId, characters: text.length }, 'turn cancelled');
      return { text, finishReason: 'cancelled', usage: undefined, error: undefined, toolCalls };
    }
    const error =
      controller.signal.reason === TURN_TIMED_OUT
        ? new PlatformError(
            'CHAT_ERR_LLM_TIMEOUT',
            `the reply was still generating after ${timeoutMs} ms (text_chat.turn_timeout_ms)`,
            { details: { timeoutMs } },
          )
        : toPlatformError(caught);
    return { text, finishReason: 'error', usage: undefined, error, toolCalls };
  } finally {
    deps.deadlines.cancel(deadline);
    turns.finish(turnId);
  }
}

/**
 * Emits without failing the turn: a stream event that cannot be sent (the bus is closing) must not lose
 * the reply, which is stored either way.
 */
export function safeEmit<K extends string>(
  ctx: ModuleContext<TextChatConfig>,
  type: K,
  data: EventData<K>,
  envelope: EnvelopeOptions,
): Promise<void> {
  const failed = (error: unknown) => {
    ctx.log.warn({ err: error, type, correlationId: envelope.correlationId }, 'could not emit a chat event');
  };
  // Not an async function awaiting in a try: each turn emits several events, and their promises add up
  // (one nobody listens to, most of a lone node's, needs no handler for a failure it cannot have).
  try {
    const emitted = ctx.emit(type, data, envelope);
    return deliveredToNobody(emitted) ? emitted : emitted.catch(failed);
  } catch (error) {
    failed(error);
    return Promise.resolve();
  }
}
