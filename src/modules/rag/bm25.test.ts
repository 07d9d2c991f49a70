import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Bm25Index, type Bm25IndexJSON, bm25IndexFromJSON, createBm25Index } from './bm25.ts';
import { chunkDocument } from './chunker.ts';

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
    for (const chunk of chunkDocument({ docId: 'manual', text }, { chunkSize: 60, chunkOverlap: 0 })) {
      index.add(chunk, { ownerId: 'alice' });
    }
    const [hit] = index.search('propeller blade pitch', { ownerId: 'alice' });
    expect(hit?.chunkId).toBeDefined();
    expect(index.search('propellers', { ownerId: 'alice', topK: 1 })[0]?.chunkId).toBe(hit?.chunkId);
  });

  it('returns at most topK hits', () => {
    const index = indexOf(AERO);
    expect(index.search('boundary layer flow wing', { ownerId: 'alice', topK: 2 })).toHaveLength(2);
    expect(() => index.search('flow', { ownerId: 'alice', topK: 0 })).toThrow(/topK/);
  });

  it('removes every chunk of a document, and scores as if it had never been added', () => {
    const index = createBm25Index();
    const chunks = chunkDocument(
      { docId: 'long', text: 'Boundary layer suction.\n\nBoundary layer blowing.\n\nWall cooling.' },
      { chunkSize: 30, chunkOverlap: 0 },
    );
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
    it('finds a chunk that shares vocabulary with the best matches but no query term', () => {
      const index = indexOf([
        { id: 'a', text: 'boundary layer transition turbulence spots intermittency' },
        { id: 'b', text: 'boundary layer transition turbulence spots wedge' },
        { id: 'c', text: 'turbulence spots intermittency wedge' },
        { id: 'd', text: 'cylindrical shell buckling load' },
      ]);
      expect(ids(index.search('boundary layer', { ownerId: 'alice' }))).toEqual(['a', 'b']);
      const expanded = ids(index.search('boundary layer', { ownerId: 'alice', feedback: true }));
      expect(expanded.slice(0, 2).sort()).toEqual(['a', 'b']);
      expect(expanded).toContain('c');
      expect(expanded).not.toContain('d');
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
  });

  it('rejects BM25 parameters outside their range', () => {
    expect(() => createBm25Index({ k1: -1 })).toThrow(/k1/);
    expect(() => createBm25Index({ b: 1.5 })).toThrow(/b must/);
  });
});
