/** One JSON document per key (records, metadata, indexes): the shape most modules keep. */
import type { Storage } from './types.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The document at `key` parsed, or undefined when there is none. */
export async function readJson<T>(storage: Pick<Storage, 'read'>, key: string): Promise<T | undefined> {
  const bytes = await storage.read(key);
  return bytes === undefined ? undefined : (JSON.parse(decoder.decode(bytes)) as T);
}

/** Replaces the document at `key` (atomically, as every driver's `write`). */
export async function writeJson(storage: Pick<Storage, 'write'>, key: string, value: unknown): Promise<void> {
  await storage.write(key, encoder.encode(JSON.stringify(value)));
}
