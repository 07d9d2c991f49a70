import { afterEach, describe, expect, it, vi } from 'vitest';
import { createDeltaChunker } from './delta-chunker.ts';

async function chunksOf(pieces: string[], chunkSize: number, maxDelayMs = 0): Promise<string[]> {
  const emitted: string[] = [];
  const chunker = createDeltaChunker({ chunkSize, maxDelayMs }, async (text) => void emitted.push(text));
  for (const piece of pieces) await chunker.push(piece);
  await chunker.end();
  return emitted;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('createDeltaChunker', () => {
  it('sends the first text at once, then chunks of at least chunk_size, and the rest at the end', async () => {
    expect(await chunksOf(['ab', 'cd', 'e', 'fgh', 'i'], 3)).toEqual(['ab', 'cde', 'fgh', 'i']);
  });

  it('never splits a model token, and loses or reorders nothing', async () => {
    const pieces = ['Hello', ', ', 'wonderful', ' ', 'world', '😀', '!'];
    const chunks = await chunksOf(pieces, 4);
    expect(chunks.join('')).toBe(pieces.join(''));
    for (const chunk of chunks.slice(1, -1)) expect(chunk.length).toBeGreaterThanOrEqual(4);
    expect(chunks).toContain('😀!');
  });

  it('sends one chunk at the end when the size is infinite (streaming off), none for no text', async () => {
    expect(await chunksOf(['a', 'b', 'c'], Number.POSITIVE_INFINITY, 10)).toEqual(['abc']);
    expect(await chunksOf([], 10)).toEqual([]);
  });

  it('sends buffered text once it has waited max_delay_ms, in order with later chunks', async () => {
    vi.useFakeTimers();
    const emitted: string[] = [];
    const chunker = createDeltaChunker({ chunkSize: 100, maxDelayMs: 50 }, async (text) => {
      await Promise.resolve();
      emitted.push(text);
    });
    await chunker.push('The');
    expect(emitted).toEqual(['The']);
    await chunker.push(' slow');
    await chunker.push(' model');
    await vi.advanceTimersByTimeAsync(49);
    expect(emitted).toEqual(['The']);
    await vi.advanceTimersByTimeAsync(1);
    expect(emitted).toEqual(['The', ' slow model']);
    await chunker.push(' ends');
    await chunker.end();
    await vi.advanceTimersByTimeAsync(100);
    expect(emitted).toEqual(['The', ' slow model', ' ends']);
  });
});
