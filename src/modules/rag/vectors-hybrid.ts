/**
 * Hybrid retrieval: the BM25 ranking and the dense-vector ranking of one owner's chunks merged by
 * reciprocal rank fusion (fusion.ts). RRF needs no calibration between BM25 scores and cosines, which
 * live on unrelated scales; each hit keeps its rank in each list, to explain why it came up.
 */
import { reciprocalRankFusion } from './fusion.ts';

/** A ranked chunk from either retriever. */
export interface RankedChunk {
  chunkId: string;
  docId: string;
  score: number;
}

/** One fused hit: `score` is the RRF score; ranks are 1-based, absent when that retriever missed it. */
export interface HybridHit {
  chunkId: string;
  docId: string;
  score: number;
  bm25Rank?: number;
  denseRank?: number;
}

/** Inputs of `hybridSearch`. */
export interface HybridSearchInput {
  /** BM25 hits, best first. */
  bm25Hits: readonly RankedChunk[];
  /** Dense-vector hits, best first. */
  denseHits: readonly RankedChunk[];
  /** RRF damping constant (config `fusion.k`). Default 60. */
  k?: number;
  /** How many fused hits to keep. Default: all. */
  topK?: number;
  /** Weight of each retriever (config `fusion.weights`); absent ones weigh 1. */
  weights?: { bm25?: number; dense?: number };
}

/** Fuses a BM25 and a dense ranking of the same owner's chunks into one, best first. */
export function hybridSearch(input: HybridSearchInput): HybridHit[] {
  const asItems = (hits: readonly RankedChunk[]) =>
    hits.map((hit) => ({ id: hit.chunkId, docId: hit.docId }));
  const fused = reciprocalRankFusion([asItems(input.bm25Hits), asItems(input.denseHits)], {
    k: input.k ?? 60,
    weights: [input.weights?.bm25 ?? 1, input.weights?.dense ?? 1],
    ...(input.topK === undefined ? {} : { topK: input.topK }),
  });
  return fused.map((entry) => {
    const hit: HybridHit = { chunkId: entry.id, docId: entry.item.docId, score: entry.score };
    if (entry.ranks[0] !== undefined) hit.bm25Rank = entry.ranks[0];
    if (entry.ranks[1] !== undefined) hit.denseRank = entry.ranks[1];
    return hit;
  });
}
