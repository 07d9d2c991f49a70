/**
 * One message. The user's own text is shown as typed (never parsed as HTML); a reply is Markdown made
 * safe by renderMarkdown (sanitized, links and images checked), with highlighted code and a Copy button.
 */

import { type MouseEvent, memo, useMemo, useState, useSyncExternalStore } from 'react';
import type { ChatMessage, Citation } from '../api.ts';
import { highlighterStore, renderMarkdown } from '../markdown.ts';
import { SourceDialog } from './source-dialog.tsx';

export interface MessageViewProps {
  message: ChatMessage;
  /** The reply is still being written. */
  streaming?: boolean;
  /** Offered on a failed reply: ask again. */
  onRetry?: () => void;
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

async function copyCode(event: MouseEvent<HTMLDivElement>): Promise<void> {
  const button = (event.target as HTMLElement).closest('button.copy-code');
  if (!(button instanceof HTMLButtonElement)) return;
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

function Reply({ content }: { content: string }) {
  const highlighterVersion = useSyncExternalStore(highlighterStore.subscribe, highlighterStore.getSnapshot);
  // biome-ignore lint/correctness/useExhaustiveDependencies: re-render once highlighting has loaded
  const html = useMemo(() => renderMarkdown(content), [content, highlighterVersion]);
  return (
    // biome-ignore lint/a11y/useKeyWithClickEvents lint/a11y/noStaticElementInteractions: delegates the Copy buttons' clicks
    <div
      className="markdown"
      onClick={copyCode}
      // biome-ignore lint/security/noDangerouslySetInnerHtml: sanitized by renderMarkdown (DOMPurify)
      dangerouslySetInnerHTML={{ __html: html }}
    />
  );
}

/** The documents a reply drew on: numbered buttons that open the cited passage. */
function Sources({ citations }: { citations: Citation[] }) {
  const [open, setOpen] = useState<Citation | undefined>();
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
              onClick={() => setOpen(citation)}
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
      {open ? (
        <SourceDialog
          source={{ kind: 'passage', docId: open.docId, title: open.title, start: open.start, end: open.end }}
          onClose={() => setOpen(undefined)}
        />
      ) : null}
    </div>
  );
}

/** A message bubble. */
export const MessageView = memo(function MessageView({ message, streaming, onRetry }: MessageViewProps) {
  const mine = message.role === 'user';
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
        <Reply content={message.content} />
      ) : null}
      {!mine && message.metadata.citations && message.metadata.citations.length > 0 ? (
        <Sources citations={message.metadata.citations} />
      ) : null}
      {note || error || (!mine && message.metadata.model) ? (
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
        </div>
      ) : null}
    </article>
  );
});
