import { describe, expect, it } from 'vitest';
import { createCopyArena } from './copy-arena.ts';

const filled = (size: number, byte: number) => new Uint8Array(size).fill(byte);

describe('copy arena', () => {
  it('keeps every copy in use intact and apart, whatever happens to the originals', () => {
    const copy = createCopyArena(1024);
    const copies = Array.from({ length: 40 }, (_, index) => {
      const original = filled(100, index);
      const made = copy(original);
      original.fill(0xff);
      return made;
    });
    // 40 copies of 100 bytes need four blocks of 1 KiB: none was overwritten by a later one.
    for (const [index, made] of copies.entries()) expect([...made.bytes]).toEqual([...filled(100, index)]);
  });

  it('starts a block over once none of its copies is in use', () => {
    const copy = createCopyArena(1024);
    const first = copy(filled(100, 1));
    const second = copy(filled(100, 2));
    first.release();
    second.release();
    const again = copy(filled(100, 3));
    expect(again.bytes.buffer).toBe(first.bytes.buffer);
    expect(again.bytes.byteOffset).toBe(first.bytes.byteOffset);
  });

  it('moves to a new block when one never released is in the way, leaving that one intact', () => {
    const copy = createCopyArena(1024);
    const kept = copy(filled(100, 7));
    const later = Array.from({ length: 20 }, (_, index) => copy(filled(100, index)));
    for (const made of later) made.release();
    expect(later.some((made) => made.bytes.buffer !== kept.bytes.buffer)).toBe(true);
    expect([...kept.bytes]).toEqual([...filled(100, 7)]);
  });

  it('gives a value larger than an eighth of a block memory of its own', () => {
    const copy = createCopyArena(1024);
    const large = copy(filled(200, 5));
    const small = copy(filled(10, 6));
    expect(large.bytes.buffer).not.toBe(small.bytes.buffer);
    expect([...large.bytes]).toEqual([...filled(200, 5)]);
  });
});
