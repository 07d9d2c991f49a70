/**
 * The search box of the chat list: what the user types is looked for in all their chats (GET /v1/search)
 * as they type, and the hits replace the list — each with its chat's title, who wrote it, when, and the
 * part of the message where the words are, marked. Choosing a hit opens the chat at that message. From
 * the keyboard: Arrow Down goes from the box to the hits, Arrow Up/Down move between them, Escape clears
 * the search and comes back to the box.
 */

import { type KeyboardEvent, type ReactNode, useEffect, useRef, useState } from 'react';
import { api, type SearchHit } from '../api.ts';
import type { FailureHandlers } from './chat-screen.tsx';

export interface ChatSearchProps {
  failures: FailureHandlers;
  /** Opens the chat of a hit at its message. */
  onOpen(hit: SearchHit): void;
  /** Whether a search is shown (the chat list is hidden meanwhile). */
  onActiveChange(active: boolean): void;
}

type Results =
  | { state: 'idle' }
  | { state: 'searching' }
  | { state: 'failed'; message: string }
  | { state: 'found'; query: string; hits: SearchHit[] };

/** How long typing must pause before the search is asked. */
const TYPING_PAUSE_MS = 200;

/** The snippet with its found words in <mark>. */
function markedSnippet(hit: SearchHit): ReactNode[] {
  const parts: ReactNode[] = [];
  let at = 0;
  for (const { start, end } of hit.highlights) {
    if (start < at || end > hit.snippet.length) continue;
    if (start > at) parts.push(hit.snippet.slice(at, start));
    parts.push(<mark key={start}>{hit.snippet.slice(start, end)}</mark>);
    at = end;
  }
  if (at < hit.snippet.length) parts.push(hit.snippet.slice(at));
  return parts;
}

function when(iso: string): string {
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** The search box and its hits. */
export function ChatSearch({ failures, onOpen, onActiveChange }: ChatSearchProps) {
  const [query, setQuery] = useState('');
  const [results, setResults] = useState<Results>({ state: 'idle' });
  const input = useRef<HTMLInputElement>(null);
  const list = useRef<HTMLUListElement>(null);
  const failuresRef = useRef(failures);
  failuresRef.current = failures;
  const active = query.trim() !== '';

  useEffect(() => onActiveChange(active), [active, onActiveChange]);

  useEffect(() => {
    const wanted = query.trim();
    if (wanted === '') {
      setResults({ state: 'idle' });
      return;
    }
    const controller = new AbortController();
    const timer = setTimeout(async () => {
      setResults((current) => (current.state === 'found' ? current : { state: 'searching' }));
      try {
        const hits = await api.searchMessages(wanted, controller.signal);
        setResults({ state: 'found', query: wanted, hits });
      } catch (error) {
        if (controller.signal.aborted) return;
        if (!failuresRef.current.handled(error)) {
          setResults({ state: 'failed', message: error instanceof Error ? error.message : String(error) });
        }
      }
    }, TYPING_PAUSE_MS);
    return () => {
      clearTimeout(timer);
      controller.abort();
    };
  }, [query]);

  const hitButtons = () => [
    ...(list.current?.querySelectorAll<HTMLButtonElement>('button.search-hit') ?? []),
  ];

  function onInputKey(event: KeyboardEvent<HTMLInputElement>) {
    if (event.key === 'Escape' && query !== '') {
      event.preventDefault();
      // Escape empties the box here; the drawer's own Escape must not close it as well.
      event.stopPropagation();
      setQuery('');
    } else if (event.key === 'ArrowDown') {
      const first = hitButtons()[0];
      if (first) {
        event.preventDefault();
        first.focus();
      }
    }
  }

  function onListKey(event: KeyboardEvent<HTMLUListElement>) {
    const buttons = hitButtons();
    const index = buttons.indexOf(document.activeElement as HTMLButtonElement);
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      const next = index + (event.key === 'ArrowDown' ? 1 : -1);
      if (next < 0) input.current?.focus();
      else buttons[Math.min(next, buttons.length - 1)]?.focus();
    } else if (event.key === 'Escape') {
      event.preventDefault();
      event.stopPropagation();
      setQuery('');
      input.current?.focus();
    }
  }

  const status =
    results.state === 'searching'
      ? 'Searching…'
      : results.state === 'found'
        ? results.hits.length === 0
          ? `No messages match “${results.query}”.`
          : `${results.hits.length} ${results.hits.length === 1 ? 'message matches' : 'messages match'} “${results.query}”.`
        : '';

  return (
    <search className="chat-search" aria-label="Your chats">
      <label className="visually-hidden" htmlFor="chat-search-input">
        Search your chats
      </label>
      <input
        ref={input}
        id="chat-search-input"
        type="search"
        placeholder="Search chats"
        autoComplete="off"
        maxLength={500}
        value={query}
        onChange={(event) => setQuery(event.target.value)}
        onKeyDown={onInputKey}
        aria-describedby={active ? 'chat-search-status' : undefined}
      />
      {active ? (
        <>
          <p id="chat-search-status" className="muted list-note" role="status">
            {status}
          </p>
          {results.state === 'failed' ? (
            <p className="form-error" role="alert">
              The search failed: {results.message}
            </p>
          ) : null}
          {results.state === 'found' && results.hits.length > 0 ? (
            // Arrow keys move between the hits' buttons (the list only passes their key presses on).
            <ul ref={list} className="search-hits" aria-label="Search results" onKeyDown={onListKey}>
              {results.hits.map((hit) => (
                <li key={hit.messageId}>
                  <button type="button" className="search-hit" onClick={() => onOpen(hit)}>
                    <span className="search-hit-title">{hit.sessionTitle}</span>
                    <span className="search-hit-meta">
                      {hit.role === 'user' ? 'You' : 'Assistant'} ·{' '}
                      <time dateTime={hit.timestamp}>{when(hit.timestamp)}</time>
                    </span>
                    <span className="search-hit-snippet">{markedSnippet(hit)}</span>
                  </button>
                </li>
              ))}
            </ul>
          ) : null}
        </>
      ) : null}
    </search>
  );
}
