import { describe, expect, it } from 'vitest';
import { createDeltaChunker } from './delta-chunker.ts';

async function chunksOf(pieces: string[], chunkSize: number): Promise<string[]> {
  const emitted: string[] = [];
  const chunker = createDeltaChunker(chunkSize, async (text) => void emitted.push(text));
  for (const piece of pieces) await chunker.push(piece);
  await chunker.end();
  return emitted;
}

describe('createDeltaChunker', () => {
  it('emits once at least chunk_size characters are buffered, and the rest at the end', async () => {
    expect(await chunksOf(['ab', 'cd', 'e', 'fgh', 'i'], 3)).toEqual(['abcd', 'efgh', 'i']);
  });

  it('never splits a model token, and loses or reorders nothing', async () => {
    const pieces = ['Hello', ', ', 'wonderful', ' ', 'world', '😀', '!'];
    const chunks = await chunksOf(pieces, 4);
    expect(chunks.join('')).toBe(pieces.join(''));
    for (const chunk of chunks.slice(0, -1)) expect(chunk.length).toBeGreaterThanOrEqual(4);
    expect(chunks).toContain('😀!');
  });

  it('sends one chunk at the end when the size is infinite (streaming off), none for no text', async () => {
    expect(await chunksOf(['a', 'b', 'c'], Number.POSITIVE_INFINITY)).toEqual(['abc']);
    expect(await chunksOf([], 10)).toEqual([]);
  });
});
