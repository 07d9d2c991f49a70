/**
 * A conversation as a file to keep: Markdown to read (title, dates, who said what, the sources each reply
 * cited) or JSON to process (the session and every message as stored). Both are written page by page as
 * the messages are read, so a long conversation is never held whole, nor cut at a page size.
 */

import type { Message, Session } from '../core/types.ts';
import type { MessageFeedback } from './chat-gateway.ts';

/** The formats of `GET /v1/sessions/:id/export`. */
export type ExportFormat = 'markdown' | 'json';

/** What an export is written from: the session, and its messages oldest first, a page at a time. */
export interface ExportSource {
  session: Session;
  pages: AsyncIterable<readonly Message[]>;
  /** The user's ratings of replies, oldest first. */
  feedback: readonly MessageFeedback[];
  /** When the export was made (ISO-8601). */
  exportedAt: string;
}

/** The JSON export's `format`, so a program reading a file knows what it holds. */
export const JSON_EXPORT_FORMAT = 'parley-chat-export';

const MEDIA_TYPES: Record<ExportFormat, string> = {
  markdown: 'text/markdown; charset=utf-8',
  json: 'application/json; charset=utf-8',
};
const EXTENSIONS: Record<ExportFormat, string> = { markdown: 'md', json: 'json' };
const SLUG_LENGTH = 60;

interface Citation {
  docId: string;
  title: string;
  start: number;
  end: number;
  heading?: string;
}

/** The media type of a format. */
export function exportMediaType(format: ExportFormat): string {
  return MEDIA_TYPES[format];
}

/** `2026-11-26T10:00:03.120Z` → `2026-11-26 10:00:03 UTC`: readable, and the same wherever it is read. */
function readableTime(iso: unknown): string {
  if (typeof iso !== 'string') return '';
  return iso.replace('T', ' ').replace(/(\.\d+)?Z$/, ' UTC');
}

/** The title as a file-name part: its letters and digits joined by `-`. */
function slugOf(title: string): string {
  const words = title.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  return words.join('-').slice(0, SLUG_LENGTH).replace(/-+$/, '') || 'chat';
}

/**
 * The `content-disposition` header of an export: an attachment named after the chat and its first day,
 * with an ASCII name for old clients and the UTF-8 one (RFC 6266 / 5987) for the rest.
 */
export function exportContentDisposition(session: Session, format: ExportFormat): string {
  const title = String((session.metadata as { title?: unknown }).title ?? '');
  const day = session.createdAt.slice(0, 10);
  const name = `parley-${slugOf(title)}-${day}.${EXTENSIONS[format]}`;
  const ascii = name
    .normalize('NFKD')
    .replace(/[^\x20-\x7e]/g, '')
    .replace(/["\\]/g, '')
    .replace(/-{2,}/g, '-');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

/** Who wrote a message, as the Markdown export names them. */
function speakerOf(message: Message): string {
  switch (message.role) {
    case 'user':
      return 'You';
    case 'assistant':
      return 'Assistant';
    case 'system':
      return 'System';
    default:
      return 'Tool';
  }
}

const THUMBS = { up: '👍', down: '👎' } as const;

/**
 * One message in Markdown: a heading saying who and when, the text, its sources, how it ended and how the
 * user rated it.
 */
function markdownMessage(message: Message, feedback: MessageFeedback | undefined): string {
  const metadata = message.metadata as {
    model?: string;
    finishReason?: string;
    error?: { message?: string };
    citations?: Citation[];
  };
  const heading = [speakerOf(message), readableTime(message.timestamp)];
  if (message.role === 'assistant' && typeof metadata.model === 'string') heading.push(metadata.model);
  const parts = [`## ${heading.filter(Boolean).join(' · ')}`, message.content.trim() || '*(no text)*'];
  const citations = Array.isArray(metadata.citations) ? metadata.citations : [];
  if (citations.length > 0) {
    const sources = citations.map(
      (citation, index) =>
        `${index + 1}. ${citation.title}${citation.heading ? ` — ${citation.heading}` : ''} (document \`${citation.docId}\`, characters ${citation.start}–${citation.end})`,
    );
    parts.push(`**Sources**\n\n${sources.join('\n')}`);
  }
  if (metadata.error !== undefined)
    parts.push(`*The reply failed: ${metadata.error.message ?? 'unknown error'}*`);
  else if (metadata.finishReason === 'cancelled') parts.push('*Stopped before the end.*');
  else if (metadata.finishReason === 'length') parts.push('*Cut short: the reply reached its length limit.*');
  if (feedback !== undefined) {
    const comment = feedback.comment === undefined ? '' : `: ${feedback.comment.replace(/\s+/g, ' ').trim()}`;
    parts.push(`*Rated ${THUMBS[feedback.rating]}${comment}*`);
  }
  return `${parts.join('\n\n')}\n\n`;
}

/** The Markdown export, piece by piece. */
export async function* markdownExport(source: ExportSource): AsyncGenerator<string> {
  const { session, pages, exportedAt } = source;
  const feedback = new Map(source.feedback.map((rating) => [rating.messageId, rating]));
  const metadata = session.metadata as {
    title?: string;
    personaId?: string;
    model?: string;
    updatedAt?: string;
  };
  const facts = [
    `- Chat: \`${session.id}\``,
    `- Started: ${readableTime(session.createdAt)}`,
    ...(metadata.updatedAt ? [`- Last active: ${readableTime(metadata.updatedAt)}`] : []),
    ...(metadata.personaId ? [`- Persona: ${metadata.personaId}`] : []),
    ...(metadata.model ? [`- Model: ${metadata.model}`] : []),
    `- Exported: ${readableTime(exportedAt)}`,
  ];
  yield `# ${metadata.title || 'New chat'}\n\n${facts.join('\n')}\n\n---\n\n`;
  let count = 0;
  for await (const page of pages) {
    if (page.length === 0) continue;
    count += page.length;
    yield page.map((message) => markdownMessage(message, feedback.get(message.id))).join('');
  }
  if (count === 0) yield '*No messages yet.*\n';
}

/** The JSON export, piece by piece: `{ format, version, exportedAt, session, messages: [...], feedback }`. */
export async function* jsonExport(source: ExportSource): AsyncGenerator<string> {
  const { session, pages, exportedAt } = source;
  const head = JSON.stringify({ format: JSON_EXPORT_FORMAT, version: 1, exportedAt, session });
  // The head without its closing brace, then the messages one a line.
  yield `${head.slice(0, -1)},"messages":[`;
  let first = true;
  for await (const page of pages) {
    if (page.length === 0) continue;
    const lines = page.map((message) => JSON.stringify(message)).join(',\n');
    yield `${first ? '\n' : ',\n'}${lines}`;
    first = false;
  }
  yield `\n],"feedback":${JSON.stringify(source.feedback)}}\n`;
}
