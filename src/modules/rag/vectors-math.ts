/** The two loops exact vector search spends its time in: a dot product, and keeping the k best. */

/** A bounded min-heap of (row, score) keeping the `capacity` best; ties favour the lower row. */
export function createTopHeap(capacity: number) {
  const rows: number[] = [];
  const scores: number[] = [];
  const worse = (left: number, right: number): boolean =>
    scores[left]! < scores[right]! || (scores[left] === scores[right] && rows[left]! > rows[right]!);
  const swap = (left: number, right: number): void => {
    [rows[left], rows[right]] = [rows[right]!, rows[left]!];
    [scores[left], scores[right]] = [scores[right]!, scores[left]!];
  };
  const siftDown = (from: number): void => {
    let parent = from;
    for (;;) {
      const left = parent * 2 + 1;
      const right = left + 1;
      let smallest = parent;
      if (left < rows.length && worse(left, smallest)) smallest = left;
      if (right < rows.length && worse(right, smallest)) smallest = right;
      if (smallest === parent) return;
      swap(parent, smallest);
      parent = smallest;
    }
  };
  return {
    offer(row: number, score: number): void {
      if (rows.length < capacity) {
        rows.push(row);
        scores.push(score);
        let child = rows.length - 1;
        while (child > 0) {
          const parent = (child - 1) >> 1;
          if (!worse(child, parent)) break;
          swap(child, parent);
          child = parent;
        }
      } else if (score > scores[0]! || (score === scores[0] && row < rows[0]!)) {
        rows[0] = row;
        scores[0] = score;
        siftDown(0);
      }
    },
    sorted(): Array<[number, number]> {
      return rows
        .map((row, position) => [row, scores[position]!] as [number, number])
        .sort((left, right) => right[1] - left[1] || left[0] - right[0]);
    },
  };
}

/** Dot product of `query` with the row at `offset`, four lanes at a time. */
export function dot(query: Float32Array, matrix: Float32Array, offset: number, dimension: number): number {
  let sum0 = 0;
  let sum1 = 0;
  let sum2 = 0;
  let sum3 = 0;
  let position = 0;
  for (; position + 3 < dimension; position += 4) {
    sum0 += query[position]! * matrix[offset + position]!;
    sum1 += query[position + 1]! * matrix[offset + position + 1]!;
    sum2 += query[position + 2]! * matrix[offset + position + 2]!;
    sum3 += query[position + 3]! * matrix[offset + position + 3]!;
  }
  for (; position < dimension; position++) sum0 += query[position]! * matrix[offset + position]!;
  return sum0 + sum1 + sum2 + sum3;
}
