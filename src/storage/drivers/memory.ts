/**
 * The in-memory driver: for tests and throwaway runs. Values are copied in and out, so a caller that
 * mutates a buffer after writing it (or after reading it) never changes what is stored.
 */

import { StorageUnavailableError } from '../../core/errors.ts';
import { copyBytes } from '../bytes.ts';
import { assertWholeLines } from '../json-lines.ts';
import { assertValidKey, assertValidPrefix } from '../keys.ts';
import { assertOffset } from '../read-from.ts';
import type { Storage } from '../types.ts';

interface Entry {
  /** Appended chunks are kept apart and joined on the next read, so n appends cost O(total), not O(n²). */
  chunks: Uint8Array[];
}

function join(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const size = chunks.reduce((total, chunk) => total + chunk.length, 0);
  const joined = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    joined.set(chunk, offset);
    offset += chunk.length;
  }
  return joined;
}

/** Creates an empty storage that lives in this process's memory. */
export function createMemoryStorage(): Storage {
  const entries = new Map<string, Entry>();
  let closed = false;

  function assertOpen(): void {
    if (closed) throw new StorageUnavailableError('the memory storage is closed');
  }

  /** A copy of the value from `offset` on (a read is the tail from 0); the chunks are joined once. */
  function readTail(key: string, offset: number): Uint8Array | undefined {
    assertValidKey(key);
    assertOpen();
    const entry = entries.get(key);
    if (entry === undefined) return undefined;
    const joined = join(entry.chunks);
    entry.chunks = [joined];
    return joined.slice(Math.min(offset, joined.length));
  }

  // Every operation is async so errors arrive as rejections, exactly as with a real driver.
  return {
    async read(key) {
      return readTail(key, 0);
    },
    async readFrom(key, offset) {
      assertOffset(offset);
      return readTail(key, offset);
    },
    async size(key) {
      assertValidKey(key);
      assertOpen();
      return entries.get(key)?.chunks.reduce((total, chunk) => total + chunk.length, 0);
    },
    async write(key, data) {
      assertValidKey(key);
      assertWholeLines(key, data, 'write');
      assertOpen();
      entries.set(key, { chunks: [copyBytes(data)] });
      return true;
    },
    async delete(key) {
      assertValidKey(key);
      assertOpen();
      return entries.delete(key);
    },
    async list(prefix) {
      assertValidPrefix(prefix);
      assertOpen();
      return [...entries.keys()].filter((key) => key.startsWith(prefix)).sort();
    },
    async exists(key) {
      assertValidKey(key);
      assertOpen();
      return entries.has(key);
    },
    async append(key, data) {
      assertValidKey(key);
      assertWholeLines(key, data, 'append');
      assertOpen();
      const entry = entries.get(key);
      if (entry === undefined) entries.set(key, { chunks: [copyBytes(data)] });
      else entry.chunks.push(copyBytes(data));
    },
    async close() {
      closed = true;
    },
  };
}
