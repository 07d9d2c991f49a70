/**
 * Scratch memory for short-lived copies: the Redis driver copies a write's bytes at the call (the caller
 * may reuse its array at once, and a write that creates its key sends the bytes a second time) and drops
 * the copy when the write is done. A fresh Buffer per write cost ~10% of the write rate in bench/storage —
 * new memory for every write, and the collecting of it — while copying into one reused block cost nothing
 * measurable. Copies are carved from a block one after another, and the block starts over from its
 * beginning whenever none of its copies is in use. A copy never released (its write failed: the error may
 * still show the bytes) keeps its block from starting over; the next copy that does not fit then gets a
 * new block, and the old one goes when its last copy does.
 */

/** A copy and how to give its memory back (call `release` once, when nothing reads the copy any more). */
export interface ArenaCopy {
  bytes: Buffer;
  release(): void;
}

interface Block {
  memory: Buffer;
  offset: number;
  live: number;
}

const noop = () => {};

/** An arena of `blockSize` bytes per block; values larger than an eighth of a block get memory of their own. */
export function createCopyArena(blockSize = 256 * 1024): (data: Uint8Array) => ArenaCopy {
  const largest = blockSize / 8;
  let current: Block = { memory: Buffer.allocUnsafeSlow(blockSize), offset: 0, live: 0 };

  return function copy(data) {
    if (data.byteLength > largest) return { bytes: Buffer.from(data), release: noop };
    if (current.offset + data.byteLength > blockSize) {
      if (current.live === 0) current.offset = 0;
      else current = { memory: Buffer.allocUnsafeSlow(blockSize), offset: 0, live: 0 };
    }
    const block = current;
    const bytes = block.memory.subarray(block.offset, block.offset + data.byteLength);
    bytes.set(data);
    block.offset += data.byteLength;
    block.live += 1;
    return {
      bytes,
      release() {
        block.live -= 1;
        if (block.live === 0 && block === current) block.offset = 0;
      },
    };
  };
}
