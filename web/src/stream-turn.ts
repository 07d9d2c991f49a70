/**
 * One chat turn streamed over server-sent events: `POST /v1/sessions/:id/messages?stream=sse` (or a
 * regeneration of the last reply, `POST /v1/sessions/:id/regenerate?stream=sse`, which streams the same way). The
 * response is read with fetch's body stream (sse.ts) rather than EventSource, which cannot POST. Events: `start`
 * {turnId}, `delta` {text}, `tool` {phase, toolCallId, name, input | output | error} (the model called a tool,
 * or the tool answered), `restart` (another node answers again: drop the text so far), then `end` {message}
 * or `error` {error}. A failure before the first event comes
 * back as a plain HTTP error (404, 429 with Retry-After, 502…), thrown as an ApiError.
 */

import { ApiError, type ChatMessage, errorOf, NETWORK_ERROR, send } from './api.ts';
import { readSseEvents } from './sse.ts';

/** What a streamed turn reports as it goes. */
export interface TurnCallbacks {
  onStart(turnId: string): void;
  /** `arrivedAt` is the performance.now() at which the chunk holding it was read. */
  onDelta(text: string, arrivedAt: number): void;
  /** The server node generating the reply died and another starts it over: drop the text so far. */
  onRestart(): void;
  /** The model called a tool (`phase: 'call'`) or the tool answered (`phase: 'result'`). */
  onTool?(event: ToolEvent): void;
}

/** A `tool` event of the stream. */
export interface ToolEvent {
  phase: 'call' | 'result';
  toolCallId: string;
  name: string;
  input?: unknown;
  output?: unknown;
  error?: string;
}

/** How a turn ended. */
export type TurnOutcome = { kind: 'end'; message: ChatMessage } | { kind: 'error'; error: ApiError };

/**
 * Sends `content` and streams the reply. Resolves with the outcome once the stream ends; rejects with an
 * ApiError when the turn could not start, and with code NETWORK when the connection broke mid-stream.
 */
export function streamTurn(
  sessionId: string,
  content: string,
  callbacks: TurnCallbacks,
  signal?: AbortSignal,
): Promise<TurnOutcome> {
  return streamReply(
    `/v1/sessions/${encodeURIComponent(sessionId)}/messages`,
    { content },
    callbacks,
    signal,
  );
}

/**
 * Asks for another reply to the session's last message (`POST /v1/sessions/:id/regenerate?stream=sse`),
 * streamed like a turn; the server stores it in place of the newest reply. A 409 (a reply still being
 * generated, nothing to answer) and a 429 come back as ApiErrors before anything streams.
 */
export function streamRegenerate(
  sessionId: string,
  callbacks: TurnCallbacks,
  signal?: AbortSignal,
): Promise<TurnOutcome> {
  return streamReply(`/v1/sessions/${encodeURIComponent(sessionId)}/regenerate`, {}, callbacks, signal);
}

/** POSTs `body` to `path` with `?stream=sse` and reads the reply's events. */
async function streamReply(
  path: string,
  body: Record<string, unknown>,
  callbacks: TurnCallbacks,
  signal: AbortSignal | undefined,
): Promise<TurnOutcome> {
  const response = await send(`${path}?stream=sse`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
  if (!response.ok) throw await errorOf(response);
  if (response.body === null) throw new ApiError(0, NETWORK_ERROR, 'the reply stream is empty');

  try {
    for await (const { event, data: raw, arrivedAt } of readSseEvents(response.body)) {
      const data = JSON.parse(raw) as Record<string, unknown>;
      if (event === 'start') callbacks.onStart(String(data.turnId));
      else if (event === 'delta') callbacks.onDelta(String(data.text), arrivedAt);
      else if (event === 'restart') callbacks.onRestart();
      else if (event === 'tool') callbacks.onTool?.(data as unknown as ToolEvent);
      else if (event === 'end') return { kind: 'end', message: data.message as ChatMessage };
      else if (event === 'error') {
        const error = (data.error ?? {}) as { code?: string; message?: string };
        return {
          kind: 'error',
          error: new ApiError(200, error.code ?? 'CHAT_ERR_INTERNAL', error.message ?? 'the reply failed'),
        };
      }
    }
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') throw error;
    throw new ApiError(0, NETWORK_ERROR, 'the connection was lost while the reply was streaming');
  }
  throw new ApiError(0, NETWORK_ERROR, 'the reply stream ended before the reply did');
}
