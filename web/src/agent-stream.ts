/**
 * An agent conversation run over server-sent events: `POST /v1/agent-conversations?stream=sse`. Events:
 * `start` {conversationId}, `delta` {id, agentId, name, round, text} as an agent writes, `utterance` (the
 * stored one) when it is done, then `end` {conversation, transcript} or `error` {error}. A request the server
 * refuses (a body that fails the schema, an unknown agent, too many rounds, the module off) is a plain HTTP
 * error before the stream starts, thrown as an ApiError; what fails after it started is an `error` event.
 * Closing the stream (aborting `signal`) makes the server stop the conversation: what was said is kept.
 */

import {
  type AgentConversationWithTranscript,
  ApiError,
  errorOf,
  NETWORK_ERROR,
  type StartAgentConversation,
  send,
  type Utterance,
} from './api.ts';
import { readSseEvents } from './sse.ts';

/** A piece of an utterance being written. */
export interface UtteranceDelta {
  id: string;
  agentId: string;
  name: string;
  round: number;
  text: string;
}

/** What a running conversation reports as it goes. */
export interface AgentStreamCallbacks {
  onStart(conversationId: string): void;
  onDelta(delta: UtteranceDelta): void;
  onUtterance(utterance: Utterance): void;
}

/** How a conversation's stream ended: over (done, failed or cancelled: see its status), or refused. */
export type AgentStreamOutcome =
  | { kind: 'end'; result: AgentConversationWithTranscript }
  | { kind: 'error'; error: ApiError };

/** The status an `error` event's code stands for, so a refusal reads like the 4xx it is. */
function statusOfCode(code: string): number {
  if (code.startsWith('CHAT_ERR_VALIDATION')) return 400;
  if (code === 'CHAT_ERR_NOT_FOUND') return 404;
  if (code.includes('RATE_LIMIT')) return 429;
  return 500;
}

/** Starts a conversation and streams it; resolves once the stream ends. */
export async function streamAgentConversation(
  request: StartAgentConversation,
  callbacks: AgentStreamCallbacks,
  signal?: AbortSignal,
): Promise<AgentStreamOutcome> {
  const response = await send('/v1/agent-conversations?stream=sse', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify(request),
    ...(signal ? { signal } : {}),
  });
  if (!response.ok) throw await errorOf(response);
  if (response.body === null) throw new ApiError(0, NETWORK_ERROR, 'the conversation stream is empty');

  try {
    for await (const { event, data: raw } of readSseEvents(response.body)) {
      const data = JSON.parse(raw) as Record<string, unknown>;
      if (event === 'start') callbacks.onStart(String(data.conversationId));
      else if (event === 'delta') callbacks.onDelta(data as unknown as UtteranceDelta);
      else if (event === 'utterance') callbacks.onUtterance(data as unknown as Utterance);
      else if (event === 'end')
        return { kind: 'end', result: data as unknown as AgentConversationWithTranscript };
      else if (event === 'error') {
        const error = (data.error ?? {}) as { code?: string; message?: string };
        const code = error.code ?? 'CHAT_ERR_INTERNAL';
        return {
          kind: 'error',
          error: new ApiError(statusOfCode(code), code, error.message ?? 'the conversation failed'),
        };
      }
    }
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') throw error;
    throw new ApiError(0, NETWORK_ERROR, 'the connection was lost while the agents were talking');
  }
  throw new ApiError(0, NETWORK_ERROR, 'the conversation stream ended before the conversation did');
}
