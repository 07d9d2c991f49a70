import type { PlatformErrorJSON } from '../../core/errors.ts';
import type { Message, Session } from '../../core/types.ts';
import type { Citation, KnowledgeConfig } from './knowledge.ts';
import type { ToolCallRecord, ToolsConfig } from './tools.ts';

/** text_chat's config slice (defaults in config.json, schema in config.schema.json). */
export interface TextChatConfig {
  /** Longest user message, in characters (Unicode code points). */
  max_message_length: number;
  streaming: StreamingConfig;
  rate_limiting: {
    enabled: boolean;
    /** Messages one user may send per sliding minute, per node. */
    max_messages_per_minute: number;
  };
  /** Tokens of history (system prompt included) sent to the model per turn. */
  history_token_budget: number;
  /** A turn still generating after this long is aborted (also the server's request timeout). */
  turn_timeout_ms: number;
  /** A turn that is not streamed waits this long for its reply to store the user message with it. */
  reply_commit_window_ms: number;
  /** Networked bus: heartbeats of running turns, and when a silent turn is asked of another node. */
  turn_recovery: TurnRecoveryConfig;
  /** The model when neither request, session nor persona names one; else `llm.default_model`. */
  default_model?: string;
  /** Cap on the reply length, in tokens; unset leaves it to the model. */
  max_output_tokens?: number;
  /** Longest session title, in characters. */
  max_title_length: number;
  messages_page: {
    /** Messages per `messages.list` page when the request sets no limit. */
    default_limit: number;
    /** Largest `limit` a `messages.list` request may ask for. */
    max_limit: number;
  };
  /** How long after a turn the session's `updatedAt` is written (the turns of that span share one write). */
  session_touch_delay_ms: number;
  /** Passages of the user's documents given to the model each turn (knowledge.ts). */
  knowledge: KnowledgeConfig;
  /** The tools modules offer, given to the model each turn (tools.ts). */
  tools: ToolsConfig;
  history_cache: {
    /** Bytes of session logs kept parsed in memory on a node (least recently used dropped first); 0: off. */
    max_bytes: number;
  };
  /** `messages.search`: BM25 over a user's messages across their sessions (message-search.ts). */
  search: SearchConfig;
  /** `message.rate`: users' ratings of replies (feedback.ts). */
  feedback: { max_comment_length: number };
}

/** `text_chat.search`. */
export interface SearchConfig {
  /** Estimated heap of the per-user indexes a node keeps; 0: built for each search, not kept. */
  max_bytes: number;
  /** An index older than this is brought in line with storage before it answers. */
  resync_ms: number;
  default_limit: number;
  max_limit: number;
  /** Longest query, in code points. */
  max_query_length: number;
  /** Characters of a hit's message shown around the matched words. */
  snippet_length: number;
}

/** `text_chat.turn_recovery`. */
export interface TurnRecoveryConfig {
  heartbeat_ms: number;
  lost_after_ms: number;
  max_attempts: number;
}

/** `text_chat.streaming`. */
export interface StreamingConfig {
  /** False: the reply comes as one delta when generation ended. */
  enabled: boolean;
  /** Characters buffered before a `chat.response.delta` is emitted (model tokens are never split). */
  chunk_size: number;
  /** Longest time reply text waits for `chunk_size` before it is emitted anyway. */
  max_delay_ms: number;
}

/** What text_chat keeps in a session's `metadata`. */
export interface SessionMetadata {
  title: string;
  personaId?: string;
  model?: string;
  /** ISO-8601; changes on update and after every turn. */
  updatedAt: string;
}

/** Why a reply ended: the AI SDK's finish reasons, or `cancelled` when the client stopped it. */
export type ReplyFinishReason =
  | 'stop'
  | 'length'
  | 'content-filter'
  | 'tool-calls'
  | 'error'
  | 'other'
  | 'cancelled';

/** What text_chat keeps in a message's `metadata`. */
export interface MessageMetadata {
  sessionId: string;
  /** The turn the message belongs to (the envelope correlationId of `message.send`). */
  turnId?: string;
  /** "provider:model" that wrote an assistant message. */
  model?: string;
  personaId?: string;
  usage?: { inputTokens?: number; outputTokens?: number };
  finishReason?: ReplyFinishReason;
  /** Set on a partial reply whose generation failed; such messages are left out of later history. */
  error?: PlatformErrorJSON;
  /** The document passages the model was given, in source order (`[n]` is citation n − 1). */
  citations?: Citation[];
  /** The tools the model called for the reply, in order, with what they returned (tools.ts). */
  toolCalls?: ToolCallRecord[];
  /**
   * On a reply of `message.regenerate`: the id of the reply it replaces (replies.ts). Once this reply is
   * stored without an error, the replaced one is left out of the history and of the default listing.
   */
  replaces?: string;
}

/** `session.start` (seed name): creates a session. Reply: Session. */
export interface SessionStartRequest {
  userId: string;
  title?: string;
  personaId?: string;
  model?: string;
}

/** `session.list`: the user's sessions, newest first. Reply: Session[]. */
export interface SessionListRequest {
  userId: string;
}

/** `session.get`. Reply: Session, or NotFoundError (also for another user's session). */
export interface SessionGetRequest {
  userId: string;
  sessionId: string;
}

/** `session.update`. `personaId: null` / `model: null` go back to the defaults. Reply: Session. */
export interface SessionUpdateRequest {
  userId: string;
  sessionId: string;
  title?: string;
  personaId?: string | null;
  model?: string | null;
}

/** `session.delete`. Reply: `{ deleted: true }`, or NotFoundError. */
export interface SessionDeleteRequest {
  userId: string;
  sessionId: string;
}

/** `messages.list`: a page of the session's messages, oldest first. */
export interface MessagesListRequest {
  userId: string;
  sessionId: string;
  limit?: number;
  /** A message id: the page ends just before it. */
  before?: string;
  /**
   * `replaced`: every message of the log, the replies a regeneration replaced (and its failed attempts)
   * included. Absent: only the current conversation (replies.ts).
   */
  include?: 'replaced';
}

/**
 * `messages.export`: the session's messages from the oldest on, a page at a time (the export streams them);
 * `after` (a message id, the last of the previous page) continues.
 */
export interface MessagesExportRequest {
  userId: string;
  sessionId: string;
  limit?: number;
  after?: string;
}

/** Reply of `messages.export`: oldest first; `nextCursor` (pass as `after`) when newer messages remain. */
export interface MessagesExportPage {
  messages: Message[];
  nextCursor?: string;
}

/** `messages.search`: the user's own messages across their sessions that best match `query`. */
export interface MessagesSearchRequest {
  userId: string;
  query: string;
  limit?: number;
}

/** One message found, with where the query's words are in its snippet. */
export interface MessageSearchHit {
  sessionId: string;
  sessionTitle: string;
  messageId: string;
  role: Message['role'];
  timestamp: string;
  /** Part of the message around the matched words, `…` where it was cut. */
  snippet: string;
  /** The matched words: `snippet.slice(start, end)`. */
  highlights: Array<{ start: number; end: number }>;
  /** BM25; compares the hits of one answer only. */
  score: number;
}

/** A rating of a reply: thumbs up or down. */
export type FeedbackRating = 'up' | 'down';

/** A user's current rating of an assistant reply. */
export interface MessageFeedback {
  messageId: string;
  rating: FeedbackRating;
  comment?: string;
  /** When the rating was given or last changed. */
  updatedAt: string;
}

/** `message.rate`: rates a reply of the user's session; `rating: null` withdraws the rating. */
export interface MessageRateRequest {
  userId: string;
  sessionId: string;
  messageId: string;
  rating: FeedbackRating | null;
  comment?: string;
}

/** `messages.feedback`: the session's current ratings. */
export interface MessagesFeedbackRequest {
  userId: string;
  sessionId: string;
}

/** Reply of `messages.feedback`, oldest rating first. */
export interface MessageFeedbackList {
  feedback: MessageFeedback[];
}

/** `message.rated`: a user rated a reply (or withdrew the rating: `rating: null`). */
export interface MessageRated {
  userId: string;
  sessionId: string;
  messageId: string;
  rating: FeedbackRating | null;
  comment?: string;
}

/** Reply of `messages.search`, best first. */
export interface MessagesSearchReply {
  hits: MessageSearchHit[];
}

/** Reply of `messages.list`; `nextCursor` (pass as `before`) is set when older messages remain. */
export interface MessagesPage {
  messages: Message[];
  nextCursor?: string;
}

/**
 * `message.send` (and its seed alias `chat.message`): one chat turn. The envelope `correlationId` is the
 * turn id. Reply: the stored assistant Message, once generation ended.
 */
export interface MessageSendRequest {
  userId: string;
  sessionId: string;
  content: string;
  model?: string;
  temperature?: number;
  /** False: no streaming for this turn (one delta at the end). */
  stream?: boolean;
  /**
   * The turn id comes from an Idempotency-Key, so the same turn may be asked again from anywhere: a
   * repeat waits for a generation of it under way on any node (turns-under-way.ts).
   */
  keyed?: boolean;
}

/**
 * `message.regenerate`: another reply to the session's last user message, with the history that message
 * had, replacing the newest reply to it (regenerate.ts). The envelope `correlationId` is the turn id of
 * the new reply. Reply: the stored assistant Message, once generation ended.
 */
export interface MessageRegenerateRequest {
  userId: string;
  sessionId: string;
  model?: string;
  temperature?: number;
  /** False: no streaming (one delta at the end). */
  stream?: boolean;
}

/** `chat.response.delta`: the next piece of the reply. */
export interface ChatResponseDelta {
  turnId: string;
  sessionId: string;
  text: string;
}

/**
 * `chat.response.tool`: the model called a tool (`phase: "call"`, with its input) or the tool answered
 * (`phase: "result"`, its output or error) — shown while the tool works.
 */
export interface ChatResponseTool {
  turnId: string;
  sessionId: string;
  phase: 'call' | 'result';
  toolCallId: string;
  name: string;
  input?: unknown;
  output?: unknown;
  error?: string;
}

/** `chat.response.end`: the stored assistant message (finishReason `cancelled` when stopped). */
export interface ChatResponseEnd {
  turnId: string;
  sessionId: string;
  message: Message;
}

/** `chat.response.error`: generation failed; the user message is stored anyway. */
export interface ChatResponseError {
  turnId: string;
  sessionId: string;
  error: PlatformErrorJSON;
}

/**
 * `chat.response.alive`: the turns a node is working on, every `turn_recovery.heartbeat_ms`; a node waiting
 * for one of them takes its silence as the generating node's death.
 */
export interface ChatResponseAlive {
  turnIds: string[];
}

/** `chat.response` (seed name): once per finished turn, for other modules. */
export interface ChatResponse {
  sessionId: string;
  content: string;
  messageId: string;
}

/** `chat.cancel`: stop the generation of a turn (broadcast; every node checks its own turns). */
export interface ChatCancel {
  turnId: string;
}

/** `message.received` (seed name): a user message was stored. */
export interface MessageReceived {
  userId: string;
  sessionId: string;
  message: Message;
}

/** `session.deleted`: a session and its messages are gone (other modules drop what they keep of it). */
export interface SessionDeleted {
  userId: string;
  sessionId: string;
}

/** The persona as text_chat reads it from `persona.get` (modules share events, not types). */
export interface PersonaReply {
  id: string;
  name: string;
  systemPrompt: string;
  model?: string;
  temperature?: number;
  /** `config`: fixed while the platform runs (persona-lookup.ts keeps it); `storage`: editable. */
  source?: 'config' | 'storage';
}

/**
 * `chat.rate_limit.used`: a node's text_chat let one of the user's messages through its rate limit; every
 * other node counts it too, so the limit holds across nodes (`node`: the sender, which ignores its own).
 */
export interface ChatRateLimitUsed {
  userId: string;
  node: string;
}

/**
 * `chat.turn.started`: a node's text_chat begins generating a reply in the user's session (envelope
 * `userId`): a turn's, or a regeneration's. Every other node then refuses what must not run beside it,
 * and a repeat of the turn (a keyed one: sent with an Idempotency-Key) waits for it (turns-under-way.ts),
 * until the turn's `chat.response.end` or `.error` (`node`: the sender, which ignores its own).
 */
export interface ChatTurnStarted {
  turnId: string;
  sessionId: string;
  node: string;
  regeneration: boolean;
}

/** What other modules and the server get from `ctx.getModule('text_chat')`: read-only listing. */
export interface TextChatApi {
  listSessions(userId: string): Promise<Session[]>;
  /** The session, or NotFoundError (also for another user's session). */
  getSession(userId: string, sessionId: string): Promise<Session>;
  listMessages(request: MessagesListRequest): Promise<MessagesPage>;
  /** The user's messages across their sessions, best match first. */
  searchMessages(request: MessagesSearchRequest): Promise<MessagesSearchReply>;
}

declare module '../../core/events.ts' {
  interface EventMap {
    'session.start': SessionStartRequest;
    'session.list': SessionListRequest;
    'session.get': SessionGetRequest;
    'session.update': SessionUpdateRequest;
    'session.delete': SessionDeleteRequest;
    'session.deleted': SessionDeleted;
    'messages.list': MessagesListRequest;
    'messages.export': MessagesExportRequest;
    'messages.search': MessagesSearchRequest;
    'message.send': MessageSendRequest;
    'chat.message': MessageSendRequest;
    'message.regenerate': MessageRegenerateRequest;
    'message.received': MessageReceived;
    'message.rate': MessageRateRequest;
    'message.rated': MessageRated;
    'messages.feedback': MessagesFeedbackRequest;
    'chat.response.delta': ChatResponseDelta;
    'chat.response.tool': ChatResponseTool;
    'chat.response.end': ChatResponseEnd;
    'chat.response.error': ChatResponseError;
    'chat.response.alive': ChatResponseAlive;
    'chat.response': ChatResponse;
    'chat.cancel': ChatCancel;
    'chat.rate_limit.used': ChatRateLimitUsed;
    'chat.turn.started': ChatTurnStarted;
  }
}
