import { describe, expect, it } from 'vitest';
import { reciprocalRankFusion } from './fusion.ts';

const list = (...names: string[]) => names.map((id) => ({ id }));

describe('reciprocalRankFusion', () => {
  it('ranks items found high by several retrievers above items found by one', () => {
    const fused = reciprocalRankFusion([list('a', 'b', 'c'), list('d', 'b', 'e')]);
    // Equal scores (a and d, c and e) keep the order they were first seen in.
    expect(fused.map((item) => item.id)).toEqual(['b', 'a', 'd', 'c', 'e']);
    expect(fused[0]?.score).toBeCloseTo(2 / 62);
    expect(fused[0]?.ranks).toEqual([2, 2]);
    expect(fused.find((item) => item.id === 'e')?.ranks).toEqual([undefined, 3]);
  });

  it('keeps the first object seen for an id and counts an id once per list', () => {
    const first = { id: 'a', source: 'lexical' };
    const fused = reciprocalRankFusion([
      [first, { id: 'a', source: 'again' }],
      [{ id: 'a', source: 'dense' }],
    ]);
    expect(fused).toHaveLength(1);
    expect(fused[0]?.item).toBe(first);
    expect(fused[0]?.score).toBeCloseTo(2 / 61);
  });

  it('lets a weight trust one retriever more, and k flatten or sharpen the ranks', () => {
    const rankings = [list('a', 'b'), list('b', 'a')];
    expect(reciprocalRankFusion(rankings, { weights: [2, 1] })[0]?.id).toBe('a');
    expect(reciprocalRankFusion(rankings, { weights: [1, 2] })[0]?.id).toBe('b');
    // With k = 0 the first rank dominates: 1/1 against 1/2 + 1/3.
    const sharp = reciprocalRankFusion([list('a', 'x'), list('y', 'b'), list('z', 'b')], { k: 0 });
    expect(sharp[0]?.id).toBe('a');
    const flat = reciprocalRankFusion([list('a', 'x'), list('y', 'b'), list('z', 'b')], { k: 60 });
    expect(flat[0]?.id).toBe('b');
  });

  it('cuts to topK and rejects a negative k', () => {
    expect(reciprocalRankFusion([list('a', 'b', 'c')], { topK: 2 }).map((item) => item.id)).toEqual([
      'a',
      'b',
    ]);
    expect(reciprocalRankFusion([])).toEqual([]);
    expect(() => reciprocalRankFusion([list('a')], { k: -1 })).toThrow(/k must/);
  });
});
