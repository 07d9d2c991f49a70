/**
 * Agent conversations (the multi_agent module): start one, watch it stream turn by turn, list past ones
 * and open one. `/agents` shows the form and the list; `/agents/<id>` one conversation — streamed live when
 * this window runs it (the run is the signed-in screen's, see use-agent-run.ts), read from the server
 * otherwise, and read again every few seconds while another window or node still runs it.
 */

import { type ReactNode, useCallback, useEffect, useRef, useState } from 'react';
import {
  type AgentConversation,
  type AgentConversationWithTranscript,
  type AgentInfo,
  ApiError,
  api,
  type StartAgentConversation,
} from '../api.ts';
import { type AgentRun, agentErrorText } from '../use-agent-run.ts';
import { AgentConversationForm } from './agent-conversation-form.tsx';
import { AgentConversationView } from './agent-conversation-view.tsx';
import type { FailureHandlers } from './chat-screen.tsx';

export interface AgentsPanelProps {
  failures: FailureHandlers;
  /** Changes after a reconnection: the lists are loaded again. */
  reloadToken: number;
  /** The conversation in the address, if one is open. */
  conversationId: string | undefined;
  onOpen(conversationId: string | undefined): void;
  run: AgentRun | undefined;
  onStart(request: StartAgentConversation): void;
  onStop(): void;
}

/** How often a conversation another window runs is read again. */
const POLL_MS = 2000;

type Loaded<T> =
  | { state: 'loading' }
  | { state: 'off' }
  | { state: 'failed'; message: string }
  | { state: 'loaded'; value: T };

const STATUS_WORDS: Record<AgentConversation['status'], string> = {
  running: 'running',
  done: 'finished',
  failed: 'failed',
  cancelled: 'stopped',
};

/** The agents screen. */
export function AgentsPanel({
  failures,
  reloadToken,
  conversationId,
  onOpen,
  run,
  onStart,
  onStop,
}: AgentsPanelProps) {
  const [agents, setAgents] = useState<Loaded<AgentInfo[]>>({ state: 'loading' });
  const [conversations, setConversations] = useState<AgentConversation[] | undefined>();
  const [listError, setListError] = useState<string | undefined>();
  const failuresRef = useRef(failures);
  failuresRef.current = failures;

  const loadFailure = useCallback((error: unknown): Loaded<never> | undefined => {
    if (error instanceof ApiError && error.status === 404) return { state: 'off' };
    if (failuresRef.current.handled(error)) return undefined;
    return { state: 'failed', message: agentErrorText(error) };
  }, []);

  const loadList = useCallback(async () => {
    try {
      setConversations(await api.listAgentConversations());
      setListError(undefined);
    } catch (error) {
      const failed = loadFailure(error);
      if (failed?.state === 'failed') setListError(failed.message);
    }
  }, [loadFailure]);

  // biome-ignore lint/correctness/useExhaustiveDependencies: reloadToken is the trigger
  useEffect(() => {
    api.listAgents().then(
      (list) => setAgents({ state: 'loaded', value: list }),
      (error: unknown) => {
        const failed = loadFailure(error);
        if (failed) setAgents(failed);
      },
    );
    void loadList();
  }, [loadFailure, loadList, reloadToken]);

  // A run that ends (or is refused) changes the list.
  const runPhase = run?.phase;
  useEffect(() => {
    if (runPhase === 'over') void loadList();
  }, [runPhase, loadList]);

  if (agents.state === 'off') {
    return (
      <AgentsFrame>
        <div className="explainer">
          <h2>Agent conversations are off on this server</h2>
          <p className="muted">
            In an agent conversation, two or more AI agents — each with its own instructions — discuss a topic
            in rounds while you watch. An administrator turns it on by loading the <code>multi_agent</code>{' '}
            module.
          </p>
        </div>
      </AgentsFrame>
    );
  }

  if (conversationId !== undefined) {
    return (
      <AgentsFrame onBack={() => onOpen(undefined)}>
        {run?.conversationId === conversationId ? (
          <LiveConversation
            run={run}
            agents={agents.state === 'loaded' ? agents.value : []}
            onStop={onStop}
          />
        ) : (
          <StoredConversation key={conversationId} conversationId={conversationId} failures={failures} />
        )}
      </AgentsFrame>
    );
  }

  const running = run !== undefined && run.phase !== 'over';
  return (
    <AgentsFrame>
      <p className="muted">
        Agents discuss a topic in rounds, each answering what was said before it, while you watch.
      </p>
      {agents.state === 'loading' ? <p className="muted">Loading agents…</p> : null}
      {agents.state === 'failed' ? (
        <p className="form-error" role="alert">
          The agents could not be loaded: {agents.message}
        </p>
      ) : null}
      {run?.phase === 'over' && run.conversationId === undefined && run.error ? (
        <p className="form-error" role="alert">
          {run.error}
        </p>
      ) : null}
      {running && run.conversationId === undefined ? (
        <div className="agent-progress" role="status">
          <label htmlFor="agent-start-progress">Starting the conversation…</label>
          <progress id="agent-start-progress" />
        </div>
      ) : null}
      {agents.state === 'loaded' ? (
        <AgentConversationForm agents={agents.value} busy={running} onStart={onStart} />
      ) : null}
      <h2 className="section-title">Your agent conversations</h2>
      {listError ? (
        <p className="form-error" role="alert">
          Your agent conversations could not be loaded: {listError}
        </p>
      ) : conversations === undefined ? (
        <p className="muted">Loading conversations…</p>
      ) : null}
      {conversations?.length === 0 ? <p className="muted">None yet: start one above.</p> : null}
      {conversations !== undefined && conversations.length > 0 ? (
        <ul className="item-list" aria-label="Your agent conversations">
          {conversations.map((conversation) => (
            <li key={conversation.id} className="list-item">
              <div className="item-text">
                <button
                  type="button"
                  className="link-button item-title"
                  onClick={() => onOpen(conversation.id)}
                >
                  {conversation.topic}
                </button>
                <span className="muted item-meta">
                  {conversation.participants.map((agent) => agent.name).join(', ')} · {conversation.rounds}{' '}
                  {conversation.rounds === 1 ? 'round' : 'rounds'} · {STATUS_WORDS[conversation.status]} ·{' '}
                  <time dateTime={conversation.createdAt}>
                    {new Date(conversation.createdAt).toLocaleString()}
                  </time>
                </span>
              </div>
            </li>
          ))}
        </ul>
      ) : null}
    </AgentsFrame>
  );
}

/** The screen's heading, with a way back to the list when a conversation is open. */
function AgentsFrame({ children, onBack }: { children: ReactNode; onBack?: () => void }) {
  return (
    <section className="panel" aria-labelledby="agents-title">
      <div className="conversation-header">
        <h1 id="agents-title" className="conversation-title">
          Agent conversations
        </h1>
        {onBack ? (
          <button type="button" className="ghost" onClick={onBack}>
            All agent conversations
          </button>
        ) : null}
      </div>
      <div className="panel-body">{children}</div>
    </section>
  );
}

/** The conversation this window streams. */
function LiveConversation({ run, agents, onStop }: { run: AgentRun; agents: AgentInfo[]; onStop(): void }) {
  const stored = run.result?.conversation;
  const names =
    stored?.participants.map((agent) => agent.name) ??
    run.request.participants.map((participant) =>
      typeof participant === 'string'
        ? (agents.find((agent) => agent.id === participant)?.name ?? participant)
        : participant.name,
    );
  // Over without a stored result: broken off (an error), or stopped here (the server marks it cancelled).
  const status =
    stored?.status ??
    (run.phase === 'over'
      ? run.error
        ? 'failed'
        : 'cancelled'
      : run.phase === 'stopping'
        ? 'stopping'
        : 'running');
  return (
    <AgentConversationView
      topic={stored?.topic ?? run.request.topic}
      names={names}
      rounds={stored?.rounds ?? run.request.rounds}
      status={status}
      error={stored?.error?.message ?? run.error}
      transcript={run.transcript}
      onStop={run.phase === 'over' ? undefined : onStop}
    />
  );
}

/** A conversation read from the server (again every few seconds while it runs elsewhere). */
function StoredConversation({
  conversationId,
  failures,
}: {
  conversationId: string;
  failures: FailureHandlers;
}) {
  const [loaded, setLoaded] = useState<Loaded<AgentConversationWithTranscript>>({ state: 'loading' });
  const failuresRef = useRef(failures);
  failuresRef.current = failures;

  useEffect(() => {
    let cancelled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      try {
        const value = await api.getAgentConversation(conversationId);
        if (cancelled) return;
        setLoaded({ state: 'loaded', value });
        if (value.conversation.status === 'running') timer = setTimeout(load, POLL_MS);
      } catch (error) {
        if (cancelled || failuresRef.current.handled(error)) return;
        setLoaded({
          state: 'failed',
          message:
            error instanceof ApiError && error.status === 404
              ? 'There is no such agent conversation of yours.'
              : agentErrorText(error),
        });
      }
    };
    void load();
    return () => {
      cancelled = true;
      clearTimeout(timer);
    };
  }, [conversationId]);

  if (loaded.state === 'loading') return <p className="muted">Loading the conversation…</p>;
  if (loaded.state !== 'loaded') {
    return (
      <p className="form-error" role="alert">
        {loaded.state === 'failed' ? loaded.message : 'Agent conversations are off on this server.'}
      </p>
    );
  }
  const { conversation, transcript } = loaded.value;
  return (
    <AgentConversationView
      topic={conversation.topic}
      names={conversation.participants.map((agent) => agent.name)}
      rounds={conversation.rounds}
      status={conversation.status}
      error={conversation.error?.message}
      transcript={transcript.map((utterance) => ({ ...utterance, done: true }))}
    />
  );
}
