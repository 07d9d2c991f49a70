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

const usage = {
  inputTokens: { total: 12, noCache: 12, cacheRead: 0, cacheWrite: 0 },
  outputTokens: { total: REPLY_TOKENS.length, text: REPLY_TOKENS.length, reasoning: 0 },
};

/**
 * The zero-latency AI SDK model of the Mastra and raw AI SDK subjects (parley's is bench/chat's, the same
 * reply): a plain `LanguageModelV3` object. Not the AI SDK's `MockLanguageModelV3`, which keeps every call's
 * options (prompt, abort signal) in an array, so its heap — and garbage collection — grows turn after turn.
 */
export function mockModel() {
  return {
    specificationVersion: 'v3' as const,
    provider: 'mock',
    modelId: 'bench',
    supportedUrls: {},
    doGenerate: async () => ({
      content: [{ type: 'text' as const, text: REPLY }],
      finishReason: { unified: 'stop' as const, raw: 'stop' },
      usage,
      warnings: [],
    }),
    doStream: async () => ({
      stream: new ReadableStream({
        start(controller) {
          controller.enqueue({ type: 'stream-start', warnings: [] });
          controller.enqueue({ type: 'text-start', id: 't' });
          for (const delta of REPLY_TOKENS) controller.enqueue({ type: 'text-delta', id: 't', delta });
          controller.enqueue({ type: 'text-end', id: 't' });
          controller.enqueue({ type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage });
          controller.close();
        },
      }),
    }),
  };
}
