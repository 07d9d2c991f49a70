/**
 * Groups a model's text deltas into chunks (the seed's `streaming.chunk_size`). The first text of a reply
 * goes out at once, so the reader sees the reply start as soon as the model does. After that, text is
 * buffered until the buffer holds `chunkSize` characters or its oldest text has waited `maxDelayMs`
 * (a slow model still shows progress), then emitted whole; `end()` emits what is left. A model token is
 * never split, so a chunk may run a little over the size.
 */

export interface DeltaChunker {
  /**
   * Adds model text; emits it when it is the first, or once the buffer reaches the chunk size. Returns the
   * chunks' progress when it emitted (wait for it before pushing more), nothing when the text was only kept.
   */
  push(text: string): Promise<void> | undefined;
  /** Emits whatever is buffered (nothing when empty), after every earlier chunk. */
  end(): Promise<void>;
}

export interface DeltaChunkerOptions {
  /** Characters per chunk; Infinity: one chunk at the end (streaming off: no first chunk, no timer). */
  chunkSize: number;
  /** Longest time text waits in the buffer; 0: only the size (and the first text) flush. */
  maxDelayMs: number;
}

const NOTHING_EMITTED: Promise<void> = Promise.resolve();

/** Creates a chunker that hands each chunk to `emit`, one at a time and in order. */
export function createDeltaChunker(
  options: DeltaChunkerOptions,
  emit: (text: string) => Promise<void>,
): DeltaChunker {
  const { chunkSize, maxDelayMs } = options;
  const streaming = Number.isFinite(chunkSize);
  let buffer = '';
  let started = false;
  let timer: NodeJS.Timeout | undefined;
  // Chunks leave one after another even when the timer flushes while the caller awaits the model. The
  // first leaves at once: no promise to chain it on (a turn that is not streamed has only that one).
  let last: Promise<void> | undefined;

  function flush(): Promise<void> {
    clearTimeout(timer);
    timer = undefined;
    if (buffer !== '') {
      const chunk = buffer;
      buffer = '';
      started = true;
      last = last === undefined ? emitNow(chunk) : last.then(() => emit(chunk));
    }
    return last ?? NOTHING_EMITTED;
  }

  /** `emit(chunk)`, a throw as a rejection (as it would be from inside a `then`). */
  function emitNow(chunk: string): Promise<void> {
    try {
      return emit(chunk);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  return {
    push(text) {
      buffer += text;
      if (streaming && (!started || buffer.length >= chunkSize)) return flush();
      if (streaming && maxDelayMs > 0 && timer === undefined && buffer !== '') {
        timer = setTimeout(() => void flush().catch(() => {}), maxDelayMs);
      }
      return undefined;
    },
    end: flush,
  };
}
