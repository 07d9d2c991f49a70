/**
 * JSON Lines on top of the storage contract. A key ending in `.jsonl` is line-oriented: its stored bytes
 * are whole lines, each ending in `\n`. Every driver enforces that on `write` and `append`, so an
 * unterminated last line can only be a write torn by a crash, never acknowledged data. That is what lets a
 * reader drop it and the flatfile driver cut it off before its next append.
 */

import { PlatformError, ValidationError } from '../core/errors.ts';
import type { Storage } from './types.ts';

const NEWLINE = 0x0a;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** True when `key` names a JSON Lines log (it ends in `.jsonl`). */
export function isJsonLinesKey(key: string): boolean {
  return key.endsWith('.jsonl');
}

/**
 * Throws CHAT_ERR_VALIDATION_INVALID when `data` would leave a `.jsonl` key ending in a partial line:
 * an append must be non-empty and end in `\n`; a write must be empty or end in `\n`.
 */
export function assertWholeLines(key: string, data: Uint8Array, operation: 'write' | 'append'): void {
  if (!isJsonLinesKey(key)) return;
  if (operation === 'write' && data.length === 0) return;
  if (data.length > 0 && data[data.length - 1] === NEWLINE) return;
  throw new ValidationError(`bytes for the JSON Lines key "${key}" must be whole lines ending in "\\n"`, {
    details: { key, operation, length: data.length },
  });
}

/**
 * Parses JSON Lines. An unterminated last line is a torn write and is dropped; blank lines are skipped;
 * any other line that is not JSON is corruption and throws CHAT_ERR_STORAGE_FAILED with its line number.
 */
export function parseJsonLines<T = unknown>(bytes: Uint8Array, key = ''): T[] {
  const end = bytes.lastIndexOf(NEWLINE) + 1;
  const text = decoder.decode(bytes.subarray(0, end));
  const values: T[] = [];
  let lineNumber = 0;
  for (const line of text.split('\n')) {
    lineNumber += 1;
    if (line.trim() === '') continue;
    try {
      values.push(JSON.parse(line) as T);
    } catch (error) {
      throw new PlatformError('CHAT_ERR_STORAGE_FAILED', `line ${lineNumber} of "${key}" is not valid JSON`, {
        details: { key, line: lineNumber },
        cause: error,
      });
    }
  }
  return values;
}

/** Reads the JSON Lines log at `key` (`[]` when missing), dropping a torn last line. */
export async function readJsonLines<T = unknown>(storage: Pick<Storage, 'read'>, key: string): Promise<T[]> {
  const bytes = await storage.read(key);
  return bytes === undefined ? [] : parseJsonLines<T>(bytes, key);
}

/** `value` as JSON, for a line of its own. */
function jsonOf(value: unknown): string {
  const json = JSON.stringify(value);
  if (json === undefined) {
    throw new ValidationError('a JSON line needs a JSON-serialisable value', {
      details: { type: typeof value },
    });
  }
  return json;
}

/** Serialises `value` as one JSON line (with its `\n`). */
export function encodeJsonLine(value: unknown): Uint8Array {
  return encoder.encode(`${jsonOf(value)}\n`);
}

/** Serialises `values` as JSON lines (each with its `\n`), encoded at once: one buffer, not one each. */
export function encodeJsonLines(values: readonly unknown[]): Uint8Array {
  let text = '';
  for (const value of values) text += `${jsonOf(value)}\n`;
  return encoder.encode(text);
}

/** Appends `value` as one line to the JSON Lines log at `key`; durable when the promise resolves. */
export function appendJsonLine(storage: Pick<Storage, 'append'>, key: string, value: unknown): Promise<void> {
  return storage.append(key, encodeJsonLine(value));
}
