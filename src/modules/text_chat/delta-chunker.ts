/**
 * Groups a model's text deltas into chunks of at least `chunkSize` characters (the seed's
 * `streaming.chunk_size`): text is buffered until the buffer holds `chunkSize` characters, then emitted
 * whole; `end()` emits what is left. A model token is never split, so a chunk may run a little over the
 * size, and every chunk but the last is at least that long.
 */

export interface DeltaChunker {
  /** Adds model text; emits the buffer once it reaches the chunk size. */
  push(text: string): Promise<void>;
  /** Emits whatever is buffered (nothing when empty). */
  end(): Promise<void>;
}

/** Creates a chunker that hands each chunk to `emit`, in order. `chunkSize` Infinity: one chunk at the end. */
export function createDeltaChunker(chunkSize: number, emit: (text: string) => Promise<void>): DeltaChunker {
  let buffer = '';
  return {
    async push(text) {
      buffer += text;
      if (buffer.length >= chunkSize) {
        const chunk = buffer;
        buffer = '';
        await emit(chunk);
      }
    },
    async end() {
      if (buffer === '') return;
      const chunk = buffer;
      buffer = '';
      await emit(chunk);
    },
  };
}
