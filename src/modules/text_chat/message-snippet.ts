/**
 * The snippet of a search hit: the part of a message where the query's words are thickest, with each
 * matched word's place in the snippet. Words are matched the way the index matched them (the same
 * tokenizer: lowercase, stopwords out, Porter stems), so "flights" in a query marks "flight" and "flying"
 * does not. Places are offsets rather than markers put into the text, so a message that itself contains
 * « or <mark> cannot be misread, and a client renders the marks without parsing anything.
 */

import type { Tokenizer } from '../../retrieval/tokenize.ts';

/** A matched word: `snippet.slice(start, end)`. */
export interface Highlight {
  start: number;
  end: number;
}

/** What a hit shows of its message. */
export interface Snippet {
  /** A part of the message (whitespace as single spaces), with `…` where it was cut. */
  snippet: string;
  /** The matched words in `snippet`, in order. */
  highlights: Highlight[];
}

const WORD = /[\p{L}\p{M}\p{N}]+/gu;
const ELLIPSIS = '…';
/** Text shown before the first match of the window, so the match is read in its sentence. */
const LEAD_IN = 40;

/** The query's terms as the index knows them. */
export function queryTerms(tokenize: Tokenizer, query: string): Set<string> {
  return new Set(tokenize(query));
}

/** Where the words of `text` that are among `terms` are. */
function matchesIn(text: string, terms: ReadonlySet<string>, tokenize: Tokenizer): Highlight[] {
  const found: Highlight[] = [];
  if (terms.size === 0) return found;
  for (const match of text.matchAll(WORD)) {
    if (tokenize(match[0]).some((term) => terms.has(term))) {
      found.push({ start: match.index, end: match.index + match[0].length });
    }
  }
  return found;
}

/** Moves `position` back to the start of the word it is in (never before 0). */
function wordStart(text: string, position: number): number {
  let start = position;
  while (start > 0 && /\S/.test(text[start - 1]!)) start--;
  return start;
}

/**
 * The snippet of `text` of at most about `maxLength` characters around its densest run of matches (the
 * start of the text when nothing matches, as for a hit found only through a stem the text spells otherwise).
 */
export function snippetOf(
  text: string,
  terms: ReadonlySet<string>,
  tokenize: Tokenizer,
  maxLength: number,
): Snippet {
  // One space for each whitespace character, so offsets in `flat` are offsets in `text`.
  const flat = text.replace(/\s/g, ' ');
  const matches = matchesIn(flat, terms, tokenize);
  let windowStart = 0;
  if (flat.length > maxLength && matches.length > 0) {
    // The match that starts the window holding the most matches (the earliest of equals).
    let best = 0;
    let bestCount = 0;
    for (let first = 0; first < matches.length; first++) {
      let count = 0;
      const limit = matches[first]!.start + maxLength - LEAD_IN;
      for (let next = first; next < matches.length && matches[next]!.end <= limit; next++) count++;
      if (count > bestCount) {
        best = first;
        bestCount = count;
      }
    }
    windowStart = wordStart(flat, Math.max(0, matches[best]!.start - LEAD_IN));
    // A window that would end short of the text's end starts no later than needed to fill it.
    windowStart = Math.min(windowStart, Math.max(0, flat.length - maxLength));
  }
  let windowEnd = Math.min(flat.length, windowStart + maxLength);
  // Cut between words where there is a space not too far back.
  if (windowEnd < flat.length) {
    const space = flat.lastIndexOf(' ', windowEnd);
    if (space > windowStart + maxLength / 2) windowEnd = space;
  }
  const lead = windowStart > 0 ? ELLIPSIS : '';
  const body = flat.slice(windowStart, windowEnd).trim();
  const trimmedFront =
    flat.slice(windowStart, windowEnd).length - flat.slice(windowStart, windowEnd).trimStart().length;
  const offset = lead.length - windowStart - trimmedFront;
  const snippet = lead + body + (windowEnd < flat.length ? ELLIPSIS : '');
  const highlights = matches
    .filter(
      (match) =>
        match.start >= windowStart + trimmedFront && match.end <= windowStart + trimmedFront + body.length,
    )
    .map((match) => ({ start: match.start + offset, end: match.end + offset }));
  return { snippet, highlights };
}
