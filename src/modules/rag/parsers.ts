/**
 * Turns an uploaded file into the text the chunker reads. Plain text and Markdown are kept as they are; HTML
 * and DOCX become Markdown (so their headings still cut chunks); PDF becomes its text, page after page. The
 * parsers are well-kept pure-JavaScript libraries, loaded on first use so startup stays fast: unpdf (a
 * serverless build of Mozilla's PDF.js), mammoth (DOCX to HTML) and turndown (HTML to Markdown).
 */
import { PlatformError } from '../../core/errors.ts';
import type { ChunkFormat } from './chunker.ts';
import {
  checkPdfStreams,
  checkZipArchive,
  DEFAULT_DECOMPRESSION_LIMITS,
  type DecompressionLimits,
} from './decompression-limits.ts';

/** The kinds of file the parser reads. */
export type DocumentKind = 'text' | 'markdown' | 'html' | 'pdf' | 'docx';

/** What to parse: raw bytes (an upload) or text the caller already has. */
export interface ParseInput {
  bytes?: Uint8Array;
  text?: string;
  /** Its extension decides the kind when no specific media type is given. */
  filename?: string;
  /** A MIME type (parameters such as `; charset=utf-8` are ignored). */
  mediaType?: string;
  /** What a DOCX or PDF may inflate to (`DEFAULT_DECOMPRESSION_LIMITS` when absent). */
  limits?: DecompressionLimits;
}

/** The text of a document, ready for chunking. */
export interface ParsedDocument {
  kind: DocumentKind;
  /** The canonical media type of `kind`. */
  mediaType: string;
  /** Line endings normalised to `\n`; chunk offsets refer to this text. */
  text: string;
  /** How the chunker should read `text`. */
  format: ChunkFormat;
  /** A title found in the file (HTML `<title>`, PDF Info, first heading), if any. */
  title?: string;
}

/** Canonical media type of each kind. */
export const MEDIA_TYPES: Readonly<Record<DocumentKind, string>> = Object.freeze({
  text: 'text/plain',
  markdown: 'text/markdown',
  html: 'text/html',
  pdf: 'application/pdf',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
});

const KIND_BY_MEDIA_TYPE: Readonly<Record<string, DocumentKind>> = {
  'text/plain': 'text',
  'text/csv': 'text',
  'text/markdown': 'markdown',
  'text/x-markdown': 'markdown',
  'text/html': 'html',
  'application/xhtml+xml': 'html',
  'application/pdf': 'pdf',
  'application/x-pdf': 'pdf',
  [MEDIA_TYPES.docx]: 'docx',
};

const KIND_BY_EXTENSION: Readonly<Record<string, DocumentKind>> = {
  txt: 'text',
  text: 'text',
  log: 'text',
  csv: 'text',
  tsv: 'text',
  json: 'text',
  md: 'markdown',
  markdown: 'markdown',
  mdown: 'markdown',
  mkd: 'markdown',
  html: 'html',
  htm: 'html',
  xhtml: 'html',
  pdf: 'pdf',
  docx: 'docx',
};

/** File extensions the parser reads (what `parley ingest` picks up when walking a folder). */
export const SUPPORTED_EXTENSIONS: readonly string[] = Object.freeze(Object.keys(KIND_BY_EXTENSION));

/** The file is of a type the parser does not read. */
export class UnsupportedDocumentError extends PlatformError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('CHAT_ERR_DOCUMENT_UNSUPPORTED_TYPE', message, { details });
    this.name = 'UnsupportedDocumentError';
  }
}

/** The file claims a supported type but cannot be read as it (corrupt, encrypted, no text layer). */
export class UnreadableDocumentError extends PlatformError {
  constructor(message: string, options: { details?: Record<string, unknown>; cause?: unknown } = {}) {
    super('CHAT_ERR_DOCUMENT_UNREADABLE', message, options);
    this.name = 'UnreadableDocumentError';
  }
}

/** The kind of a file from its media type (when specific) or else its extension; `undefined` if neither. */
export function detectKind(
  input: Pick<ParseInput, 'filename' | 'mediaType' | 'bytes'>,
): DocumentKind | undefined {
  const mediaType = input.mediaType?.split(';')[0]?.trim().toLowerCase();
  if (mediaType !== undefined && mediaType in KIND_BY_MEDIA_TYPE) return KIND_BY_MEDIA_TYPE[mediaType];
  const extension = input.filename?.toLowerCase().match(/\.([a-z0-9]+)$/)?.[1];
  if (extension !== undefined && extension in KIND_BY_EXTENSION) return KIND_BY_EXTENSION[extension];
  // Browsers send application/octet-stream for types they don't know; the bytes can still say what they are.
  const bytes = input.bytes;
  if (bytes !== undefined && startsWith(bytes, '%PDF-')) return 'pdf';
  if (extension === undefined && (mediaType === undefined || mediaType === 'application/octet-stream')) {
    return bytes !== undefined && startsWith(bytes, 'PK\u0003\u0004') ? undefined : 'text';
  }
  return undefined;
}

/** Parses a document into text; UnsupportedDocumentError or UnreadableDocumentError when it can't. */
export async function parseDocument(input: ParseInput): Promise<ParsedDocument> {
  const kind = input.text !== undefined && input.bytes === undefined ? textKind(input) : detectKind(input);
  const label = input.filename ?? 'the document';
  if (kind === undefined) {
    throw new UnsupportedDocumentError(
      `${label}: unsupported file type${input.mediaType === undefined ? '' : ` (${input.mediaType})`}; parley reads text, Markdown, HTML, PDF and DOCX`,
      { filename: input.filename, mediaType: input.mediaType },
    );
  }
  const details = { filename: input.filename, kind };
  let parsed: Omit<ParsedDocument, 'kind' | 'mediaType'>;
  try {
    parsed = await parseKind(kind, input);
  } catch (error) {
    if (error instanceof PlatformError) throw error;
    throw new UnreadableDocumentError(
      `${label}: not a readable ${kind.toUpperCase()} file (${error instanceof Error ? error.message : String(error)})`,
      { details, cause: error },
    );
  }
  const text = normaliseText(parsed.text);
  if (text.trim() === '') {
    const hint = kind === 'pdf' ? ' (a scanned PDF has no text layer; run OCR on it first)' : '';
    throw new UnreadableDocumentError(`${label}: no text could be extracted${hint}`, { details });
  }
  const result: ParsedDocument = { kind, mediaType: MEDIA_TYPES[kind], text, format: parsed.format };
  const title = parsed.title?.replace(/\s+/g, ' ').trim();
  if (title !== undefined && title !== '') result.title = title;
  return result;
}

/** Text given as a string is Markdown or plain text (or HTML when it says so); never a binary format. */
function textKind(input: ParseInput): DocumentKind | undefined {
  if (input.filename === undefined && input.mediaType === undefined) return 'markdown';
  const { bytes: _bytes, ...named } = input;
  const kind = detectKind(named);
  if (kind === 'pdf' || kind === 'docx') {
    throw new UnsupportedDocumentError(
      `${input.filename ?? 'the document'}: a ${kind.toUpperCase()} file must be sent as bytes (contentBase64), not as text`,
      { filename: input.filename, mediaType: input.mediaType },
    );
  }
  return kind;
}

async function parseKind(
  kind: DocumentKind,
  input: ParseInput,
): Promise<Omit<ParsedDocument, 'kind' | 'mediaType'>> {
  switch (kind) {
    case 'text':
      return { text: textOf(input), format: 'text' };
    case 'markdown': {
      const text = textOf(input);
      const title = /^ {0,3}# +(.+?)[ #]*$/m.exec(text)?.[1];
      return title === undefined ? { text, format: 'markdown' } : { text, format: 'markdown', title };
    }
    case 'html':
      return htmlToMarkdown(textOf(input));
    case 'pdf': {
      const bytes = bytesOf(input);
      checkPdfStreams(bytes, input.filename ?? 'the document', input.limits ?? DEFAULT_DECOMPRESSION_LIMITS);
      return parsePdf(bytes);
    }
    case 'docx': {
      const bytes = bytesOf(input);
      checkZipArchive(bytes, input.filename ?? 'the document', input.limits ?? DEFAULT_DECOMPRESSION_LIMITS);
      return parseDocx(bytes);
    }
  }
}

function bytesOf(input: ParseInput): Uint8Array {
  return input.bytes ?? new TextEncoder().encode(input.text ?? '');
}

function textOf(input: ParseInput): string {
  if (input.bytes === undefined) return input.text ?? '';
  try {
    // fatal: a Latin-1 or binary file is an error the user can act on, not a page of replacement characters.
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(input.bytes);
  } catch (error) {
    throw new UnreadableDocumentError(`${input.filename ?? 'the document'}: not UTF-8 text`, {
      details: { filename: input.filename },
      cause: error,
    });
  }
}

/** CRLF and CR become LF, NULs go: the stored text is what offsets point into. */
function normaliseText(text: string): string {
  return text.replace(/\r\n?/g, '\n').replaceAll('\u0000', '');
}

function startsWith(bytes: Uint8Array, prefix: string): boolean {
  if (bytes.length < prefix.length) return false;
  for (let index = 0; index < prefix.length; index++) {
    if (bytes[index] !== prefix.charCodeAt(index)) return false;
  }
  return true;
}

/** HTML → Markdown: headings become `#` lines (so they cut chunks), scripts and styles are dropped. */
async function htmlToMarkdown(html: string): Promise<Omit<ParsedDocument, 'kind' | 'mediaType'>> {
  const { default: TurndownService } = await import('turndown');
  let title: string | undefined;
  const service = new TurndownService({
    headingStyle: 'atx',
    codeBlockStyle: 'fenced',
    bulletListMarker: '-',
    hr: '---',
  });
  service.remove(['script', 'style', 'noscript', 'template', 'iframe', 'object', 'embed', 'svg' as 'style']);
  service.addRule('title', {
    filter: 'title',
    replacement: (content) => {
      title ??= content;
      return '';
    },
  });
  // The text is read by people and a tokenizer, not re-rendered: Markdown escapes (`1\.`, `\_`) are noise.
  service.escape = (text) => text;
  const text = service.turndown(html);
  title ??= /^#{1,6} +(.+)$/m.exec(text)?.[1];
  return title === undefined ? { text, format: 'markdown' } : { text, format: 'markdown', title };
}

async function parsePdf(bytes: Uint8Array): Promise<Omit<ParsedDocument, 'kind' | 'mediaType'>> {
  const { extractText, getDocumentProxy, getMeta } = await import('unpdf');
  // PDF.js takes ownership of (detaches) the buffer it is given: hand it a copy. Verbosity 0: its warnings
  // about repairing a broken file would go to the console, not our log.
  const document = await getDocumentProxy(new Uint8Array(bytes), { verbosity: 0 });
  try {
    const { text: pages } = await extractText(document, { mergePages: false });
    const meta = await getMeta(document).catch(() => undefined);
    const infoTitle = (meta?.info as { Title?: unknown } | undefined)?.Title;
    // Pages are separated by a blank line: the chunker treats each page as at least one paragraph.
    const text = pages.map((page) => page.trim()).join('\n\n');
    return typeof infoTitle === 'string' && infoTitle.trim() !== ''
      ? { text, format: 'text', title: infoTitle }
      : { text, format: 'text' };
  } finally {
    await document.loadingTask.destroy();
  }
}

async function parseDocx(bytes: Uint8Array): Promise<Omit<ParsedDocument, 'kind' | 'mediaType'>> {
  const { default: mammoth } = await import('mammoth');
  const { value: html } = await mammoth.convertToHtml({ buffer: Buffer.from(bytes) });
  return htmlToMarkdown(html);
}
