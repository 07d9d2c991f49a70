/** What every subject's zero-latency mock model answers (the same text and token count as bench/chat's). */
export const REPLY_TOKENS = ['Hello', ' from', ' the', ' benchmark', ' model', '.'];
export const REPLY = REPLY_TOKENS.join('');
/** The system prompt every subject is set up with (parley's default persona has its own, about as long). */
export const INSTRUCTIONS = 'You are a helpful assistant. Answer clearly and briefly.';

/** What a subject module exports: set up once, then turns in sessions (conversations) it keeps. */
export interface Subject {
  /** Starts a new conversation; returns its id. */
  newSession(index: number): Promise<string>;
  /** One chat turn: the user's message in, the reply text out, history kept by the framework. */
  turn(sessionId: string, content: string): Promise<string>;
  /** Messages the framework has stored for the session (a check that history is really kept). */
  storedMessages(sessionId: string): Promise<number>;
  close(): Promise<void>;
}
