/**
 * Reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009): each list gives an item 1 / (k + rank),
 * ranks from 1, and the sums decide. It needs no score calibration between retrievers, which is why it is
 * the usual way to merge BM25 with dense retrieval.
 */
import { ValidationError } from '../../core/errors.ts';

/** Options of `reciprocalRankFusion`. */
export interface FusionOptions {
  /** Damping constant; 60 is the paper's value. */
  k?: number;
  /** One weight per ranking (default 1 each), to trust one retriever more than another. */
  weights?: readonly number[];
  /** Keep only the best `topK` fused items. */
  topK?: number;
}

/** One fused item: the first object seen with that id, its fused score, and its 1-based rank per list. */
export interface FusedItem<Item> {
  id: string;
  score: number;
  item: Item;
  /** Rank in each input ranking, `undefined` where the item was absent. */
  ranks: Array<number | undefined>;
}

/** Merges several rankings (best first) into one by reciprocal rank fusion; ties keep first-seen order. */
export function reciprocalRankFusion<Item extends { id: string }>(
  rankings: ReadonlyArray<readonly Item[]>,
  options: FusionOptions = {},
): Array<FusedItem<Item>> {
  const k = options.k ?? 60;
  if (!Number.isFinite(k) || k < 0)
    throw new ValidationError('fusion k must be a number ≥ 0', { details: { k } });
  const fused = new Map<string, FusedItem<Item>>();
  rankings.forEach((ranking, list) => {
    const weight = options.weights?.[list] ?? 1;
    ranking.forEach((item, position) => {
      let entry = fused.get(item.id);
      if (entry === undefined) {
        entry = { id: item.id, score: 0, item, ranks: new Array(rankings.length).fill(undefined) };
        fused.set(item.id, entry);
      }
      // A retriever that lists the same id twice counts it once, at its best rank.
      if (entry.ranks[list] !== undefined) return;
      entry.ranks[list] = position + 1;
      entry.score += weight / (k + position + 1);
    });
  });
  // Array.prototype.sort is stable, so equal scores stay in first-seen order.
  const result = [...fused.values()].sort((left, right) => right.score - left.score);
  return options.topK === undefined ? result : result.slice(0, options.topK);
}
