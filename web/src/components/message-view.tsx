/**
 * One message. The user's own text is shown as typed (never parsed as HTML); a reply is Markdown made
 * safe by renderMarkdown (sanitized, links and images checked), with highlighted code and a Copy button.
 */

import { type MouseEvent, memo, useMemo, useRef, useState, useSyncExternalStore } from 'react';
import type { ChatMessage, Citation, ReplyRating, ToolCall } from '../api.ts';
import { highlighterStore, markdownBlocks, renderMarkdown } from '../markdown.ts';
import { SourceDialog } from './source-dialog.tsx';

export interface MessageViewProps {
  message: ChatMessage;
  /** The reply is still being written. */
  streaming?: boolean;
  /** Offered on a failed reply: ask again. */
  onRetry?: () => void;
  /** Offered on the last reply: ask for another reply in its place. */
  onRegenerate?: () => void;
  /** The user's rating of this reply, if any. */
  rating?: ReplyRating | undefined;
  /** Offered on a stored reply: rate it (`null`: withdraw the rating), with what was wrong, if said. */
  onRate?: (rating: ReplyRating | null, comment?: string) => void;
}

/** The longest comment the box takes (text_chat.feedback.max_comment_length's default). */
const MAX_COMMENT_LENGTH = 2000;

/** Asked once a reply was rated down: what was wrong with it, in a few words (optional). */
function WhatWasWrong({ onSend, onClose }: { onSend(comment: string): void; onClose(): void }) {
  const [comment, setComment] = useState('');
  return (
    <form
      className="rate-comment"
      aria-label="What was wrong with this reply"
      onSubmit={(event) => {
        event.preventDefault();
        if (comment.trim() !== '') onSend(comment.trim());
        onClose();
      }}
    >
      <label>
        <span>
          What was wrong with this reply? <span className="muted">(optional)</span>
        </span>
        <textarea
          // biome-ignore lint/a11y/noAutofocus: the box opens because the user asked to say more
          autoFocus
          rows={2}
          maxLength={MAX_COMMENT_LENGTH}
          value={comment}
          onChange={(event) => setComment(event.target.value)}
          onKeyDown={(event) => {
            if (event.key === 'Escape') onClose();
          }}
        />
      </label>
      <div className="rate-comment-actions">
        <button type="submit" disabled={comment.trim() === ''}>
          Send feedback
        </button>
        <button type="button" className="ghost" onClick={onClose}>
          Skip
        </button>
      </div>
    </form>
  );
}

// Drawn, not emoji: a system without an emoji font shows an empty box for 👍 (shapes of Feather's icons).
const THUMB_PATHS: Record<ReplyRating, string> = {
  up: 'M14 9V5a3 3 0 0 0-3-3l-4 9v11h11.28a2 2 0 0 0 2-1.7l1.38-9a2 2 0 0 0-2-2.3zM7 22H4a2 2 0 0 1-2-2v-7a2 2 0 0 1 2-2h3',
  down: 'M10 15v4a3 3 0 0 0 3 3l4-9V2H5.72a2 2 0 0 0-2 1.7l-1.38 9a2 2 0 0 0 2 2.3zm7-13h2.67A2.31 2.31 0 0 1 22 4v7a2.31 2.31 0 0 1-2.33 2H17',
};

function ThumbIcon({ direction }: { direction: ReplyRating }) {
  return (
    <svg width="16" height="16" viewBox="0 0 24 24" aria-hidden="true" focusable="false" className="icon">
      <path d={THUMB_PATHS[direction]} />
    </svg>
  );
}

/** Thumbs up and down under a reply; the pressed one, clicked again, withdraws the rating. */
function RateButtons({
  rating,
  onRate,
}: {
  rating: ReplyRating | undefined;
  onRate(rating: ReplyRating | null): void;
}) {
  const button = (value: ReplyRating, label: string) => (
    <button
      type="button"
      className={`ghost rate rate-${value}`}
      aria-pressed={rating === value}
      aria-label={label}
      title={rating === value ? 'Withdraw your rating' : label}
      onClick={() => onRate(rating === value ? null : value)}
    >
      <ThumbIcon direction={value} />
    </button>
  );
  return (
    <span className="rate-buttons">
      {button('up', 'Good reply')}
      {button('down', 'Bad reply')}
    </span>
  );
}

const FINISH_NOTES: Record<string, string> = {
  cancelled: 'Stopped',
  length: 'Cut short: the reply reached its length limit',
  timeout: 'Stopped: the reply took too long',
  'content-filter': 'Stopped by the provider’s content filter',
};

function errorText(error: { code: string; message: string }): string {
  if (error.code === 'CHAT_ERR_LLM_RATE_LIMITED')
    return `The model provider is busy (rate limited): ${error.message}`;
  if (error.code === 'CHAT_ERR_LLM_TIMEOUT') return `The model did not answer in time: ${error.message}`;
  if (error.code.startsWith('CHAT_ERR_LLM_')) return `The model provider failed: ${error.message}`;
  if (error.code === 'NETWORK') return `The connection was lost: ${error.message}`;
  return error.message;
}

async function copyCode(button: HTMLButtonElement): Promise<void> {
  const code = button.closest('.code-block')?.querySelector('pre code')?.textContent ?? '';
  try {
    await navigator.clipboard.writeText(code);
    button.textContent = 'Copied';
  } catch {
    button.textContent = 'Copy failed';
  }
  setTimeout(() => {
    button.textContent = 'Copy';
  }, 1500);
}

export interface ReplyProps {
  content: string;
  streaming: boolean;
  /** How many sources the reply cites (its `[n]` markers become buttons). */
  sources?: number;
  onCite?(source: number): void;
}

/** One finished block of a streaming reply: its HTML never changes, so React leaves its DOM alone. */
const Block = memo(function Block({ html }: { html: string }) {
  // biome-ignore lint/security/noDangerouslySetInnerHtml: sanitized by renderMarkdown (DOMPurify)
  return <div className="markdown-block" dangerouslySetInnerHTML={{ __html: html }} />;
});

/**
 * A reply being written: rendered block by block, each finished block once (kept in `cache`), the growing
 * last block on every frame. Reference-style links resolve once the reply is complete.
 */
function StreamingBlocks({ content }: { content: string }) {
  const cache = useRef(new Map<string, string>());
  const highlighterVersion = useSyncExternalStore(highlighterStore.subscribe, highlighterStore.getSnapshot);
  const version = useRef(highlighterVersion);
  if (version.current !== highlighterVersion) {
    // Highlighting arrived: finished code blocks are coloured from now on.
    cache.current.clear();
    version.current = highlighterVersion;
  }
  const blocks = markdownBlocks(content);
  return blocks.map((raw, index) => {
    const last = index === blocks.length - 1;
    let html = last ? undefined : cache.current.get(raw);
    if (html === undefined) {
      html = renderMarkdown(raw, { streaming: true });
      if (!last) cache.current.set(raw, html);
    }
    // biome-ignore lint/suspicious/noArrayIndexKey: blocks only grow at the end; an index is their identity
    return <Block key={index} html={html} />;
  });
}

/** A model's text as safe Markdown (also what an agent says in an agent conversation). */
export function Reply({ content, streaming, sources = 0, onCite }: ReplyProps) {
  const highlighterVersion = useSyncExternalStore(highlighterStore.subscribe, highlighterStore.getSnapshot);
  // biome-ignore lint/correctness/useExhaustiveDependencies: re-render once highlighting has loaded
  const html = useMemo(
    () => (streaming ? '' : renderMarkdown(content, { sources })),
    [content, streaming, sources, highlighterVersion],
  );
  // The buttons inside the rendered HTML (Copy, [n]) are handled here, by delegation.
  const onClick = (event: MouseEvent<HTMLDivElement>) => {
    const button = (event.target as HTMLElement).closest('button');
    if (!(button instanceof HTMLButtonElement)) return;
    if (button.classList.contains('copy-code')) void copyCode(button);
    else if (button.classList.contains('cite-ref')) onCite?.(Number(button.dataset.source));
  };
  if (streaming) {
    return (
      // biome-ignore lint/a11y/useKeyWithClickEvents lint/a11y/noStaticElementInteractions: delegates the clicks of the buttons inside
      <div className="markdown" onClick={onClick}>
        <StreamingBlocks content={content} />
      </div>
    );
  }
  return (
    // biome-ignore lint/a11y/useKeyWithClickEvents lint/a11y/noStaticElementInteractions: delegates the clicks of the buttons inside
    <div
      className="markdown"
      onClick={onClick}
      // biome-ignore lint/security/noDangerouslySetInnerHtml: sanitized by renderMarkdown (DOMPurify)
      dangerouslySetInnerHTML={{ __html: html }}
    />
  );
}

/** The documents a reply drew on: numbered buttons that open the cited passage. */
function Sources({ citations, onOpen }: { citations: Citation[]; onOpen(index: number): void }) {
  return (
    <div className="sources">
      <span className="sources-label">Sources</span>
      <ol>
        {citations.map((citation, index) => (
          <li key={`${citation.docId}-${citation.start}-${citation.end}`}>
            <button
              type="button"
              className="source-chip"
              aria-label={`Source ${index + 1}: ${citation.title}${citation.heading ? `, ${citation.heading}` : ''} (opens the passage)`}
              onClick={() => onOpen(index)}
            >
              <span className="source-number" aria-hidden="true">
                {index + 1}
              </span>
              {citation.title}
              {citation.heading ? <span className="muted"> · {citation.heading}</span> : null}
            </button>
          </li>
        ))}
      </ol>
    </div>
  );
}

/** The tools the model called for a reply: one chip each, running or done, what it did in its tooltip. */
function Tools({ calls }: { calls: ToolCall[] }) {
  const describe = (call: ToolCall) =>
    `${call.name}(${JSON.stringify(call.input)})${
      call.running ? ' …' : call.error ? ` failed: ${call.error}` : ` → ${JSON.stringify(call.output)}`
    }`;
  return (
    <ul className="tools" aria-label="Tools used">
      {calls.map((call, index) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: a reply's calls never reorder
        <li key={index} className={`tool-chip${call.error ? ' tool-failed' : ''}`} title={describe(call)}>
          {call.running ? `Using ${call.name}…` : call.error ? `${call.name} failed` : `Used ${call.name}`}
        </li>
      ))}
    </ul>
  );
}

/** A message bubble. */
export const MessageView = memo(function MessageView({
  message,
  streaming,
  onRetry,
  onRegenerate,
  rating,
  onRate,
}: MessageViewProps) {
  const [askingWhy, setAskingWhy] = useState(false);
  const mine = message.role === 'user';
  const citations = mine ? [] : (message.metadata.citations ?? []);
  const toolCalls = mine ? [] : (message.metadata.toolCalls ?? []);
  const [openSource, setOpenSource] = useState<Citation | undefined>();
  const finish = message.metadata.finishReason;
  const note =
    finish === undefined || finish === 'stop' ? undefined : (FINISH_NOTES[finish] ?? `Ended: ${finish}`);
  const error = message.metadata.error;
  return (
    <article
      className={`message ${mine ? 'message-user' : 'message-assistant'}${streaming ? ' streaming' : ''}`}
      aria-label={mine ? 'You said' : 'Reply'}
      data-message-id={message.id}
    >
      {toolCalls.length > 0 ? <Tools calls={toolCalls} /> : null}
      {mine ? (
        <div className="user-text">{message.content}</div>
      ) : message.content === '' && streaming ? (
        <div className="typing" role="status">
          <span className="visually-hidden">The reply is being written…</span>
          <span aria-hidden="true" className="dots">
            <span />
            <span />
            <span />
          </span>
        </div>
      ) : message.content !== '' ? (
        <Reply
          content={message.content}
          streaming={streaming === true}
          sources={citations.length}
          onCite={(source) => setOpenSource(citations[source - 1])}
        />
      ) : null}
      {citations.length > 0 ? (
        <Sources citations={citations} onOpen={(index) => setOpenSource(citations[index])} />
      ) : null}
      {openSource ? (
        <SourceDialog
          source={{
            kind: 'passage',
            docId: openSource.docId,
            title: openSource.title,
            start: openSource.start,
            end: openSource.end,
          }}
          onClose={() => setOpenSource(undefined)}
        />
      ) : null}
      {note || error || onRegenerate || onRate || (!mine && message.metadata.model) ? (
        <div className="message-meta">
          {error ? (
            <span className="message-error" role="alert">
              {errorText(error)}
              {onRetry ? (
                <button type="button" className="ghost retry" onClick={onRetry}>
                  Retry
                </button>
              ) : null}
            </span>
          ) : null}
          {note ? <span className={`finish-note finish-${finish}`}>{note}</span> : null}
          {!mine && message.metadata.model && !error ? (
            <span className="model-name">{message.metadata.model}</span>
          ) : null}
          {onRegenerate ? (
            <button
              type="button"
              className="ghost regenerate"
              onClick={onRegenerate}
              title="Ask for another reply in place of this one"
            >
              Regenerate
            </button>
          ) : null}
          {onRate ? (
            <RateButtons
              rating={rating}
              onRate={(next) => {
                onRate(next);
                // Rated down: the rating is saved at once; saying why is offered, never required.
                setAskingWhy(next === 'down');
              }}
            />
          ) : null}
        </div>
      ) : null}
      {askingWhy && onRate ? (
        <WhatWasWrong onSend={(comment) => onRate('down', comment)} onClose={() => setAskingWhy(false)} />
      ) : null}
    </article>
  );
});
