import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Bm25Index,
  type Bm25IndexJSON,
  bm25IndexFromJSON,
  createBm25Index,
  isCurrentBm25Snapshot,
} from './bm25.ts';

const AERO = [
  { id: 'transition', text: 'Transition of the laminar boundary layer to turbulence on swept wings.' },
  { id: 'heat', text: 'Heat transfer in hypersonic flow past a blunt body.' },
  { id: 'flutter', text: 'Flutter of panels at supersonic speed, with aerodynamic damping.' },
  { id: 'separation', text: 'Boundary layer separation behind a shock wave on a flat plate.' },
  { id: 'buckling', text: 'Buckling of thin cylindrical shells under axial compression.' },
];

function indexOf(documents: ReadonlyArray<{ id: string; text: string }>, ownerId = 'alice'): Bm25Index {
  const index = createBm25Index();
  for (const document of documents)
    index.add({ id: document.id, docId: document.id, text: document.text }, { ownerId });
  return index;
}

const ids = (hits: Array<{ docId: string }>) => hits.map((hit) => hit.docId);

describe('createBm25Index', () => {
  it('ranks the document that matches the query best first, across word forms', () => {
    const index = indexOf(AERO);
    // "layers", "transitions" and "turbulent" reach "layer", "transition" and "turbulence" through stemming.
    const hits = index.search('What causes transitions of boundary layers to turbulent flow?', {
      ownerId: 'alice',
    });
    expect(hits[0]?.docId).toBe('transition');
    expect(ids(hits)).toContain('separation');
    expect(ids(hits)).not.toContain('buckling');
    for (let position = 1; position < hits.length; position++) {
      expect(hits[position]!.score).toBeLessThanOrEqual(hits[position - 1]!.score);
    }
  });

  it('weighs a rare term above a common one, and ignores stopwords', () => {
    const index = indexOf([
      { id: 'common-1', text: 'wing wing wing' },
      { id: 'common-2', text: 'wing tail' },
      { id: 'common-3', text: 'wing fuselage' },
      { id: 'rare', text: 'wing flutter' },
    ]);
    expect(index.search('flutter wing', { ownerId: 'alice' })[0]?.docId).toBe('rare');
    expect(index.search('the of and what', { ownerId: 'alice' })).toEqual([]);
    expect(index.search('', { ownerId: 'alice' })).toEqual([]);
  });

  it('indexes the heading with the chunk text', () => {
    const text = '# Propellers\n\nThe blades were tested at several pitches.\n\n# Rotors\n\nHover tests.';
    const index = createBm25Index();
    // The two chunks rag's chunker makes of it: each section's text, under its heading.
    const chunks = [
      {
        id: 'manual-0',
        docId: 'manual',
        heading: 'Propellers',
        text: 'The blades were tested at several pitches.',
      },
      { id: 'manual-1', docId: 'manual', heading: 'Rotors', text: 'Hover tests.' },
    ];
    expect(chunks.map((chunk) => `# ${chunk.heading}\n\n${chunk.text}`).join('\n\n')).toBe(text);
    for (const chunk of chunks) index.add(chunk, { ownerId: 'alice' });
    const [hit] = index.search('propeller blade pitch', { ownerId: 'alice' });
    expect(hit?.chunkId).toBeDefined();
    expect(index.search('propellers', { ownerId: 'alice', topK: 1 })[0]?.chunkId).toBe(hit?.chunkId);
  });

  it("weighs a word of the chunk's title (document title, heading) above the same word in the text", () => {
    const index = createBm25Index();
    index.add(
      { id: 'in-title', docId: 'nozzles', title: 'Nozzle design', text: 'Throat area and expansion ratio.' },
      { ownerId: 'alice' },
    );
    index.add(
      { id: 'in-text', docId: 'rockets', title: 'Rocket stages', text: 'The nozzle of the upper stage.' },
      { ownerId: 'alice' },
    );
    expect(ids(index.search('nozzle', { ownerId: 'alice' }))).toEqual(['nozzles', 'rockets']);
    // Every chunk of a document carries its title: a question naming the document finds its chunks.
    expect(ids(index.search('rocket throat', { ownerId: 'alice' }))).toContain('rockets');
    // Title weight 0: the title field counts for nothing, nor is anything listed twice.
    const untitled = createBm25Index({ titleWeight: 0 });
    untitled.add({ id: 'a', docId: 'a', title: 'Nozzle', text: 'nozzle nozzle' }, { ownerId: 'alice' });
    expect(untitled.search('nozzle', { ownerId: 'alice' })).toHaveLength(1);
    expect(untitled.search('nozzle', { ownerId: 'alice' })[0]!.score).toBeGreaterThan(0);
    expect(() => createBm25Index({ titleWeight: -1 })).toThrow(/title_weight/);
  });

  it('leaves the words of a request out of the query unless nothing else is left', () => {
    const index = createBm25Index();
    index.add(
      { id: 'flutter', docId: 'flutter', text: 'Panel flutter at supersonic speed.' },
      { ownerId: 'alice' },
    );
    index.add(
      { id: 'list', docId: 'list', text: 'Papers available: a list of papers and reports.' },
      { ownerId: 'alice' },
    );
    const question = 'Has anyone written papers on flutter? Any information available?';
    expect(ids(index.search(question, { ownerId: 'alice' }))).toEqual(['flutter']);
    // Taken literally, "papers" and "available" find the list (and rank it first: they are rare words).
    expect(ids(index.search(question, { ownerId: 'alice', dropRequestWords: false }))[0]).toBe('list');
    // A query that is all request keeps its words.
    expect(ids(index.search('papers available', { ownerId: 'alice' }))).toEqual(['list']);
  });

  it('adds earlier turns to a follow-up question, among the chunks that have a word of the question', () => {
    const index = createBm25Index();
    const add = (id: string, docId: string, text: string) =>
      index.add({ id, docId, text }, { ownerId: 'alice' });
    add('a380-weight', 'a380', 'A380 maximum take-off weight: 575 t.');
    add('a380-range', 'a380', 'A380 range: 14,800 km.');
    add('b747-weight', 'b747', 'Boeing 747 take-off weight: 412 t.');
    add('b747-range', 'b747', 'Boeing 747 range: 13,400 km.');
    const earlier = [{ text: 'What is the range of the A380?', weight: 0.5 }];
    // Alone, "its weight" could be either aircraft's.
    expect(ids(index.search('and its weight?', { ownerId: 'alice' })).sort()).toEqual(['a380', 'b747']);
    const hits = index.search('and its weight?', { ownerId: 'alice', context: earlier });
    expect(hits.map((hit) => hit.chunkId)).toEqual(['a380-weight', 'b747-weight']);
    for (const feedback of [false, true]) {
      expect(
        index.search('and its weight?', { ownerId: 'alice', context: earlier, feedback })[0]?.chunkId,
      ).toBe('a380-weight');
    }
    // A follow-up without a word the index knows is answered from the earlier turns.
    expect(index.search('and that?', { ownerId: 'alice', context: earlier })[0]?.chunkId).toBe('a380-range');
    expect(index.search('range', { ownerId: 'alice', context: [] })).toEqual(
      index.search('range', { ownerId: 'alice' }),
    );
    expect(() => index.search('range', { ownerId: 'alice', context: [{ text: 'x', weight: 0 }] })).toThrow(
      /weight/,
    );
  });

  it('returns at most topK hits', () => {
    const index = indexOf(AERO);
    expect(index.search('boundary layer flow wing', { ownerId: 'alice', topK: 2 })).toHaveLength(2);
    expect(() => index.search('flow', { ownerId: 'alice', topK: 0 })).toThrow(/topK/);
  });

  it('removes every chunk of a document, and scores as if it had never been added', () => {
    const index = createBm25Index();
    const chunks = ['Boundary layer suction.', 'Boundary layer blowing.', 'Wall cooling.'].map((text, n) => ({
      id: `long-${n}`,
      docId: 'long',
      text,
    }));
    for (const chunk of chunks) index.add(chunk, { ownerId: 'alice' });
    for (const document of AERO) index.add({ ...document, docId: document.id }, { ownerId: 'alice' });

    expect(index.remove('long')).toBe(chunks.length);
    expect(index.remove('long')).toBe(0);
    expect(index.size('alice')).toBe(AERO.length);
    const after = index.search('boundary layer wall', { ownerId: 'alice' });
    expect(ids(after)).not.toContain('long');
    // Document frequencies and lengths went back too: the scores equal those of a fresh index.
    expect(after).toEqual(indexOf(AERO).search('boundary layer wall', { ownerId: 'alice' }));
  });

  it('removes one chunk of a document, and scores as if it had never been added', () => {
    const index = indexOf(AERO);
    index.add(
      { id: 'extra', docId: 'heat', text: 'Boundary layer heat transfer, again.' },
      { ownerId: 'alice' },
    );
    expect(index.removeChunk('extra', { ownerId: 'bob' })).toBe(false);
    expect(index.removeChunk('extra', { ownerId: 'alice' })).toBe(true);
    expect(index.removeChunk('extra', { ownerId: 'alice' })).toBe(false);
    expect(index.size('alice')).toBe(AERO.length);
    expect(index.search('boundary layer heat', { ownerId: 'alice' })).toEqual(
      indexOf(AERO).search('boundary layer heat', { ownerId: 'alice' }),
    );
    // The rest of its document stays.
    expect(ids(index.search('heat', { ownerId: 'alice' }))).toContain('heat');
  });

  it('keeps scoring right after enough removals to compact its storage', () => {
    const index = createBm25Index();
    const kept = AERO.map((document) => ({ ...document, docId: document.id }));
    for (let number = 0; number < 600; number++) {
      index.add(
        { id: `noise-${number}`, docId: `noise-${number}`, text: `layer noise ${number}` },
        { ownerId: 'alice' },
      );
    }
    for (const document of kept) index.add(document, { ownerId: 'alice' });
    for (let number = 0; number < 600; number++) index.remove(`noise-${number}`);
    expect(index.size('alice')).toBe(AERO.length);
    expect(index.search('boundary layer', { ownerId: 'alice' })).toEqual(
      indexOf(AERO).search('boundary layer', { ownerId: 'alice' }),
    );
    // Removed ids are free again.
    index.add({ id: 'noise-1', docId: 'noise-1', text: 'layer revisited' }, { ownerId: 'alice' });
    expect(ids(index.search('revisited', { ownerId: 'alice' }))).toEqual(['noise-1']);
  });

  it('replaces a chunk added again under the same id', () => {
    const index = createBm25Index();
    index.add({ id: 'chunk', docId: 'doc', text: 'supersonic inlet' }, { ownerId: 'alice' });
    index.add({ id: 'chunk', docId: 'doc', text: 'subsonic diffuser' }, { ownerId: 'alice' });
    expect(index.size()).toBe(1);
    expect(index.search('supersonic', { ownerId: 'alice' })).toEqual([]);
    expect(ids(index.search('diffuser', { ownerId: 'alice' }))).toEqual(['doc']);
  });

  it('filters on metadata equality, lists of accepted values, and list-valued metadata', () => {
    const index = createBm25Index();
    const add = (id: string, metadata: Record<string, unknown>) =>
      index.add({ id, docId: id, text: 'wind tunnel test' }, { ownerId: 'alice', metadata });
    add('report', { kind: 'report', year: 1958, tags: ['wing', 'tunnel'] });
    add('memo', { kind: 'memo', year: 1960, tags: ['engine'] });
    add('note', { kind: 'note', year: null });
    index.add({ id: 'bare', docId: 'bare', text: 'wind tunnel test' }, { ownerId: 'alice' });

    const search = (filter: Record<string, unknown>) =>
      ids(index.search('tunnel', { ownerId: 'alice', filter: filter as never })).sort();
    expect(search({ kind: 'report' })).toEqual(['report']);
    expect(search({ kind: ['report', 'memo'] })).toEqual(['memo', 'report']);
    expect(search({ kind: 'report', year: 1960 })).toEqual([]);
    expect(search({ year: 1960 })).toEqual(['memo']);
    expect(search({ year: null })).toEqual(['note']);
    expect(search({ tags: 'wing' })).toEqual(['report']);
    expect(search({ missing: 'x' })).toEqual([]);
    expect(search({})).toEqual(['bare', 'memo', 'note', 'report']);
    expect(() => search({ kind: { nested: true } })).toThrow(/filter value/);
  });

  describe('owner isolation', () => {
    it("never returns another owner's chunks, however well they match", () => {
      const index = createBm25Index();
      index.add({ id: 'a', docId: 'a', text: 'laminar flow' }, { ownerId: 'alice' });
      index.add({ id: 'b', docId: 'b', text: 'laminar laminar laminar flow transition' }, { ownerId: 'bob' });
      expect(ids(index.search('laminar transition', { ownerId: 'alice' }))).toEqual(['a']);
      expect(ids(index.search('laminar transition', { ownerId: 'bob' }))).toEqual(['b']);
      expect(index.search('laminar', { ownerId: 'carol' })).toEqual([]);
      expect(ids(index.search('laminar', { ownerId: 'alice', feedback: true }))).toEqual(['a']);
    });

    it("keeps each owner's term statistics apart: another owner's documents change no score", () => {
      const alone = indexOf(AERO, 'alice');
      const shared = indexOf(AERO, 'alice');
      for (let number = 0; number < 50; number++) {
        shared.add(
          { id: `bob-${number}`, docId: `bob-${number}`, text: 'boundary layer boundary layer' },
          { ownerId: 'bob' },
        );
      }
      const query = 'boundary layer heat';
      expect(shared.search(query, { ownerId: 'alice' })).toEqual(alone.search(query, { ownerId: 'alice' }));
    });

    it("does not remove another owner's document when the remover is named", () => {
      const index = indexOf(AERO, 'alice');
      expect(index.remove('heat', { ownerId: 'bob' })).toBe(0);
      expect(ids(index.search('heat', { ownerId: 'alice' }))).toEqual(['heat']);
      expect(index.remove('heat', { ownerId: 'alice' })).toBe(1);
    });

    it('refuses to let a second owner add chunks to a document', () => {
      const index = createBm25Index();
      index.add({ id: 'a-1', docId: 'doc', text: 'wing' }, { ownerId: 'alice' });
      expect(() => index.add({ id: 'b-1', docId: 'doc', text: 'wing' }, { ownerId: 'bob' })).toThrow(
        /another owner/,
      );
      expect(index.search('wing', { ownerId: 'bob' })).toEqual([]);
    });

    it('forgets an owner entirely', () => {
      const index = indexOf(AERO, 'alice');
      index.add({ id: 'b', docId: 'b', text: 'wing' }, { ownerId: 'bob' });
      expect(index.removeOwner('alice')).toBe(AERO.length);
      expect(index.search('boundary layer', { ownerId: 'alice' })).toEqual([]);
      expect(index.size()).toBe(1);
      // The documents are free to be added again, by anyone.
      index.add({ id: 'x', docId: 'transition', text: 'wing' }, { ownerId: 'bob' });
    });

    it('holds for random documents, owners and queries', () => {
      const word = fc.constantFrom('wing', 'flow', 'shock', 'layer', 'heat', 'panel', 'the', 'of');
      const document = fc.record({
        owner: fc.constantFrom('alice', 'bob', 'carol'),
        words: fc.array(word, { minLength: 1, maxLength: 8 }),
      });
      fc.assert(
        fc.property(
          fc.array(document, { maxLength: 30 }),
          fc.array(word, { minLength: 1, maxLength: 4 }),
          (documents, query) => {
            const index = createBm25Index();
            const owners = new Map<string, string>();
            documents.forEach((entry, number) => {
              owners.set(`d${number}`, entry.owner);
              index.add(
                { id: `c${number}`, docId: `d${number}`, text: entry.words.join(' ') },
                { ownerId: entry.owner },
              );
            });
            for (const ownerId of ['alice', 'bob', 'carol']) {
              for (const feedback of [false, true]) {
                const hits = index.search(query.join(' '), { ownerId, topK: 50, feedback });
                for (const hit of hits) expect(owners.get(hit.docId)).toBe(ownerId);
              }
            }
          },
        ),
        { numRuns: 200 },
      );
    });
  });

  describe('RM3 feedback', () => {
    it('re-orders the matching chunks by the vocabulary of the best ones, and brings in none without a query term', () => {
      const index = indexOf([
        { id: 'spots', text: 'Transition: boundary layer turbulent spots.' },
        { id: 'wedges', text: 'Transition: boundary layer turbulent wedges.' },
        { id: 'bursts', text: 'Transition: boundary layer turbulent bursts.' },
        { id: 'coolant', text: 'Phase transition of the coolant in a heat pipe loop.' },
        {
          id: 'survey',
          text: 'A survey of measurements in the boundary layer of swept wings, with turbulent spots, wedges and bursts observed near transition at several Reynolds numbers and angles of attack.',
        },
        { id: 'no-term', text: 'Turbulent spots and intermittency in a boundary layer.' },
        { id: 'shells', text: 'Cylindrical shell buckling load.' },
      ]);
      // One pass: the long survey comes last, below the short note on coolant.
      expect(ids(index.search('transition', { ownerId: 'alice' })).slice(3)).toEqual(['coolant', 'survey']);
      // Feedback learns "boundary layer, turbulent spots" from the best three and lifts the survey; the
      // chunk with that vocabulary but not the word asked for stays out.
      const feedback = { documents: 3, terms: 10 };
      const expanded = ids(index.search('transition', { ownerId: 'alice', feedback }));
      expect(expanded.slice(3)).toEqual(['survey', 'coolant']);
      // With no more chunks to re-order than it learns from, it would only reward the ones most like their
      // own average: the first pass stands.
      expect(index.search('transition', { ownerId: 'alice', feedback: { documents: 5 } })).toEqual(
        index.search('transition', { ownerId: 'alice' }),
      );
      expect(() => index.search('layer', { ownerId: 'alice', feedback: { terms: 0 } })).toThrow(/feedback/);
    });
  });

  describe('serialisation', () => {
    it('round-trips through JSON text with identical results, options and owners', () => {
      const index = createBm25Index({ k1: 1.5, b: 0.6 });
      for (const document of AERO) {
        index.add(
          { ...document, docId: document.id },
          { ownerId: 'alice', metadata: { length: document.text.length } },
        );
      }
      index.add(
        { id: 'b', docId: 'b', text: 'boundary layer' },
        { ownerId: 'bob', metadata: { kind: 'memo' } },
      );
      index.remove('heat');

      const json = JSON.parse(JSON.stringify(index)) as Bm25IndexJSON;
      const restored = bm25IndexFromJSON(json);
      expect(restored.options).toEqual(index.options);
      expect(restored.size()).toBe(index.size());
      for (const query of ['boundary layer', 'heat', 'supersonic flutter damping', 'shells']) {
        for (const ownerId of ['alice', 'bob']) {
          for (const feedback of [false, true]) {
            expect(restored.search(query, { ownerId, feedback })).toEqual(
              index.search(query, { ownerId, feedback }),
            );
          }
        }
      }
      expect(ids(restored.search('boundary', { ownerId: 'bob', filter: { kind: 'memo' } }))).toEqual(['b']);
      // The restored index stays fully usable: removal and ownership rules carry over.
      expect(restored.remove('transition')).toBe(1);
      expect(() => restored.add({ id: 'x', docId: 'b', text: 'x' }, { ownerId: 'alice' })).toThrow(
        /another owner/,
      );
      expect(JSON.parse(JSON.stringify(bm25IndexFromJSON(JSON.parse(JSON.stringify(restored)))))).toEqual(
        JSON.parse(JSON.stringify(restored)),
      );
    });

    it('rejects data that is not a serialised index', () => {
      expect(() => bm25IndexFromJSON({ format: 'other' } as never)).toThrow(/parley BM25 index/);
    });

    it('tells a snapshot of the current format and settings from one to rebuild', () => {
      const json = createBm25Index({ k1: 1.5 }).toJSON();
      expect(isCurrentBm25Snapshot(json, { k1: 1.5 })).toBe(true);
      expect(isCurrentBm25Snapshot(json, { k1: 1.5, titleWeight: 1 })).toBe(false);
      expect(isCurrentBm25Snapshot(json, {})).toBe(false);
      // Version 1 had one field (heading and text together): its owners are rebuilt from their documents.
      expect(isCurrentBm25Snapshot({ ...json, version: 1 } as never, { k1: 1.5 })).toBe(false);
      expect(isCurrentBm25Snapshot(undefined, {})).toBe(false);
    });
  });

  it('rejects BM25 parameters outside their range', () => {
    expect(() => createBm25Index({ k1: -1 })).toThrow(/k1/);
    expect(() => createBm25Index({ b: 1.5 })).toThrow(/b must/);
  });
});
