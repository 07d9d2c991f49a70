/**
 * The agent conversation this window is running, if any. Held by the signed-in screen rather than by the
 * agents screen, so opening a chat while the agents talk does not close the stream — closing it would stop
 * the conversation on the server. Stop (or signing out) closes it: the server keeps what was said and marks
 * the conversation cancelled.
 */

import { useCallback, useEffect, useRef, useState } from 'react';
import { streamAgentConversation } from './agent-stream.ts';
import { type LiveUtterance, withDelta, withUtterance } from './agent-transcript.ts';
import {
  type AgentConversationWithTranscript,
  ApiError,
  isNetworkError,
  type StartAgentConversation,
} from './api.ts';

/** A conversation started from this window. */
export interface AgentRun {
  request: StartAgentConversation;
  /** The conversation's id, from the stream's first event. */
  conversationId: string | undefined;
  transcript: LiveUtterance[];
  /** `over`: the stream ended (see `result` for how the conversation went, or `error`). */
  phase: 'running' | 'stopping' | 'over';
  /** The stored conversation once the stream ended with it. */
  result?: AgentConversationWithTranscript;
  /** Why it was refused or broke off, said for a person. */
  error?: string;
}

/** Words for a refusal or failure of an agent conversation. */
export function agentErrorText(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 404 && error.code === 'CHAT_ERR_NOT_FOUND' && /multi_agent/.test(error.message)) {
      return 'Agent conversations are off on this server: the multi_agent module is not loaded.';
    }
    if (error.status === 429) {
      return `Slow down: too many requests.${error.retryAfterSeconds ? ` Try again in ${error.retryAfterSeconds} s.` : ''}`;
    }
    if (error.status >= 400 && error.status < 500) return `Not started: ${error.message}`;
    if (isNetworkError(error)) return `The connection was lost: ${error.message}.`;
    return `The server failed: ${error.message}`;
  }
  return error instanceof Error ? error.message : String(error);
}

export interface AgentRunOptions {
  /** The stream's first event named the conversation. */
  onStarted(conversationId: string): void;
  /** Deals with 401 and a lost connection (the signed-in screen's handlers); true when it did. */
  handled(error: unknown): boolean;
}

/** The running conversation, and how to start and stop one. */
export function useAgentRun(options: AgentRunOptions) {
  const [run, setRun] = useState<AgentRun | undefined>();
  const abort = useRef<AbortController | undefined>(undefined);
  const optionsRef = useRef(options);
  optionsRef.current = options;

  useEffect(() => () => abort.current?.abort(), []);

  const start = useCallback(async (request: StartAgentConversation) => {
    if (abort.current !== undefined) return;
    const controller = new AbortController();
    abort.current = controller;
    const update = (change: (current: AgentRun) => AgentRun) =>
      setRun((current) => (current === undefined ? current : change(current)));
    setRun({ request, conversationId: undefined, transcript: [], phase: 'running' });
    // The conversation counts as started — and gets its address — only once an agent speaks: one that
    // fails between `start` and its first utterance (an `error` event) has nothing stored to open.
    let namedId: string | undefined;
    let started = false;
    const startedSpeaking = () => {
      if (started || namedId === undefined) return;
      started = true;
      const conversationId = namedId;
      update((current) => ({ ...current, conversationId }));
      optionsRef.current.onStarted(conversationId);
    };
    try {
      const outcome = await streamAgentConversation(
        request,
        {
          onStart: (conversationId) => {
            namedId = conversationId;
          },
          onDelta: (delta) => {
            startedSpeaking();
            update((current) => ({ ...current, transcript: withDelta(current.transcript, delta) }));
          },
          onUtterance: (utterance) => {
            startedSpeaking();
            update((current) => ({ ...current, transcript: withUtterance(current.transcript, utterance) }));
          },
        },
        controller.signal,
      );
      if (outcome.kind === 'end') {
        // A conversation whose first speaker failed is stored too (as failed): it gets its address.
        startedSpeaking();
        update((current) => ({
          ...current,
          phase: 'over',
          result: outcome.result,
          transcript: outcome.result.transcript.map((utterance) => ({ ...utterance, done: true })),
        }));
      } else {
        update((current) => ({ ...current, phase: 'over', error: agentErrorText(outcome.error) }));
      }
    } catch (error) {
      if (error instanceof DOMException && error.name === 'AbortError') {
        // Stopped by the user: the server stores the conversation as cancelled, with what was said.
        update((current) => ({ ...current, phase: 'over' }));
        return;
      }
      optionsRef.current.handled(error);
      update((current) => ({ ...current, phase: 'over', error: agentErrorText(error) }));
    } finally {
      abort.current = undefined;
    }
  }, []);

  const stop = useCallback(() => {
    setRun((current) => (current?.phase === 'running' ? { ...current, phase: 'stopping' } : current));
    abort.current?.abort();
  }, []);

  return { run, start, stop };
}
