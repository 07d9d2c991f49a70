import type { ModuleStorage } from '../../core/module.ts';
import type { Message } from '../../core/types.ts';
import { parseJsonLines } from '../../storage/json-lines.ts';
import { messagesKey } from './sessions.ts';

/**
 * A per-node cache of parsed session logs, so a turn does not parse (and tokenize) the whole history
 * again. The log in storage stays the truth: every load reads it, and only the lines past the cached end
 * are parsed. Storage is shared between nodes (redis, s3), so another node may have appended since; the
 * read sees that, and a log that no longer starts with what was cached (deleted, replaced) is parsed
 * again from the start. So the cache changes the cost of a turn, never what it sees.
 */

const NEWLINE = 0x0a;
/** Bytes before the cached end that must still match for the cached prefix to be trusted. */
const FINGERPRINT_BYTES = 64;

/**
 * A session's log as one load read it, oldest first. Later loads may parse more lines into the cache, but
 * a SessionLog keeps showing the log as it was read (a turn must not see messages stored after its own).
 */
export interface SessionLog {
  /** Messages in the log. */
  readonly count: number;
  /** The message at `index` (0 = oldest), for `0 <= index < count`. */
  at(index: number): Message;
  /** Messages `start` to `end` (exclusive), as `Array.prototype.slice` takes them, within `count`. */
  slice(start?: number, end?: number): Message[];
  /** The first user message and the first reply stored for a turn id, when there are any. */
  turn(turnId: string): { user?: Message; reply?: Message };
}

interface Entry {
  /** Grows only: a log parsed anew gets a new entry. */
  messages: Message[];
  /** Turn id → index in `messages` of its first user message and first reply. */
  turns: Map<string, { user?: number; reply?: number }>;
  /** Bytes of whole lines parsed. */
  length: number;
  /** The last bytes before `length`, to tell the same log from another one. */
  fingerprint: Uint8Array;
}

export interface HistoryCache {
  /** Reads the session's log and returns it parsed, parsing only what the cache has not seen. */
  load(storage: ModuleStorage, userId: string, sessionId: string): Promise<SessionLog>;
  /** Drops a session (it was deleted). */
  forget(userId: string, sessionId: string): void;
  /** Sessions and log bytes cached now (for tests and diagnostics). */
  size(): { sessions: number; bytes: number };
}

export interface HistoryCacheOptions {
  /** Log bytes kept in all; the least recently used sessions are dropped beyond it. 0 turns caching off. */
  maxBytes: number;
}

function index(entry: Entry, messages: readonly Message[]): void {
  for (const message of messages) {
    const position = entry.messages.push(message) - 1;
    const turnId = message.metadata.turnId;
    if (typeof turnId !== 'string') continue;
    let turn = entry.turns.get(turnId);
    if (turn === undefined) {
      turn = {};
      entry.turns.set(turnId, turn);
    }
    // The first of each kind wins, as a scan from the start of the log would find it.
    if (message.role === 'user') turn.user ??= position;
    else if (message.role === 'assistant') turn.reply ??= position;
  }
}

/** The log as it is now: later growth of the entry stays out of it. */
function snapshot(entry: Entry): SessionLog {
  const { messages, turns } = entry;
  const count = messages.length;
  return {
    count,
    at: (position) => messages[position]!,
    slice: (start = 0, end = count) => messages.slice(start, Math.min(end, count)),
    turn(turnId) {
      const found = turns.get(turnId);
      const result: { user?: Message; reply?: Message } = {};
      if (found?.user !== undefined && found.user < count) result.user = messages[found.user]!;
      if (found?.reply !== undefined && found.reply < count) result.reply = messages[found.reply]!;
      return result;
    },
  };
}

function sameBytes(bytes: Uint8Array, end: number, fingerprint: Uint8Array): boolean {
  if (end < fingerprint.length) return false;
  const start = end - fingerprint.length;
  for (let offset = 0; offset < fingerprint.length; offset++) {
    if (bytes[start + offset] !== fingerprint[offset]) return false;
  }
  return true;
}

function newEntry(): Entry {
  return { messages: [], turns: new Map(), length: 0, fingerprint: new Uint8Array(0) };
}

/** Creates the cache (one per text_chat instance). */
export function createHistoryCache(options: HistoryCacheOptions): HistoryCache {
  // Map order is insertion order: re-inserting on use keeps the least recently used first.
  const entries = new Map<string, Entry>();
  let bytes = 0;

  function remember(key: string, entry: Entry): void {
    const previous = entries.get(key);
    if (previous !== undefined) {
      bytes -= previous.length;
      entries.delete(key);
    }
    if (entry.length > options.maxBytes) return;
    entries.set(key, entry);
    bytes += entry.length;
    for (const [oldestKey, oldest] of entries) {
      if (bytes <= options.maxBytes) break;
      entries.delete(oldestKey);
      bytes -= oldest.length;
    }
  }

  return {
    async load(storage, userId, sessionId) {
      const key = messagesKey(userId, sessionId);
      const stored = (await storage.read(key)) ?? new Uint8Array(0);
      // Only whole lines count: an unterminated last line is a write torn by a crash, never acknowledged.
      const end = stored.lastIndexOf(NEWLINE) + 1;
      const cached = entries.get(key);
      let entry: Entry;
      if (
        cached !== undefined &&
        end >= cached.length &&
        sameBytes(stored, cached.length, cached.fingerprint)
      ) {
        if (end === cached.length) {
          remember(key, cached);
          return snapshot(cached);
        }
        entry = cached;
        index(entry, parseJsonLines<Message>(stored.subarray(cached.length, end), key));
      } else {
        entry = newEntry();
        index(entry, parseJsonLines<Message>(stored.subarray(0, end), key));
      }
      entry.length = end;
      entry.fingerprint = stored.slice(Math.max(0, end - FINGERPRINT_BYTES), end);
      remember(key, entry);
      return snapshot(entry);
    },
    forget(userId, sessionId) {
      const key = messagesKey(userId, sessionId);
      const entry = entries.get(key);
      if (entry === undefined) return;
      entries.delete(key);
      bytes -= entry.length;
    },
    size: () => ({ sessions: entries.size, bytes }),
  };
}
