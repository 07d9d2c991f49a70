import { describe, expect, it } from 'vitest';
import { createTokenizer } from '../../retrieval/tokenize.ts';
import { queryTerms, type Snippet, snippetOf } from './message-snippet.ts';

const tokenize = createTokenizer();
const marked = ({ snippet, highlights }: Snippet) =>
  highlights.map(({ start, end }) => snippet.slice(start, end));

describe('snippetOf', () => {
  it('marks the words the query matches by stem, whole text when it is short', () => {
    const result = snippetOf(
      'Flights to Lisbon:\nthe flight was late',
      queryTerms(tokenize, 'flights'),
      tokenize,
      200,
    );
    expect(result.snippet).toBe('Flights to Lisbon: the flight was late');
    expect(marked(result)).toEqual(['Flights', 'flight']);
  });

  it('cuts a long message around its densest matches, with ellipses, offsets still right', () => {
    const text = `${'Nothing here at all. '.repeat(20)}The red kite and the red fox. ${'More words after. '.repeat(20)}red`;
    const result = snippetOf(text, queryTerms(tokenize, 'red kite'), tokenize, 80);
    expect(result.snippet.startsWith('…')).toBe(true);
    expect(result.snippet.endsWith('…')).toBe(true);
    expect(result.snippet.length).toBeLessThanOrEqual(82);
    expect(result.snippet).toContain('The red kite and the red fox.');
    expect(marked(result)).toEqual(['red', 'kite', 'red']);
  });

  it('shows the start of a message where no word matches', () => {
    const result = snippetOf('a b c '.repeat(100), new Set(['zebra']), tokenize, 50);
    expect(result.snippet.startsWith('a b c')).toBe(true);
    expect(result.highlights).toEqual([]);
  });
});
