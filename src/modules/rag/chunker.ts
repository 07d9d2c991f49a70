/**
 * Structure-aware chunking for retrieval. A document is cut at Markdown headings first (each chunk keeps its
 * heading path), then at paragraphs, and only a paragraph larger than a chunk is cut at sentences (then at
 * words, then hard). Sizes are in characters (UTF-16 code units, the unit of `String.length`): they are
 * cheap, model-free and predictable, and one token is about four characters of English text.
 *
 * Every chunk is an exact slice of the original text: `text.slice(chunk.start, chunk.end) === chunk.text`,
 * so a citation can point back into the stored document without re-chunking it.
 */
import { createHash } from 'node:crypto';
import { ValidationError } from '../../core/errors.ts';

/** How the text is structured: Markdown headings are honoured only for `markdown`. */
export type ChunkFormat = 'markdown' | 'text';

/** A document to cut into chunks. */
export interface ChunkInput {
  docId: string;
  text: string;
  /** Defaults to `markdown`: plain text has no `#` headings, so it chunks the same either way. */
  format?: ChunkFormat;
}

/** Chunk size and overlap, both in characters. */
export interface ChunkingOptions {
  /** Largest chunk, in characters. */
  chunkSize: number;
  /** Characters of the previous chunk repeated at the start of the next one (within one section). */
  chunkOverlap: number;
}

/** One piece of a document, with offsets into the original text for citations. */
export interface Chunk {
  /** Stable: the same content of the same document under the same heading always gets the same id. */
  id: string;
  docId: string;
  /** Position of the chunk in the document, from 0. */
  index: number;
  text: string;
  /** Offset of the first character in the original text. */
  start: number;
  /** Offset after the last character: `original.slice(start, end) === text`. */
  end: number;
  /** The Markdown heading path, outermost first, joined with ' > ' (absent before the first heading). */
  heading?: string;
}

/** The defaults behind the `chunk_size` and `chunk_overlap` config keys. */
export const DEFAULT_CHUNKING: Readonly<ChunkingOptions> = Object.freeze({
  chunkSize: 1000,
  chunkOverlap: 150,
});

interface Range {
  start: number;
  end: number;
}

/** A unit the packer places whole: a paragraph that fits in a chunk, or a piece of one that does not. */
interface Unit extends Range {
  /** The first piece of an oversize paragraph starts a chunk of its own. */
  breakBefore: boolean;
}

interface Section {
  headingPath: string[];
  paragraphs: Range[];
  /** True while the section holds nothing but its heading line. */
  headingOnly: boolean;
}

const ATX_HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const FENCE = /^ {0,3}(`{3,}|~{3,})/;
const NOT_WHITESPACE = /\S/;
const sentenceSegmenter = new Intl.Segmenter(undefined, { granularity: 'sentence' });

/** Cuts a document into chunks of at most `chunkSize` characters that follow its structure. */
export function chunkDocument(input: ChunkInput, options: ChunkingOptions = DEFAULT_CHUNKING): Chunk[] {
  validate(input, options);
  const { docId, text } = input;
  const sections = splitSections(text, input.format ?? 'markdown');
  const chunks: Chunk[] = [];
  const seen = new Map<string, number>();
  for (const section of sections) {
    const heading = section.headingPath.length > 0 ? section.headingPath.join(' > ') : undefined;
    for (const range of packSection(text, section.paragraphs, options)) {
      const chunkText = text.slice(range.start, range.end);
      // Identical chunks of one document (a repeated boilerplate paragraph) are told apart by their ordinal.
      const key = `${heading ?? ''}\u0000${chunkText}`;
      const ordinal = seen.get(key) ?? 0;
      seen.set(key, ordinal + 1);
      const chunk: Chunk = {
        id: chunkId(docId, key, ordinal),
        docId,
        index: chunks.length,
        text: chunkText,
        start: range.start,
        end: range.end,
      };
      if (heading !== undefined) chunk.heading = heading;
      chunks.push(chunk);
    }
  }
  return chunks;
}

function validate(input: ChunkInput, options: ChunkingOptions): void {
  if (typeof input?.docId !== 'string' || input.docId === '') {
    throw new ValidationError('chunkDocument needs a non-empty docId');
  }
  if (typeof input.text !== 'string') throw new ValidationError('chunkDocument needs the document text');
  const { chunkSize, chunkOverlap } = options;
  if (!Number.isInteger(chunkSize) || chunkSize < 1) {
    throw new ValidationError('chunk_size must be a positive integer', { details: { chunkSize } });
  }
  if (!Number.isInteger(chunkOverlap) || chunkOverlap < 0 || chunkOverlap >= chunkSize) {
    throw new ValidationError('chunk_overlap must be an integer from 0 to chunk_size - 1', {
      details: { chunkSize, chunkOverlap },
    });
  }
}

// Ids hash the content rather than the offsets, so an edit early in a document does not change the ids of
// the chunks after it, and whoever embeds chunks can skip those it already has.
function chunkId(docId: string, key: string, ordinal: number): string {
  return createHash('sha256').update(`${docId}\u0000${ordinal}\u0000${key}`).digest('hex').slice(0, 24);
}

/** Splits the text into heading sections, each a list of trimmed paragraph ranges. */
function splitSections(text: string, format: ChunkFormat): Section[] {
  const sections: Section[] = [];
  const headingStack: Array<{ level: number; title: string }> = [];
  let current: Section = { headingPath: [], paragraphs: [], headingOnly: false };
  let paragraph: Range | undefined;
  let fence: string | undefined;

  const closeParagraph = (): void => {
    if (paragraph !== undefined) current.paragraphs.push(paragraph);
    paragraph = undefined;
  };

  let lineStart = 0;
  while (lineStart <= text.length) {
    let lineEnd = text.indexOf('\n', lineStart);
    const next = lineEnd === -1 ? text.length + 1 : lineEnd + 1;
    if (lineEnd === -1) lineEnd = text.length;
    const line = text.slice(lineStart, lineEnd);
    const contentStart = line.search(NOT_WHITESPACE);

    if (format === 'markdown') {
      const fenceMatch = FENCE.exec(line);
      if (fenceMatch !== null) {
        const marker = fenceMatch[1] ?? '';
        if (fence === undefined) fence = marker;
        else if (marker[0] === fence[0] && marker.length >= fence.length) fence = undefined;
      } else if (fence === undefined) {
        const headingMatch = ATX_HEADING.exec(line);
        if (headingMatch !== null) {
          closeParagraph();
          pushSection(sections, current);
          const level = headingMatch[1]?.length ?? 1;
          const title = (headingMatch[2] ?? '').trim();
          while ((headingStack.at(-1)?.level ?? 0) >= level) headingStack.pop();
          if (title !== '') headingStack.push({ level, title });
          const trimmedEnd = lineStart + line.trimEnd().length;
          current = {
            headingPath: headingStack.map((entry) => entry.title),
            paragraphs: [{ start: lineStart + Math.max(contentStart, 0), end: trimmedEnd }],
            headingOnly: true,
          };
          lineStart = next;
          continue;
        }
      }
    }

    // Inside a code fence blank lines do not end the paragraph: a code block stays one unit when it fits.
    if (contentStart === -1 && fence === undefined) {
      closeParagraph();
    } else if (contentStart !== -1) {
      const end = lineStart + line.trimEnd().length;
      if (paragraph === undefined) paragraph = { start: lineStart + contentStart, end };
      else paragraph.end = end;
      current.headingOnly = false;
    }
    lineStart = next;
  }
  closeParagraph();
  pushSection(sections, current);
  return sections;
}

/** Adds a section, folding a heading-only section into the next one so a lone heading is not a chunk. */
function pushSection(sections: Section[], section: Section): void {
  const previous = sections.at(-1);
  if (previous?.headingOnly === true) {
    sections.pop();
    section.paragraphs.unshift(...previous.paragraphs);
  }
  if (section.paragraphs.length > 0) sections.push(section);
}

/** Places the paragraphs of one section into chunks, with overlap between consecutive chunks. */
function packSection(text: string, paragraphs: Range[], options: ChunkingOptions): Range[] {
  const { chunkSize } = options;
  const units: Unit[] = [];
  for (const paragraph of paragraphs) {
    if (paragraph.end - paragraph.start <= chunkSize) {
      units.push({ ...paragraph, breakBefore: false });
      continue;
    }
    const pieces = splitOversize(text, paragraph, options);
    pieces.forEach((piece, position) => {
      units.push({ ...piece, breakBefore: position === 0 });
    });
  }

  const ranges: Range[] = [];
  let index = 0;
  let overlapStart: number | undefined;
  while (index < units.length) {
    const first = units[index]!;
    const start = overlapStart ?? first.start;
    let end = first.end;
    index++;
    while (index < units.length) {
      const unit = units[index]!;
      if (unit.breakBefore || unit.end - start > chunkSize) break;
      end = unit.end;
      index++;
    }
    ranges.push({ start, end });
    const nextUnit = units[index];
    overlapStart = nextUnit === undefined ? undefined : overlapFor(text, { start, end }, nextUnit, options);
  }
  return ranges;
}

/**
 * Where the next chunk starts so that it repeats the end of the previous one: the earliest sentence start
 * within the overlap budget, else the earliest word start, else no overlap. The next chunk must still hold
 * its first unit within `chunkSize`.
 */
function overlapFor(
  text: string,
  previous: Range,
  nextUnit: Range,
  options: ChunkingOptions,
): number | undefined {
  if (options.chunkOverlap === 0) return undefined;
  const earliest = Math.max(
    previous.end - options.chunkOverlap,
    nextUnit.end - options.chunkSize,
    previous.start + 1,
  );
  if (earliest >= previous.end) return undefined;

  const slice = text.slice(previous.start, previous.end);
  for (const segment of sentenceSegmenter.segment(slice)) {
    const position = previous.start + segment.index + leadingWhitespace(segment.segment);
    // A whitespace-only segment yields the position after it, which may still be whitespace.
    if (position >= earliest && position < previous.end && !isWhitespace(text.charCodeAt(position))) {
      return position;
    }
  }
  for (let position = earliest; position < previous.end; position++) {
    if (isWhitespace(text.charCodeAt(position - 1)) && !isWhitespace(text.charCodeAt(position)))
      return position;
  }
  return undefined;
}

/** Cuts a paragraph larger than a chunk into sentences, long sentences into words, long words hard. */
function splitOversize(text: string, paragraph: Range, options: ChunkingOptions): Range[] {
  const { chunkSize, chunkOverlap } = options;
  // Pieces cut from a run-on sentence leave room for the overlap, or consecutive chunks would share nothing.
  const wordPieceSize = Math.max(1, chunkSize - chunkOverlap);
  const pieces: Range[] = [];
  const slice = text.slice(paragraph.start, paragraph.end);
  for (const segment of sentenceSegmenter.segment(slice)) {
    const start = paragraph.start + segment.index + leadingWhitespace(segment.segment);
    const end = paragraph.start + segment.index + segment.segment.trimEnd().length;
    if (end <= start) continue;
    if (end - start <= chunkSize) pieces.push({ start, end });
    else pieces.push(...splitWords(text, { start, end }, wordPieceSize));
  }
  return pieces;
}

function splitWords(text: string, range: Range, chunkSize: number): Range[] {
  const pieces: Range[] = [];
  let start = range.start;
  while (start < range.end) {
    if (range.end - start <= chunkSize) {
      pieces.push({ start, end: range.end });
      break;
    }
    // The last whitespace that leaves the piece within the limit; none means one word longer than a chunk.
    let cut = start + chunkSize;
    while (cut > start && !isWhitespace(text.charCodeAt(cut))) cut--;
    let end = cut;
    while (end > start && isWhitespace(text.charCodeAt(end - 1))) end--;
    if (end <= start) {
      end = start + chunkSize;
      // Never split a surrogate pair: the half characters would not survive a round trip through UTF-8.
      if (isLowSurrogate(text.charCodeAt(end)) && end - 1 > start) end--;
    }
    pieces.push({ start, end });
    start = end;
    while (start < range.end && isWhitespace(text.charCodeAt(start))) start++;
  }
  return pieces;
}

function leadingWhitespace(value: string): number {
  const first = value.search(NOT_WHITESPACE);
  return first === -1 ? value.length : first;
}

function isWhitespace(code: number): boolean {
  return (
    code === 32 ||
    (code >= 9 && code <= 13) ||
    code === 0xa0 ||
    code === 0x1680 ||
    (code >= 0x2000 && code <= 0x200a) ||
    code === 0x2028 ||
    code === 0x2029 ||
    code === 0x202f ||
    code === 0x205f ||
    code === 0x3000 ||
    code === 0xfeff
  );
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}
