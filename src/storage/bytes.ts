/**
 * A copy of `data` in memory of its own. `data.slice()` is not one when `data` is a Node Buffer:
 * `Buffer.prototype.slice` returns a view of the same memory — for a small Buffer, a slice of the 8 KB
 * pool that later Buffers are cut from. A storage that keeps or queues the caller's bytes copies them
 * with this, so neither the caller's later changes nor the pool's reuse can reach what it stored.
 */
export function copyBytes(data: Uint8Array): Uint8Array {
  return new Uint8Array(data);
}
