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
