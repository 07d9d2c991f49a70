import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isPlatformError } from '../../core/errors.ts';
import { type Chunk, chunkDocument } from './chunker.ts';

const sentence = (topic: string, number: number): string =>
  `The ${topic} measurement number ${number} was repeated until the readings agreed.`;
const paragraphOf = (topic: string, sentences: number): string =>
  Array.from({ length: sentences }, (_, number) => sentence(topic, number)).join(' ');

function expectExactSlices(text: string, chunks: Chunk[]): void {
  for (const chunk of chunks) expect(text.slice(chunk.start, chunk.end)).toBe(chunk.text);
}

describe('chunkDocument', () => {
  it('never starts an overlapping chunk on whitespace (fast-check counterexample)', () => {
    const body = '~~~Boundary\n\n\n\n# # # \r\n# ';
    const chunks = chunkDocument(
      { docId: 'doc', text: body, format: 'markdown' },
      { chunkSize: 22, chunkOverlap: 6 },
    );
    expectExactSlices(body, chunks);
    for (const chunk of chunks) expect(chunk.text).toBe(chunk.text.trim());
  });

  it('gives offsets that slice the original text to the chunk, for any text and sizes', () => {
    // The alphabet leans on what the chunker reacts to: headings, fences, blank lines, sentence ends,
    // CRLF, non-BMP characters and Unicode spaces.
    const piece = fc.constantFrom(
      '# ',
      '## ',
      '```',
      '~~~',
      '\n',
      '\r\n',
      '\n\n',
      ' ',
      '\u3000',
      '. ',
      '? ',
      'word',
      'Boundary',
      'é',
      '😀',
      '数据',
      'x',
      '\t',
    );
    const text = fc.array(piece, { maxLength: 120 }).map((pieces) => pieces.join(''));
    const sizes = fc.integer({ min: 1, max: 80 }).chain((chunkSize) =>
      fc.record({
        chunkSize: fc.constant(chunkSize),
        chunkOverlap: fc.integer({ min: 0, max: chunkSize - 1 }),
      }),
    );
    fc.assert(
      fc.property(
        text,
        sizes,
        fc.constantFrom('markdown' as const, 'text' as const),
        (body, options, format) => {
          const chunks = chunkDocument({ docId: 'doc', text: body, format }, options);
          expectExactSlices(body, chunks);
          const covered = new Uint8Array(body.length);
          chunks.forEach((chunk, index) => {
            expect(chunk.index).toBe(index);
            expect(chunk.text.length).toBeGreaterThan(0);
            expect(chunk.text.length).toBeLessThanOrEqual(options.chunkSize);
            expect(chunk.text).toBe(chunk.text.trim());
            covered.fill(1, chunk.start, chunk.end);
            const previous = chunks[index - 1];
            if (previous !== undefined) {
              expect(chunk.start).toBeGreaterThan(previous.start);
              expect(chunk.end).toBeGreaterThan(previous.end);
            }
          });
          // Nothing but whitespace is left out of every chunk.
          for (let position = 0; position < body.length; position++) {
            if (covered[position] === 0) expect(body[position]).toMatch(/\s/);
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it('keeps paragraphs whole when they fit, and cuts at sentences only inside an oversize paragraph', () => {
    const first = paragraphOf('pressure', 5);
    const second = paragraphOf('velocity', 5);
    const third = paragraphOf('temperature', 20);
    const text = [first, second, third].join('\n\n');
    const chunks = chunkDocument({ docId: 'doc', text }, { chunkSize: 900, chunkOverlap: 0 });
    expectExactSlices(text, chunks);
    expect(first.length + second.length + 2).toBeLessThan(900);
    expect(chunks[0]?.text).toBe(`${first}\n\n${second}`);
    // The oversize paragraph starts a chunk of its own and is cut between sentences.
    const rest = chunks.slice(1);
    expect(rest[0]?.start).toBe(text.indexOf(third));
    for (const chunk of rest) {
      expect(chunk.text).toMatch(/^The temperature measurement number \d+/);
      expect(chunk.text).toMatch(/agreed\.$/);
    }
    expect(rest.map((chunk) => chunk.text).join(' ')).toBe(third);
  });

  it('repeats the end of a chunk at the start of the next, from a sentence start, within the overlap', () => {
    const text = paragraphOf('drag', 30);
    const chunks = chunkDocument({ docId: 'doc', text }, { chunkSize: 400, chunkOverlap: 120 });
    expect(chunks.length).toBeGreaterThan(3);
    for (let index = 1; index < chunks.length; index++) {
      const previous = chunks[index - 1]!;
      const chunk = chunks[index]!;
      const overlap = previous.end - chunk.start;
      expect(overlap).toBeGreaterThan(0);
      expect(overlap).toBeLessThanOrEqual(120);
      expect(chunk.text).toMatch(/^The drag measurement/);
    }
  });

  it('falls back to a word boundary when no whole sentence fits in the overlap', () => {
    const text = paragraphOf('lift', 12);
    const chunks = chunkDocument({ docId: 'doc', text }, { chunkSize: 200, chunkOverlap: 30 });
    for (let index = 1; index < chunks.length; index++) {
      const chunk = chunks[index]!;
      expect(chunks[index - 1]!.end - chunk.start).toBeGreaterThan(0);
      expect(chunks[index - 1]!.end - chunk.start).toBeLessThanOrEqual(30);
      expect(text[chunk.start - 1]).toBe(' ');
    }
  });

  it('overlaps the pieces of a run-on sentence too', () => {
    const text = 'word '.repeat(500).trim();
    const chunks = chunkDocument({ docId: 'doc', text }, { chunkSize: 100, chunkOverlap: 20 });
    for (let index = 1; index < chunks.length; index++) {
      expect(chunks[index - 1]!.end - chunks[index]!.start).toBeGreaterThan(10);
      expect(chunks[index - 1]!.end - chunks[index]!.start).toBeLessThanOrEqual(20);
    }
  });

  it('splits at Markdown headings and records the heading path of each chunk', () => {
    const text = [
      'Preface text.',
      '# Wings',
      'About wings.',
      '## Flaps',
      'Flaps add lift.',
      '```sh',
      '# not a heading, a shell comment',
      '```',
      '## Slats',
      'Slats delay the stall.',
      '# Engines',
      '### Intakes',
      'Intakes slow the air.',
    ].join('\n');
    const chunks = chunkDocument({ docId: 'doc', text }, { chunkSize: 1000, chunkOverlap: 100 });
    expectExactSlices(text, chunks);
    expect(chunks.map((chunk) => [chunk.heading, chunk.text.split('\n').at(-1)])).toEqual([
      [undefined, 'Preface text.'],
      ['Wings', 'About wings.'],
      ['Wings > Flaps', '```'],
      ['Wings > Slats', 'Slats delay the stall.'],
      // A heading with nothing under it before the next heading joins the next section.
      ['Engines > Intakes', 'Intakes slow the air.'],
    ]);
    expect(chunks[2]?.text).toContain('# not a heading');
    expect(chunks[4]?.text.startsWith('# Engines\n### Intakes')).toBe(true);
    // Overlap never carries text across a heading.
    for (const chunk of chunks.slice(1)) expect(chunk.text).toMatch(/^#/);
  });

  it('treats # as text in plain-text documents', () => {
    const text = '# one\nbody\n# two\nmore';
    const chunks = chunkDocument({ docId: 'doc', text, format: 'text' }, { chunkSize: 100, chunkOverlap: 0 });
    expect(chunks).toHaveLength(1);
    expect(chunks[0]?.heading).toBeUndefined();
    expect(chunks[0]?.text).toBe(text);
  });

  it('gives the same ids to unchanged content, even after an edit earlier in the document', () => {
    const paragraphs = ['alpha', 'beta', 'gamma', 'delta'].map((topic) => paragraphOf(topic, 4));
    const options = { chunkSize: 320, chunkOverlap: 0 };
    const before = chunkDocument({ docId: 'doc', text: paragraphs.join('\n\n') }, options);
    expect(chunkDocument({ docId: 'doc', text: paragraphs.join('\n\n') }, options)).toEqual(before);

    const edited = [`${paragraphs[0]} One more sentence.`, ...paragraphs.slice(1)].join('\n\n');
    const after = chunkDocument({ docId: 'doc', text: edited }, options);
    expect(after).toHaveLength(before.length);
    expect(after[0]?.id).not.toBe(before[0]?.id);
    expect(after.slice(1).map((chunk) => chunk.id)).toEqual(before.slice(1).map((chunk) => chunk.id));
    expect(after[1]?.start).not.toBe(before[1]?.start);

    const otherDocument = chunkDocument({ docId: 'other', text: paragraphs.join('\n\n') }, options);
    expect(otherDocument[0]?.id).not.toBe(before[0]?.id);
  });

  it('gives repeated identical paragraphs distinct ids', () => {
    const text = ['Same words here.', 'Same words here.', 'Same words here.'].join('\n\n');
    const chunks = chunkDocument({ docId: 'doc', text }, { chunkSize: 20, chunkOverlap: 0 });
    expect(chunks).toHaveLength(3);
    expect(new Set(chunks.map((chunk) => chunk.id)).size).toBe(3);
  });

  it('returns no chunks for empty or blank text', () => {
    expect(chunkDocument({ docId: 'doc', text: '' }, { chunkSize: 10, chunkOverlap: 0 })).toEqual([]);
    expect(chunkDocument({ docId: 'doc', text: ' \n\n\t ' }, { chunkSize: 10, chunkOverlap: 0 })).toEqual([]);
  });

  it('rejects sizes that cannot work with a validation error', () => {
    const attempt = (chunkSize: number, chunkOverlap: number) => () =>
      chunkDocument({ docId: 'doc', text: 'text' }, { chunkSize, chunkOverlap });
    for (const [size, overlap] of [
      [0, 0],
      [10, 10],
      [10, -1],
      [1.5, 0],
    ] as const) {
      expect(attempt(size, overlap)).toThrow(
        expect.objectContaining({ code: 'CHAT_ERR_VALIDATION_INVALID' }) as unknown as Error,
      );
    }
    try {
      chunkDocument({ docId: '', text: 'text' });
      expect.unreachable();
    } catch (error) {
      expect(isPlatformError(error, 'CHAT_ERR_VALIDATION_INVALID')).toBe(true);
    }
  });
});
