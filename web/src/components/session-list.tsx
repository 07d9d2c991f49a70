/**
 * The user's chats, newest first: open one, rename it in place (Enter saves, Escape cancels), delete it
 * after a confirmation. Every action is a real button, so the list works from the keyboard alone.
 */

import { type FormEvent, useEffect, useRef, useState } from 'react';
import type { ChatSession } from '../api.ts';

export interface SessionListProps {
  sessions: ChatSession[] | undefined;
  selectedId: string | undefined;
  onSelect(id: string): void;
  onRename(id: string, title: string): Promise<void>;
  onDelete(id: string): Promise<void>;
}

function RenameForm({
  session,
  onDone,
  onRename,
}: {
  session: ChatSession;
  onDone(): void;
  onRename(id: string, title: string): Promise<void>;
}) {
  const [title, setTitle] = useState(session.metadata.title);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.select(), []);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const next = title.trim();
    if (next !== '' && next !== session.metadata.title) await onRename(session.id, next);
    onDone();
  }

  return (
    <form className="rename-form" onSubmit={submit}>
      <label className="visually-hidden" htmlFor={`rename-${session.id}`}>
        New title for “{session.metadata.title}”
      </label>
      <input
        ref={input}
        id={`rename-${session.id}`}
        value={title}
        maxLength={200}
        onChange={(event) => setTitle(event.target.value)}
        onKeyDown={(event) => {
          if (event.key === 'Escape') {
            event.preventDefault();
            onDone();
          }
        }}
        onBlur={onDone}
      />
    </form>
  );
}

// Drawn, not emoji: a system without an emoji font shows an empty box for 🗑.
function PencilIcon() {
  return (
    <svg width="16" height="16" viewBox="0 0 24 24" aria-hidden="true" focusable="false" className="icon">
      <path d="M4 20h4L19 9l-4-4L4 16v4z" />
      <path d="M13.5 6.5l4 4" />
    </svg>
  );
}

function TrashIcon() {
  return (
    <svg width="16" height="16" viewBox="0 0 24 24" aria-hidden="true" focusable="false" className="icon">
      <path d="M4 7h16" />
      <path d="M10 11v6M14 11v6" />
      <path d="M6 7l1 13h10l1-13" />
      <path d="M9 7V4h6v3" />
    </svg>
  );
}

function relativeDay(iso: string): string {
  const date = new Date(iso);
  const today = new Date();
  if (date.toDateString() === today.toDateString()) {
    return date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  }
  return date.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
}

/** The session list. */
export function SessionList({ sessions, selectedId, onSelect, onRename, onDelete }: SessionListProps) {
  const [renaming, setRenaming] = useState<string | undefined>();
  const [confirming, setConfirming] = useState<string | undefined>();

  if (sessions === undefined) return <p className="muted list-note">Loading chats…</p>;
  if (sessions.length === 0) return <p className="muted list-note">No chats yet.</p>;

  return (
    <ul className="session-list">
      {sessions.map((session) => {
        const title = session.metadata.title || 'New chat';
        const current = session.id === selectedId;
        return (
          <li key={session.id} className={`session-item${current ? ' current' : ''}`}>
            {renaming === session.id ? (
              <RenameForm session={session} onRename={onRename} onDone={() => setRenaming(undefined)} />
            ) : confirming === session.id ? (
              <fieldset className="confirm-delete">
                <legend>Delete “{title}”?</legend>
                <button
                  type="button"
                  className="danger"
                  onClick={() => {
                    setConfirming(undefined);
                    void onDelete(session.id);
                  }}
                >
                  Delete
                </button>
                <button
                  type="button"
                  className="ghost"
                  // biome-ignore lint/a11y/noAutofocus: focus moves to the question just asked
                  autoFocus
                  onClick={() => setConfirming(undefined)}
                >
                  Cancel
                </button>
              </fieldset>
            ) : (
              <>
                <button
                  type="button"
                  className="session-open"
                  aria-current={current ? 'page' : undefined}
                  onClick={() => onSelect(session.id)}
                >
                  <span className="session-title">{title}</span>
                  <span className="session-date">{relativeDay(session.createdAt)}</span>
                </button>
                <span className="session-actions">
                  <button
                    type="button"
                    className="icon-button"
                    aria-label={`Rename “${title}”`}
                    title="Rename"
                    onClick={() => setRenaming(session.id)}
                  >
                    <PencilIcon />
                  </button>
                  <button
                    type="button"
                    className="icon-button"
                    aria-label={`Delete “${title}”`}
                    title="Delete"
                    onClick={() => setConfirming(session.id)}
                  >
                    <TrashIcon />
                  </button>
                </span>
              </>
            )}
          </li>
        );
      })}
    </ul>
  );
}
