/**
 * Server-sent events read from a `fetch` response body. The client reads streams this way rather than with
 * EventSource, which can neither POST nor tell an HTTP error from a dropped connection. Used by a chat turn
 * (stream-turn.ts) and an agent conversation (agent-stream.ts).
 */

/** One event of the stream: its name (`message` when unnamed) and its data lines joined. */
export interface SseEvent {
  event: string;
  data: string;
  /** The performance.now() at which the chunk that completed it was read. */
  arrivedAt: number;
}

/** Parses one block (the lines between blank lines); `undefined` for a block without data (a comment). */
export function parseSseBlock(block: string): Omit<SseEvent, 'arrivedAt'> | undefined {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) event = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
  }
  return data.length === 0 ? undefined : { event, data: data.join('\n') };
}

/**
 * Yields the events of `body` as they arrive, whatever way the network cut the bytes: an event split over
 * chunks waits for its end, several in one chunk come out one by one. Throws what the body's reader throws
 * (an abort, a broken connection); returns when the body ends.
 */
export async function* readSseEvents(
  body: ReadableStream<Uint8Array<ArrayBuffer>>,
): AsyncGenerator<SseEvent> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      const arrivedAt = performance.now();
      buffer += value.replaceAll('\r\n', '\n');
      let boundary = buffer.indexOf('\n\n');
      while (boundary !== -1) {
        const parsed = parseSseBlock(buffer.slice(0, boundary));
        buffer = buffer.slice(boundary + 2);
        boundary = buffer.indexOf('\n\n');
        if (parsed !== undefined) yield { ...parsed, arrivedAt };
      }
    }
  } finally {
    // The consumer stopped early (an `end` event) or the stream failed: let go of the body.
    reader.cancel().catch(() => {});
  }
}
