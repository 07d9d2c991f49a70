/**
 * The RAG retrieval core on the Cranfield collection (../shared/data/cranfield beside the repository):
 * owners never see each other's documents, and ranking quality stays where bench/rag-eval measured it.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type CranfieldCollection,
  type CranfieldDocument,
  loadCranfield,
} from '../../bench/rag-eval/cranfield.ts';
import { evaluate, indexDocuments, NARSIL_FLOOR } from '../../bench/rag-eval/index.ts';
import { type Bm25Index, type Bm25SearchOptions, createBm25Index } from '../../src/retrieval/bm25.ts';

let collection: CranfieldCollection;

beforeAll(async () => {
  collection = await loadCranfield();
});

describe('Cranfield split between two owners', () => {
  const ownerOf = (documentId: string) => (Number(documentId) % 2 === 0 ? 'even' : 'odd');
  // As the module indexes a document: its title in the title field, the abstract as the text.
  const chunkOf = (document: CranfieldDocument) => ({
    id: document.id,
    docId: document.id,
    title: document.title,
    text: document.body,
  });

  it('returns 0 hits from the other owner for all 225 queries, with and without feedback', () => {
    const index = createBm25Index();
    for (const document of collection.documents)
      index.add(chunkOf(document), { ownerId: ownerOf(document.id) });
    let foreign = 0;
    let own = 0;
    for (const ownerId of ['even', 'odd']) {
      for (const query of collection.queries) {
        for (const feedback of [false, true]) {
          const hits = index.search(query.text, { ownerId, topK: 100, feedback });
          for (const hit of hits) {
            if (ownerOf(hit.docId) === ownerId) own++;
            else foreign++;
          }
        }
      }
    }
    expect(foreign).toBe(0);
    // Not vacuous: every query finds plenty of the asking owner's documents.
    expect(own).toBeGreaterThan(2 * 2 * 225 * 50);
  });

  it("scores an owner's documents exactly as an index holding only that owner's documents would", () => {
    const shared = createBm25Index();
    const odd = createBm25Index();
    for (const document of collection.documents) {
      shared.add(chunkOf(document), { ownerId: ownerOf(document.id) });
      if (ownerOf(document.id) === 'odd') odd.add(chunkOf(document), { ownerId: 'odd' });
    }
    for (const query of collection.queries) {
      for (const feedback of [false, true]) {
        expect(shared.search(query.text, { ownerId: 'odd', topK: 20, feedback })).toEqual(
          odd.search(query.text, { ownerId: 'odd', topK: 20, feedback }),
        );
      }
    }
  });
});

describe('Cranfield ranking quality (one owner, whole index)', () => {
  const rank = (index: Bm25Index, options: Partial<Bm25SearchOptions>) => (query: string) =>
    index.search(query, { ownerId: 'cranfield', topK: 100, ...options }).map((hit) => hit.docId);

  it('beats the narsil floors with plain BM25 (one field, every query word, no feedback)', () => {
    const index = indexDocuments(collection, { k1: 1.2, b: 0.75, fields: false });
    const { result } = evaluate('BM25', collection, 0, rank(index, { dropRequestWords: false }));
    expect(result.ndcgAt10Exponential).toBeGreaterThanOrEqual(NARSIL_FLOOR.ndcgAt10Exponential);
    expect(result.map).toBeGreaterThanOrEqual(NARSIL_FLOOR.map);
    expect(result.precisionAt10).toBeGreaterThanOrEqual(NARSIL_FLOOR.precisionAt10);
    expect(result.mrr).toBeGreaterThanOrEqual(NARSIL_FLOOR.mrr);
    // Where bench/rag-eval puts it (0.375 / 0.362): a drop means the analyser or scoring regressed.
    expect(result.ndcgAt10).toBeGreaterThanOrEqual(0.37);
    expect(result.ndcgAt10Exponential).toBeGreaterThanOrEqual(0.355);
  });

  it("reaches nDCG@10 ≥ 0.40 with the module's default retrieval, on all queries and on the held-out half", () => {
    // Title field, request words dropped, RM3 feedback: what rag does with its default config.
    const index = indexDocuments(collection);
    const { result } = evaluate('default', collection, 0, rank(index, { feedback: true }));
    // bench/rag-eval: 0.421 / 0.407 on all 225, 0.412 / 0.399 on the even (held-out) half.
    expect(result.ndcgAt10).toBeGreaterThanOrEqual(0.415);
    expect(result.ndcgAt10Exponential).toBeGreaterThanOrEqual(0.4);
    expect(result.heldOut.ndcgAt10).toBeGreaterThanOrEqual(0.405);
    expect(result.map).toBeGreaterThanOrEqual(0.35);
    expect(result.precisionAt10).toBeGreaterThanOrEqual(0.27);
    expect(result.mrr).toBeGreaterThanOrEqual(0.55);
  });
});
