import type { ModuleStorage } from '../../core/module.ts';
import type { Message } from '../../core/types.ts';
import { copyBytes } from '../../storage/bytes.ts';
import { parseJsonLines } from '../../storage/json-lines.ts';
import { NOT_HELD, type Peekable, peek } from '../../storage/peek.ts';
import { type ReadableFrom, readFrom } from '../../storage/read-from.ts';
import { messagesKey } from './sessions.ts';

/**
 * A per-node cache of parsed session logs, so a turn does not parse (and tokenize) the whole history
 * again. The log in storage stays the truth: every load reads it — only from a little before the cached
 * end (`readFrom`: the read cache copies just that tail), so a long log costs a turn its new lines — and
 * parses only the lines past the cached end. Storage is shared between nodes (redis, s3), so another node
 * may have appended since; the read sees that, and a log that no longer holds the cached end's last bytes
 * where they were (deleted, replaced) is read and parsed again from the start. So the cache changes the
 * cost of a turn, never what it sees. The messages this node appended itself (`appended`) are taken back
 * as the same objects, so what was worked out for them (token counts, the model's form) is not worked out
 * again; where the new bytes begin with exactly the bytes of this node's own appends (a conversation held
 * by one node: every turn), those are not even parsed, only compared.
 *
 * A long conversation's turns only look at its newest messages (the history window), so a cached log keeps
 * only those: a turn tells the cache where its window began (`retain`) and older messages are dropped, with
 * the ids of the turns they held. What needs them (a repeated turn id among them, a window that would now
 * reach further back, an old page of messages) reads the whole log anew (`loadWhole`), which the cache
 * then holds whole until the session's next turn drops the old messages again — so paging back through a
 * long history reads and parses it once, not once a page. So what a session costs the cache is its window,
 * not its length, and a busy node does not drop its sessions in turn and parse and tokenize their whole
 * logs again on every turn.
 */

const NEWLINE = 0x0a;
/** Bytes before the cached end that must still match for the cached prefix to be trusted. */
const FINGERPRINT_BYTES = 64;
/**
 * This node's appends to one log remembered until their bytes are read back (a turn makes one or two, and
 * reads them back at the session's next turn; turns of one chat at once leave a few more).
 */
const MAX_OWN_APPENDS = 32;

/**
 * A session's log as one load read it, oldest first. Later loads may parse more lines into the cache, but
 * a SessionLog keeps showing the log as it was read (a turn must not see messages stored after its own).
 */
export interface SessionLog {
  /** Messages in the log. */
  readonly count: number;
  /** Index of the oldest message held: the cache dropped the ones before it (0: the whole log is held). */
  readonly first: number;
  /** The same object for every load of one cached log (history.ts keeps a window per conversation by it). */
  readonly identity: object;
  /** The message at `index` (0 = oldest), for `first <= index < count`. */
  at(index: number): Message;
  /** Messages `start` to `end` (exclusive), as `Array.prototype.slice` takes them, within `first`–`count`. */
  slice(start?: number, end?: number): Message[];
  /**
   * The first user message and the first reply stored for a turn id, when there are any; undefined when
   * they may lie before `first` (load the whole log to know).
   */
  turn(turnId: string): TurnMessages | undefined;
}

/** What a log holds of one turn. */
export interface TurnMessages {
  user?: Message;
  reply?: Message;
}

interface Entry {
  /** The messages held, from index `first` of the log on. Replaced, never shortened, when old ones drop. */
  messages: Message[];
  first: number;
  /** Turn id → index in the log of its first user message and first reply. */
  turns: Map<string, { user?: number; reply?: number }>;
  /** Ids of turns whose messages were all dropped. */
  dropped: Set<string>;
  /** Bytes of whole lines parsed. */
  length: number;
  /** The last bytes before `length`, to tell the same log from another one. */
  fingerprint: Uint8Array;
  /**
   * This node's appends not read back yet, oldest first: lines found to be their exact bytes need no
   * parsing (a conversation held by one node: every turn), and lines parsed are matched to them by id.
   */
  own: OwnAppend[];
  /** The length counted in the cache's byte total. */
  counted: number;
}

/** One append this node made: the messages, and the bytes it wrote when known. */
interface OwnAppend {
  bytes: Uint8Array | undefined;
  messages: readonly Message[];
}

export interface HistoryCache {
  /** Reads the session's log and returns it parsed, parsing only what the cache has not seen. */
  load(storage: ModuleStorage & ReadableFrom, userId: string, sessionId: string): Promise<SessionLog>;
  /**
   * What `load` would return, when it can be known without a wait: the log is cached here and the storage
   * holds its new end in memory (`peek`, storage/peek.ts). Undefined otherwise: then `load`.
   */
  loadNow(storage: ModuleStorage & Peekable, userId: string, sessionId: string): SessionLog | undefined;
  /**
   * Reads and parses the whole log (for what lies before a cached log's `first`), and caches it whole (when
   * it is at most an eighth of `maxBytes`) until a turn's `retain` drops the old messages again.
   */
  loadWhole(storage: ModuleStorage, userId: string, sessionId: string): Promise<SessionLog>;
  /**
   * Tells the cache these messages were just appended to the session's log by this node, as `bytes` when
   * given (then lines found to be exactly those bytes are taken back without parsing).
   */
  appended(userId: string, sessionId: string, messages: readonly Message[], bytes?: Uint8Array): void;
  /**
   * Tells the cache that turns of this session need its messages from index `from` on (where the history
   * window begins): older ones may be dropped.
   */
  retain(userId: string, sessionId: string, from: number): void;
  /** Drops a session (it was deleted). */
  forget(userId: string, sessionId: string): void;
  /** Sessions and log bytes cached now (for tests and diagnostics). */
  size(): { sessions: number; bytes: number };
}

export interface HistoryCacheOptions {
  /** Log bytes kept in all; the least recently used sessions are dropped beyond it. 0 turns caching off. */
  maxBytes: number;
}

/**
 * Adds messages read from the log to `entry`: this node's own objects (`own`, by id: same id, same text)
 * stand for the lines that are theirs. Messages taken back by their bytes are own objects already.
 */
function index(entry: Entry, parsed: readonly Message[], own?: Map<string, Message>): void {
  for (const line of parsed) {
    const mine = own?.get(line.id);
    const message =
      mine !== undefined && mine.content === line.content && mine.role === line.role ? mine : line;
    if (mine !== undefined) own?.delete(line.id);
    const position = entry.first + entry.messages.push(message) - 1;
    const turnId = message.metadata.turnId;
    // A turn whose first messages were dropped keeps answering "load the whole log" (see LogSnapshot.turn).
    if (typeof turnId !== 'string' || entry.dropped.has(turnId)) continue;
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

/**
 * The log as it is now, later growth of the entry left out: it keeps the entry's messages array of the
 * moment (later growth pushes onto it past `count`; a drop replaces it). A class, not an object of
 * closures: one is made every turn.
 */
class LogSnapshot implements SessionLog {
  readonly count: number;
  readonly first: number;
  readonly identity: object;
  readonly #messages: Message[];
  readonly #turns: Entry['turns'];
  readonly #dropped: Set<string>;

  constructor(entry: Entry) {
    this.#messages = entry.messages;
    this.first = entry.first;
    this.count = entry.first + entry.messages.length;
    this.identity = entry;
    this.#turns = entry.turns;
    this.#dropped = entry.dropped;
  }

  at(position: number): Message {
    const { first, count } = this;
    if (position < first || position >= count) {
      throw new RangeError(`message ${position} is not held (held: ${first} to ${count - 1})`);
    }
    return this.#messages[position - first]!;
  }

  slice(start = this.first, end = this.count): Message[] {
    const { first, count } = this;
    return this.#messages.slice(Math.max(start, first) - first, Math.min(end, count) - first);
  }

  turn(turnId: string): TurnMessages | undefined {
    const { first, count } = this;
    const found = this.#turns.get(turnId);
    if (found === undefined) return this.#dropped.has(turnId) ? undefined : {};
    if ((found.user ?? count) < first || (found.reply ?? count) < first) return undefined;
    const result: TurnMessages = {};
    if (found.user !== undefined && found.user < count) result.user = this.at(found.user);
    if (found.reply !== undefined && found.reply < count) result.reply = this.at(found.reply);
    return result;
  }
}

/** Drops the messages before index `from` (the turns they held become ids only). */
function dropBefore(entry: Entry, from: number): void {
  entry.messages = entry.messages.slice(from - entry.first);
  entry.first = from;
  // Turns are indexed in log order of their first message: the oldest come first.
  for (const [turnId, turn] of entry.turns) {
    if ((turn.user ?? -1) >= from || (turn.reply ?? -1) >= from) break;
    entry.turns.delete(turnId);
    entry.dropped.add(turnId);
  }
}

function newEntry(own: OwnAppend[] = []): Entry {
  return {
    messages: [],
    first: 0,
    turns: new Map(),
    dropped: new Set(),
    length: 0,
    fingerprint: new Uint8Array(0),
    own,
    counted: 0,
  };
}

/** Whether `bytes` starts with `prefix`. */
function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  if (bytes.length < prefix.length) return false;
  for (let offset = 0; offset < prefix.length; offset++) {
    if (bytes[offset] !== prefix[offset]) return false;
  }
  return true;
}

/**
 * Parses the whole lines of `fresh` (the log's bytes past `entry.length`) into `entry`. `bytes` holds
 * `fresh` at `offset`, after what came before it, for the new fingerprint. Only whole lines count: an
 * unterminated last line is a write torn by a crash, never acknowledged.
 */
function extend(entry: Entry, fresh: Uint8Array, offset: number, bytes: Uint8Array, key: string): void {
  const end = fresh.lastIndexOf(NEWLINE) + 1;
  if (end === 0) return;
  const parsedFrom = takeOwnAppends(entry, fresh, end);
  if (parsedFrom < end) {
    // Parsed: another node's lines came first, or a log read anew. Own lines among them are matched by id.
    const ownById =
      entry.own.length === 0
        ? undefined
        : new Map(entry.own.flatMap((own) => own.messages.map((message) => [message.id, message] as const)));
    index(entry, parseJsonLines<Message>(fresh.subarray(parsedFrom, end), key), ownById);
    // Own appends whose lines were parsed (and taken back by id) just now are read back.
    if (ownById !== undefined) {
      entry.own = entry.own.filter((own) => own.messages.every((message) => ownById.has(message.id)));
    }
  }
  entry.length += end;
  // A copy (a Buffer's slice would be a view keeping the whole read alive).
  entry.fingerprint = copyBytes(bytes.subarray(Math.max(0, offset + end - FINGERPRINT_BYTES), offset + end));
}

/**
 * Takes back, without parsing them, this node's own appends whose exact bytes begin `fresh` (before `end`),
 * in the order they lie there; returns where the bytes still to parse begin.
 */
function takeOwnAppends(entry: Entry, fresh: Uint8Array, end: number): number {
  let position = 0;
  while (entry.own.length > 0 && position < end) {
    const found = entry.own.findIndex(
      ({ bytes }) =>
        bytes !== undefined &&
        bytes.length <= end - position &&
        Buffer.compare(bytes, fresh.subarray(position, position + bytes.length)) === 0,
    );
    if (found === -1) break;
    const { bytes, messages } = entry.own.splice(found, 1)[0]!;
    index(entry, messages);
    position += bytes?.length ?? 0;
  }
  return position;
}

/**
 * Messages before a turn's window that stay held (a little room for a window that grows back, say after
 * a persona with a shorter system prompt, and for the follow-up context knowledge.ts takes).
 */
const RETAIN_MARGIN = 16;
/**
 * Old messages are dropped once they are at least this many and a quarter of the ones kept: each drop
 * copies the kept ones' references, so that is a few a turn, and a session holds little more than its
 * window (a window of a dozen long messages is not followed by 64 more, as with a fixed batch).
 */
const MIN_DROP_BATCH = 8;
/** A whole log read for old messages is kept when it is at most this fraction of the cache's bytes. */
const WHOLE_LOG_SHARE = 8;
/** What a dropped turn's id is counted as in the cache's byte total. */
const DROPPED_TURN_BYTES = 64;

/** The bytes an entry is counted as: its held part's share of the log, and the dropped turn ids. */
function bytesOf(entry: Entry): number {
  const count = entry.first + entry.messages.length;
  const held = count === 0 ? entry.length : Math.round((entry.length * entry.messages.length) / count);
  return held + entry.dropped.size * DROPPED_TURN_BYTES;
}

/** Creates the cache (one per text_chat instance). */
export function createHistoryCache(options: HistoryCacheOptions): HistoryCache {
  // Map order is insertion order: re-inserting on use keeps the least recently used first.
  const entries = new Map<string, Entry>();
  let bytes = 0;

  function remember(key: string, entry: Entry): void {
    const previous = entries.get(key);
    if (previous !== undefined) {
      bytes -= previous.counted;
      entries.delete(key);
    }
    entry.counted = bytesOf(entry);
    if (entry.counted > options.maxBytes) return;
    entries.set(key, entry);
    bytes += entry.counted;
    // Checked first: iterating the Map allocates, and this runs on every turn.
    if (bytes <= options.maxBytes) return;
    for (const [oldestKey, oldest] of entries) {
      if (bytes <= options.maxBytes) break;
      entries.delete(oldestKey);
      bytes -= oldest.counted;
    }
  }

  /**
   * The cached log moved on by `tail`, its bytes read from its fingerprint on; undefined when they no
   * longer begin with the fingerprint (the log was replaced or deleted: read it whole).
   */
  function continued(key: string, cached: Entry, tail: Uint8Array | undefined): SessionLog | undefined {
    const { fingerprint } = cached;
    if (tail === undefined || !startsWith(tail, fingerprint)) return undefined;
    extend(cached, tail.subarray(fingerprint.length), fingerprint.length, tail, key);
    remember(key, cached);
    return new LogSnapshot(cached);
  }

  /** The whole log read and parsed, taking over this node's appends not yet read back. */
  async function parseWhole(storage: ModuleStorage, key: string): Promise<Entry> {
    const stored = (await storage.read(key)) ?? new Uint8Array(0);
    const previous = entries.get(key);
    const entry = newEntry(previous?.own);
    extend(entry, stored, 0, stored, key);
    return entry;
  }

  return {
    async load(storage, userId, sessionId) {
      const key = messagesKey(userId, sessionId);
      let cached = entries.get(key);
      while (cached !== undefined && cached.length > 0) {
        // Only the bytes from the fingerprint on: they must still be there, followed by what is new.
        const { length, fingerprint } = cached;
        const tail = await readFrom(storage, key, length - fingerprint.length);
        // Another load of this log parsed more meanwhile (or dropped it): start again from where it is.
        if (entries.get(key) !== cached || cached.length !== length) {
          cached = entries.get(key);
          continue;
        }
        const log = continued(key, cached, tail);
        if (log === undefined) break;
        return log;
      }
      const entry = await parseWhole(storage, key);
      remember(key, entry);
      return new LogSnapshot(entry);
    },
    loadNow(storage, userId, sessionId) {
      const key = messagesKey(userId, sessionId);
      const cached = entries.get(key);
      if (cached === undefined || cached.length === 0) return undefined;
      const tail = peek(storage, key, cached.length - cached.fingerprint.length);
      return tail === NOT_HELD ? undefined : continued(key, cached, tail);
    },
    async loadWhole(storage, userId, sessionId) {
      const key = messagesKey(userId, sessionId);
      const entry = await parseWhole(storage, key);
      // Kept: what asked for old messages often asks again — the next older page of a history scrolled
      // back — and then finds them here; the next turn's `retain` drops them again. Only a log of at most
      // an eighth of max_bytes: a huge one would push every other session's window out of the cache.
      if (bytesOf(entry) <= options.maxBytes / WHOLE_LOG_SHARE) remember(key, entry);
      return new LogSnapshot(entry);
    },
    appended(userId, sessionId, messages, bytes) {
      const entry = entries.get(messagesKey(userId, sessionId));
      if (entry === undefined) return;
      entry.own.push({ bytes, messages });
      if (entry.own.length > MAX_OWN_APPENDS) entry.own.shift();
    },
    retain(userId, sessionId, from) {
      const key = messagesKey(userId, sessionId);
      const entry = entries.get(key);
      if (entry === undefined) return;
      const end = entry.first + entry.messages.length;
      const keepFrom = Math.min(from - RETAIN_MARGIN, end);
      if (keepFrom - entry.first < Math.max(MIN_DROP_BATCH, (end - keepFrom) / 4)) return;
      dropBefore(entry, keepFrom);
      remember(key, entry);
    },
    forget(userId, sessionId) {
      const key = messagesKey(userId, sessionId);
      const entry = entries.get(key);
      if (entry === undefined) return;
      entries.delete(key);
      bytes -= entry.counted;
    },
    size: () => ({ sessions: entries.size, bytes }),
  };
}
