/**
 * Search across a user's chats: one BM25 index (src/retrieval, the one rag and memory use) per user, of
 * every message of theirs and the assistant's in every session, built from the session logs on the user's
 * first search and kept on this node for the next ones (least recently used users dropped beyond
 * `maxBytes`).
 *
 * Keeping it current, without a single write more on a turn's path:
 * - Messages stored anywhere are *noted* (this node's appends as they are made; other nodes' through the
 *   `message.received` / `chat.response.end` events every node hears) and indexed at the next search —
 *   noting costs a turn a push to a list, and nothing at all for a user whose index is not held.
 * - A deleted session is dropped at once (this node's `session.delete`, or the `session.deleted` event of
 *   another node's), and remembered as deleted, so a build that read its log just before cannot bring it
 *   back.
 * - Events heard by local listeners come at most once (a node that was disconnected from NATS, or started
 *   after them, misses some), so an index older than `resyncMs` is brought in line with storage before it
 *   answers: one listing of the user's folder (sessions gone are dropped) and each log read from the byte
 *   it was parsed to (logs only grow until deleted), so a resync reads only what is new.
 * - A reply a regeneration replaced (`metadata.replaces` on the new one, replies.ts) leaves the index when
 *   its replacement is indexed, and a failed regeneration is never indexed: search finds what the message
 *   list shows by default. The ids replaced are remembered, so a log read after the replacement was noted
 *   does not bring the old reply back.
 * What the index answers is checked once more by the caller: every hit's session must still exist
 * (session-requests.ts), so a session deleted by a node whose event was missed never shows.
 */

import type { ModuleStorage } from '../../core/module.ts';
import type { Message } from '../../core/types.ts';
import { type Bm25Index, createBm25Index, DEFAULT_BM25 } from '../../retrieval/bm25.ts';
import { createTokenizer, type Tokenizer } from '../../retrieval/tokenize.ts';
import { parseJsonLines } from '../../storage/json-lines.ts';
import { type ReadableFrom, readFrom } from '../../storage/read-from.ts';
import { isFailedRegeneration, replacedBy } from './replies.ts';
import { messagesKey, sessionIdOfKey, userFolder } from './sessions.ts';

/** What a hit says of its message (the caller adds the session's title). */
export interface RankedMessage {
  sessionId: string;
  messageId: string;
  role: Message['role'];
  timestamp: string;
  content: string;
  score: number;
}

export interface MessageSearchOptions {
  /** Estimated bytes of all users' indexes kept on this node (see `bytesOf`); 0: none kept between searches. */
  maxBytes: number;
  /** An index older than this is brought in line with storage before it answers (0: before every search). */
  resyncMs: number;
  /** Logs read at once while an index is built or resynced. */
  readConcurrency?: number;
  now?: () => number;
}

export interface MessageSearch {
  /** The user's messages best matching `query`, best first, at most `limit`. */
  search(
    storage: ModuleStorage & ReadableFrom,
    userId: string,
    query: string,
    limit: number,
  ): Promise<RankedMessage[]>;
  /** Messages just stored in a session (by this node or, heard by event, another): indexed at the next search. */
  noted(userId: string, sessionId: string, messages: readonly Message[]): void;
  /** A session was deleted: its messages leave the user's results at once. */
  forgetSession(userId: string, sessionId: string): void;
  /** The user was erased: their index goes. */
  forgetUser(userId: string): void;
  /** The query's terms as the index analyses them (for snippets). */
  readonly tokenize: Tokenizer;
  /** Users held and their estimated bytes (diagnostics, tests, the bench). */
  size(): { users: number; bytes: number; messages: number };
}

/** A message as the index keeps it, to answer with. */
interface IndexedMessage {
  sessionId: string;
  role: Message['role'];
  timestamp: string;
  content: string;
}

interface UserIndex {
  index: Bm25Index;
  messages: Map<string, IndexedMessage>;
  /** Per session: bytes of its log parsed, and the ids of its messages indexed. */
  sessions: Map<string, { parsed: number; ids: string[] }>;
  /** Sessions deleted while this index is held: never indexed again. */
  deleted: Set<string>;
  /** Replies replaced by a regeneration: never indexed (again). */
  replaced: Set<string>;
  /** Messages noted and not yet indexed. */
  pending: Array<{ sessionId: string; message: Message }>;
  /** When the index was last brought in line with storage (-Infinity: never). */
  syncedAt: number;
  /** The resync under way, which searches in the meantime wait for. */
  syncing: Promise<void> | undefined;
  /** The user was erased while a search was building this index: it is not kept. */
  discarded: boolean;
  bytes: number;
}

/** Roles whose messages are searched: what the user said and what the assistant answered. */
const SEARCHED_ROLES: ReadonlySet<string> = new Set(['user', 'assistant']);
const NEWLINE = 0x0a;
/**
 * Heap a message costs beside its text: its postings (three numbers a distinct term), its term list, its
 * record here. Measured by `npm run bench -- chat-search` (heap after building, per message).
 */
const MESSAGE_OVERHEAD_BYTES = 1400;
/** Notes kept for a user before the index catches up anyway (a user noted but never searching). */
const MAX_PENDING = 10_000;

/** The estimated heap of one indexed message: its text (two bytes a character, at most) and the rest. */
function bytesOf(content: string): number {
  return content.length * 2 + MESSAGE_OVERHEAD_BYTES;
}

/** Creates the per-node search (one per text_chat instance). */
export function createMessageSearch(options: MessageSearchOptions): MessageSearch {
  const now = options.now ?? (() => performance.now());
  const concurrency = options.readConcurrency ?? 16;
  // Insertion order is recency: a user is re-inserted on every search.
  const users = new Map<string, UserIndex>();
  let totalBytes = 0;
  // Stored text is indexed as rag and memory index it; request words ("thanks", "papers") stay in the
  // query: in a user's own chats they are as likely to be what is looked for as anything else.
  const tokenize = createTokenizer({ stopwords: DEFAULT_BM25.stopwords, stemming: DEFAULT_BM25.stemming });

  function newUserIndex(): UserIndex {
    return {
      index: createBm25Index(),
      messages: new Map(),
      sessions: new Map(),
      deleted: new Set(),
      replaced: new Set(),
      pending: [],
      syncedAt: Number.NEGATIVE_INFINITY,
      syncing: undefined,
      discarded: false,
      bytes: 0,
    };
  }

  function add(userId: string, entry: UserIndex, sessionId: string, message: Message): void {
    if (entry.deleted.has(sessionId) || entry.messages.has(message.id)) return;
    if (!SEARCHED_ROLES.has(message.role) || typeof message.content !== 'string' || message.content === '') {
      return;
    }
    if (entry.replaced.has(message.id) || isFailedRegeneration(message)) return;
    const replaced = replacedBy(message);
    if (replaced !== undefined) {
      entry.replaced.add(replaced);
      removeMessage(userId, entry, replaced);
    }
    let session = entry.sessions.get(sessionId);
    if (session === undefined) {
      // Noted before its log was read: the next resync reads the log from the start (skipping these).
      session = { parsed: 0, ids: [] };
      entry.sessions.set(sessionId, session);
    }
    entry.index.add({ id: message.id, docId: sessionId, text: message.content }, { ownerId: userId });
    entry.messages.set(message.id, {
      sessionId,
      role: message.role,
      timestamp: message.timestamp,
      content: message.content,
    });
    session.ids.push(message.id);
    entry.bytes += bytesOf(message.content);
    if (users.get(userId) === entry) totalBytes += bytesOf(message.content);
  }

  /** Takes one message out of the index (its session keeps its id, skipped when the session is dropped). */
  function removeMessage(userId: string, entry: UserIndex, messageId: string): void {
    const message = entry.messages.get(messageId);
    if (message === undefined) return;
    entry.index.removeChunk(messageId, { ownerId: userId });
    entry.messages.delete(messageId);
    entry.bytes -= bytesOf(message.content);
    if (users.get(userId) === entry) totalBytes -= bytesOf(message.content);
  }

  function dropSession(userId: string, entry: UserIndex, sessionId: string): void {
    const session = entry.sessions.get(sessionId);
    if (session === undefined) return;
    entry.sessions.delete(sessionId);
    entry.index.remove(sessionId);
    let freed = 0;
    for (const id of session.ids) {
      const message = entry.messages.get(id);
      if (message === undefined) continue;
      freed += bytesOf(message.content);
      entry.messages.delete(id);
    }
    entry.bytes -= freed;
    if (users.get(userId) === entry) totalBytes -= freed;
  }

  function indexPending(userId: string, entry: UserIndex): void {
    const pending = entry.pending;
    entry.pending = [];
    for (const { sessionId, message } of pending) add(userId, entry, sessionId, message);
  }

  /** Reads what is new in one session's log (from where it was parsed to) into the index. */
  async function readLog(
    storage: ModuleStorage & ReadableFrom,
    userId: string,
    entry: UserIndex,
    sessionId: string,
  ): Promise<void> {
    const key = messagesKey(userId, sessionId);
    const parsed = entry.sessions.get(sessionId)?.parsed ?? 0;
    const tail = await readFrom(storage, key, parsed);
    if (entry.deleted.has(sessionId)) return;
    if (tail === undefined) {
      dropSession(userId, entry, sessionId);
      return;
    }
    // Only whole lines: one being appended right now is read next time.
    const end = tail.lastIndexOf(NEWLINE) + 1;
    if (end === 0) return;
    const messages = parseJsonLines<Message>(tail.subarray(0, end), key);
    // Read meanwhile by another resync of the same index: its bytes are not parsed twice.
    const session = entry.sessions.get(sessionId) ?? { parsed: 0, ids: [] };
    if (session.parsed !== parsed) return;
    entry.sessions.set(sessionId, session);
    for (const message of messages) add(userId, entry, sessionId, message);
    session.parsed = parsed + end;
  }

  /** Brings the index in line with storage: sessions gone are dropped, every log read past its parsed end. */
  async function resync(
    storage: ModuleStorage & ReadableFrom,
    userId: string,
    entry: UserIndex,
  ): Promise<void> {
    const startedAt = now();
    const keys = await storage.list(userFolder(userId));
    const stored = new Set<string>();
    for (const key of keys) {
      if (!key.endsWith('/messages.jsonl')) continue;
      const sessionId = sessionIdOfKey(key);
      if (sessionId !== undefined && !entry.deleted.has(sessionId)) stored.add(sessionId);
    }
    for (const sessionId of [...entry.sessions.keys()]) {
      if (!stored.has(sessionId)) dropSession(userId, entry, sessionId);
    }
    const queue = [...stored];
    const worker = async () => {
      for (let sessionId = queue.pop(); sessionId !== undefined; sessionId = queue.pop()) {
        await readLog(storage, userId, entry, sessionId);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, worker));
    entry.syncedAt = startedAt;
  }

  function keep(userId: string, entry: UserIndex): void {
    const held = users.get(userId);
    if (held !== undefined) {
      users.delete(userId);
      totalBytes -= held.bytes;
    }
    if (entry.bytes > options.maxBytes) return;
    users.set(userId, entry);
    totalBytes += entry.bytes;
    for (const [oldestId, oldest] of users) {
      if (totalBytes <= options.maxBytes) break;
      users.delete(oldestId);
      totalBytes -= oldest.bytes;
    }
  }

  return {
    tokenize,

    async search(storage, userId, query, limit) {
      let entry = users.get(userId);
      if (entry === undefined) {
        entry = newUserIndex();
        // Held while it is built, so what is noted or deleted meanwhile applies to it.
        users.set(userId, entry);
      }
      if (entry.syncing === undefined && now() - entry.syncedAt >= options.resyncMs) {
        const held = entry;
        held.syncing = resync(storage, userId, held).finally(() => {
          held.syncing = undefined;
        });
      }
      if (entry.syncing !== undefined) {
        try {
          await entry.syncing;
        } catch (error) {
          // A failed first build leaves nothing worth keeping.
          if (entry.syncedAt === Number.NEGATIVE_INFINITY && users.get(userId) === entry) {
            users.delete(userId);
            totalBytes -= entry.bytes;
          }
          throw error;
        }
      }
      if (entry.discarded) return [];
      indexPending(userId, entry);
      keep(userId, entry);
      if (entry.messages.size === 0) return [];
      const hits = entry.index.search(query, { ownerId: userId, topK: limit, dropRequestWords: false });
      const ranked: RankedMessage[] = [];
      for (const hit of hits) {
        const message = entry.messages.get(hit.chunkId);
        if (message === undefined) continue;
        ranked.push({ messageId: hit.chunkId, ...message, score: hit.score });
      }
      return ranked;
    },

    noted(userId, sessionId, messages) {
      const entry = users.get(userId);
      if (entry === undefined) return;
      for (const message of messages) entry.pending.push({ sessionId, message });
      if (entry.pending.length > MAX_PENDING) indexPending(userId, entry);
    },

    forgetSession(userId, sessionId) {
      const entry = users.get(userId);
      if (entry === undefined) return;
      entry.deleted.add(sessionId);
      entry.pending = entry.pending.filter((note) => note.sessionId !== sessionId);
      dropSession(userId, entry, sessionId);
    },

    forgetUser(userId) {
      const entry = users.get(userId);
      if (entry === undefined) return;
      entry.discarded = true;
      users.delete(userId);
      totalBytes -= entry.bytes;
    },

    size() {
      let messages = 0;
      for (const entry of users.values()) messages += entry.messages.size;
      return { users: users.size, bytes: totalBytes, messages };
    },
  };
}
