import { describe, expect, it } from 'vitest';
import { hybridSearch } from './vectors-hybrid.ts';

const hit = (chunkId: string, score = 1) => ({ chunkId, docId: `doc-${chunkId}`, score });

describe('hybridSearch', () => {
  it('ranks a chunk both retrievers found above chunks only one found, and keeps each rank', () => {
    const fused = hybridSearch({
      bm25Hits: [hit('a', 12), hit('b', 9), hit('c', 3)],
      denseHits: [hit('d', 0.9), hit('c', 0.8), hit('e', 0.7)],
    });
    expect(fused.map((entry) => entry.chunkId)).toEqual(['c', 'a', 'd', 'b', 'e']);
    expect(fused[0]).toEqual({
      chunkId: 'c',
      docId: 'doc-c',
      score: 1 / 63 + 1 / 62,
      bm25Rank: 3,
      denseRank: 2,
    });
    expect(fused[1]).toEqual({ chunkId: 'a', docId: 'doc-a', score: 1 / 61, bm25Rank: 1 });
    expect(fused[2]).toEqual({ chunkId: 'd', docId: 'doc-d', score: 1 / 61, denseRank: 1 });
  });

  it('weights a retriever, cuts to topK, and passes one ranking through when the other is empty', () => {
    const weighted = hybridSearch({
      bm25Hits: [hit('a'), hit('b')],
      denseHits: [hit('c'), hit('d')],
      weights: { dense: 2 },
      topK: 3,
      k: 10,
    });
    expect(weighted.map((entry) => entry.chunkId)).toEqual(['c', 'd', 'a']);
    expect(weighted[0]!.score).toBeCloseTo(2 / 11, 12);
    expect(
      hybridSearch({ bm25Hits: [hit('x'), hit('y')], denseHits: [] }).map((entry) => entry.chunkId),
    ).toEqual(['x', 'y']);
  });
});
