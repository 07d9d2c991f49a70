/**
 * Ranking metrics over graded relevance (higher grade = more relevant, 0 or absent = not relevant).
 * nDCG discounts by log2(rank + 1) against the ideal ordering of all judged documents; its gain is either
 * the grade itself (`linear`: trec_eval's ndcg_cut, which pytrec_eval and BEIR report) or 2^grade − 1
 * (`exponential`: Burges et al., and the narsil library's Cranfield suite whose floors we print). P@k
 * divides by k even when fewer results came back; AP divides by all relevant documents, retrieved or not;
 * the reciprocal rank is that of the first relevant result in the list given. These match narsil's suite.
 */

/** Graded judgements of one query: document id → grade (higher is better). */
export type Grades = ReadonlyMap<string, number>;

/** How a grade turns into gain for nDCG. */
export type GainKind = 'linear' | 'exponential';

/** Normalised discounted cumulative gain of the first `k` results. */
export function ndcgAtK(
  ranked: readonly string[],
  grades: Grades,
  k: number,
  gainKind: GainKind = 'linear',
): number {
  const gain = gainKind === 'linear' ? (grade: number) => grade : (grade: number) => 2 ** grade - 1;
  let dcg = 0;
  for (let position = 0; position < Math.min(k, ranked.length); position++) {
    const grade = grades.get(ranked[position]!) ?? 0;
    if (grade > 0) dcg += gain(grade) / Math.log2(position + 2);
  }
  const ideal = [...grades.values()].filter((grade) => grade > 0).sort((left, right) => right - left);
  let idealDcg = 0;
  for (let position = 0; position < Math.min(k, ideal.length); position++) {
    idealDcg += gain(ideal[position]!) / Math.log2(position + 2);
  }
  return idealDcg === 0 ? 0 : dcg / idealDcg;
}

/** Share of relevant documents among the first `k` results (divided by `k`). */
export function precisionAtK(ranked: readonly string[], grades: Grades, k: number): number {
  let relevant = 0;
  for (let position = 0; position < Math.min(k, ranked.length); position++) {
    if ((grades.get(ranked[position]!) ?? 0) > 0) relevant++;
  }
  return relevant / k;
}

/** Average precision of the whole list, over every relevant document of the query. */
export function averagePrecision(ranked: readonly string[], grades: Grades): number {
  let total = 0;
  for (const grade of grades.values()) if (grade > 0) total++;
  if (total === 0) return 0;
  let found = 0;
  let sum = 0;
  ranked.forEach((documentId, position) => {
    if ((grades.get(documentId) ?? 0) > 0) {
      found++;
      sum += found / (position + 1);
    }
  });
  return sum / total;
}

/** 1 / rank of the first relevant result, 0 when the list has none. */
export function reciprocalRank(ranked: readonly string[], grades: Grades): number {
  const position = ranked.findIndex((documentId) => (grades.get(documentId) ?? 0) > 0);
  return position === -1 ? 0 : 1 / (position + 1);
}

/** Arithmetic mean (0 for no values). */
export function mean(values: readonly number[]): number {
  return values.length === 0 ? 0 : values.reduce((sum, value) => sum + value, 0) / values.length;
}

/** The `fraction` quantile (0..1) by nearest rank. */
export function quantile(values: readonly number[], fraction: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((left, right) => left - right);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))]!;
}
