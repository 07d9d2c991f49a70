/**
 * What the assistant remembers about the user (the memory module): each remembered message with when and in
 * which chat it was written, forgotten one by one or all at once (after a confirmation). With the module
 * off the server answers 404, and the screen says memory is off instead of showing an error.
 */

import { useCallback, useEffect, useRef, useState } from 'react';
import { ApiError, api, type ChatSession, MEMORY_PAGE_SIZE, type Memory } from '../api.ts';
import type { FailureHandlers } from './chat-screen.tsx';

export interface MemoriesPanelProps {
  failures: FailureHandlers;
  /** Changes after a reconnection: the list is loaded again. */
  reloadToken: number;
  /** The user's chats, to name the chat a memory comes from. */
  sessions: ChatSession[] | undefined;
  onOpenChat(sessionId: string): void;
}

type Memories =
  | { state: 'loading' }
  | { state: 'off' }
  | { state: 'failed'; message: string }
  | { state: 'loaded'; memories: Memory[]; more: boolean };

function when(iso: string): string {
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** What memory is, for the empty and the off state alike. */
function WhatMemoryIs() {
  return (
    <p className="muted">
      With memory on, parley remembers what you write in a chat (all but the shortest messages), and a reply
      in another of your chats can draw on what bears on it. Only you see your memories, and deleting a chat
      forgets what was said in it. Memory is off unless the server’s <code>memory.enabled</code> setting is
      on.
    </p>
  );
}

/** The memories screen. */
export function MemoriesPanel({ failures, reloadToken, sessions, onOpenChat }: MemoriesPanelProps) {
  const [memories, setMemories] = useState<Memories>({ state: 'loading' });
  const [confirmingAll, setConfirmingAll] = useState(false);
  const [status, setStatus] = useState('');
  const [actionError, setActionError] = useState<string | undefined>();
  const failuresRef = useRef(failures);
  failuresRef.current = failures;

  const load = useCallback(async () => {
    try {
      const page = await api.listMemories();
      setMemories({ state: 'loaded', memories: page, more: page.length === MEMORY_PAGE_SIZE });
    } catch (error) {
      // The route answers 404 exactly when no node runs the memory module.
      if (error instanceof ApiError && error.status === 404) setMemories({ state: 'off' });
      else if (!failuresRef.current.handled(error)) {
        setMemories({ state: 'failed', message: error instanceof Error ? error.message : String(error) });
      }
    }
  }, []);

  // biome-ignore lint/correctness/useExhaustiveDependencies: reloadToken is the trigger
  useEffect(() => {
    void load();
  }, [load, reloadToken]);

  async function loadOlder() {
    if (memories.state !== 'loaded') return;
    const oldest = memories.memories.at(-1);
    try {
      const page = await api.listMemories(oldest?.time);
      const known = new Set(memories.memories.map((memory) => memory.id));
      setMemories({
        state: 'loaded',
        memories: [...memories.memories, ...page.filter((memory) => !known.has(memory.id))],
        more: page.length === MEMORY_PAGE_SIZE,
      });
    } catch (error) {
      if (!failuresRef.current.handled(error))
        setActionError(`Older memories could not be loaded: ${messageOf(error)}`);
    }
  }

  async function forget(memory: Memory) {
    setActionError(undefined);
    try {
      await api.forgetMemory(memory.id);
    } catch (error) {
      // Already forgotten (another tab, a deleted chat): it goes from the list all the same.
      if (!(error instanceof ApiError && error.status === 404)) {
        if (!failuresRef.current.handled(error)) setActionError(`Not forgotten: ${messageOf(error)}`);
        return;
      }
    }
    setMemories((current) =>
      current.state === 'loaded'
        ? { ...current, memories: current.memories.filter((item) => item.id !== memory.id) }
        : current,
    );
    setStatus(`Forgotten: “${excerpt(memory.text)}”.`);
  }

  async function forgetAll() {
    setConfirmingAll(false);
    setActionError(undefined);
    try {
      const { forgotten } = await api.forgetAllMemories();
      setMemories({ state: 'loaded', memories: [], more: false });
      setStatus(`Forgot ${forgotten} ${forgotten === 1 ? 'memory' : 'memories'}.`);
    } catch (error) {
      if (!failuresRef.current.handled(error)) setActionError(`Nothing was forgotten: ${messageOf(error)}`);
    }
  }

  const titleOf = (sessionId: string) =>
    sessions?.find((session) => session.id === sessionId)?.metadata.title || undefined;

  return (
    <section className="panel" aria-labelledby="memories-title">
      <div className="conversation-header">
        <h1 id="memories-title" className="conversation-title">
          Memories
        </h1>
        {memories.state === 'loaded' && memories.memories.length > 0 && !confirmingAll ? (
          <button type="button" className="ghost" onClick={() => setConfirmingAll(true)}>
            Forget all
          </button>
        ) : null}
      </div>
      <div className="panel-body">
        <p className="visually-hidden" role="status">
          {status}
        </p>
        {confirmingAll ? (
          <fieldset className="confirm-box">
            <legend>Forget everything parley remembers about you?</legend>
            <p className="muted">
              Replies in your chats will no longer draw on it. This cannot be undone; your chats stay.
            </p>
            <div className="confirm-actions">
              <button type="button" className="danger" onClick={() => void forgetAll()}>
                Forget all memories
              </button>
              <button
                type="button"
                className="ghost"
                // biome-ignore lint/a11y/noAutofocus: focus moves to the question just asked
                autoFocus
                onClick={() => setConfirmingAll(false)}
              >
                Cancel
              </button>
            </div>
          </fieldset>
        ) : null}
        {actionError ? (
          <p className="form-error" role="alert">
            {actionError}
          </p>
        ) : null}
        {memories.state === 'loading' ? <p className="muted">Loading memories…</p> : null}
        {memories.state === 'off' ? (
          <div className="explainer">
            <h2>Memory is off on this server</h2>
            <p>parley remembers nothing from one of your chats to the next.</p>
            <WhatMemoryIs />
            <p className="muted">
              An administrator turns it on with <code>memory.enabled: true</code> in the configuration (or{' '}
              <code>CHAT_MEMORY__ENABLED=true</code>).
            </p>
          </div>
        ) : null}
        {memories.state === 'failed' ? (
          <p className="form-error" role="alert">
            Your memories could not be loaded: {memories.message}
          </p>
        ) : null}
        {memories.state === 'loaded' && memories.memories.length === 0 ? (
          <div className="explainer">
            <h2>Nothing remembered yet</h2>
            <WhatMemoryIs />
          </div>
        ) : null}
        {memories.state === 'loaded' && memories.memories.length > 0 ? (
          <>
            <p className="muted">
              What you wrote that replies in your other chats can draw on, newest first. Forget what you would
              rather parley did not bring up.
            </p>
            <ul className="item-list" aria-label="What parley remembers">
              {memories.memories.map((memory) => {
                const chat = titleOf(memory.sessionId);
                return (
                  <li key={memory.id} className="list-item memory-item">
                    <div className="item-text">
                      <span className="memory-text">{memory.text}</span>
                      <span className="muted item-meta">
                        <time dateTime={memory.time}>{when(memory.time)}</time> · in{' '}
                        {chat === undefined ? (
                          'a chat'
                        ) : (
                          <button
                            type="button"
                            className="link-button"
                            onClick={() => onOpenChat(memory.sessionId)}
                          >
                            {chat}
                          </button>
                        )}
                      </span>
                    </div>
                    <button
                      type="button"
                      className="ghost"
                      aria-label={`Forget “${excerpt(memory.text)}”`}
                      onClick={() => void forget(memory)}
                    >
                      Forget
                    </button>
                  </li>
                );
              })}
            </ul>
            {memories.more ? (
              <button type="button" className="load-older" onClick={() => void loadOlder()}>
                Show older memories
              </button>
            ) : null}
          </>
        ) : null}
      </div>
    </section>
  );
}

function excerpt(text: string): string {
  return text.length > 60 ? `${text.slice(0, 59).trimEnd()}…` : text;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
