/**
 * A copy of `data` in memory of its own. `data.slice()` is not one when `data` is a Node Buffer:
 * `Buffer.prototype.slice` returns a view of the same memory — for a small Buffer, a slice of the 8 KB
 * pool that later Buffers are cut from. A storage that keeps or queues the caller's bytes copies them
 * with this, so neither the caller's later changes nor the pool's reuse can reach what it stored.
 */
export function copyBytes(data: Uint8Array): Uint8Array {
  return new Uint8Array(data);
}

/** `chunks` as one array: the chunk itself when there is one, else one new copy of them all, in order. */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  return Buffer.concat(chunks);
}

/** A copy, in memory of its own, of the bytes of `chunks` (read as one array) from `offset` on. */
export function copyTail(chunks: readonly Uint8Array[], offset: number): Uint8Array {
  let skip = offset;
  let first = 0;
  while (first < chunks.length && skip >= chunks[first]!.length) skip -= chunks[first++]!.length;
  let length = -skip;
  for (let index = first; index < chunks.length; index++) length += chunks[index]!.length;
  const tail = new Uint8Array(Math.max(0, length));
  let at = 0;
  for (let index = first; index < chunks.length; index++) {
    const chunk = index === first ? chunks[index]!.subarray(skip) : chunks[index]!;
    tail.set(chunk, at);
    at += chunk.length;
  }
  return tail;
}
