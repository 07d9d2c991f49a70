/**
 * Each user's long-term memory: what they said in their chats, kept in the seed's
 * `long_term/{user_id}/memory_bank.jsonl` (under the module's `memory/` root) and searched with the BM25
 * index of src/retrieval, so a new conversation can be given what the user said in earlier ones.
 *
 * The bank is a log: a memory is a line `{ id, sessionId, time, text }` appended. Forgetting appends
 * `{ forget: [ids] }` (every node leaves them out from its next read on), then rewrites the bank without
 * the forgotten memories — what a user asked to forget does not stay on disk — and names the rewritten bank
 * by a new generation in `long_term/{user_id}/generation`. A node keeps the banks of recently active users
 * parsed and indexed, and before each use reads the generation and only the bank's bytes past those it
 * parsed: another node's appends are seen at once, a long bank is never read again whole, and a bank
 * another node rewrote is read anew.
 */

import { ValidationError } from '../../core/errors.ts';
import { isIdSegment, newId } from '../../core/ids.ts';
import type { ModuleStorage } from '../../core/module.ts';
import { type Bm25Index, createBm25Index } from '../../retrieval/bm25.ts';
import { concatBytes } from '../../storage/bytes.ts';
import { appendJsonLine, encodeJsonLine } from '../../storage/json-lines.ts';
import { readFrom } from '../../storage/read-from.ts';

/** One memory: a message the user wrote. */
export interface Memory {
  /** The message's id. */
  id: string;
  sessionId: string;
  /** When it was said (the message's timestamp). */
  time: string;
  text: string;
}

/** A memory found for a query, best first. */
export interface RecalledMemory extends Memory {
  score: number;
}

/** What forgetting was asked: one memory, a session's, or all of them. */
export type ForgetWhat = { memoryId: string } | { sessionId: string } | { all: true };

export interface MemoryBankOptions {
  /** Users whose banks stay parsed and indexed on this node (least recently used go first). */
  maxUsers: number;
}

export interface MemoryBanks {
  /** Adds a memory to the user's bank, after the user's earlier changes (durable when it resolves). */
  remember(userId: string, memory: Memory): Promise<void>;
  /** The user's memories best matching `query`, leaving out those of `excludeSessionId`. */
  recall(
    userId: string,
    query: string,
    options: { limit: number; excludeSessionId?: string },
  ): Promise<RecalledMemory[]>;
  /** The user's memories, newest first. */
  list(userId: string, options: { limit: number; before?: string }): Promise<Memory[]>;
  /** Forgets memories of the user, after the changes asked before; resolves with how many were forgotten. */
  forget(userId: string, what: ForgetWhat): Promise<number>;
  /** Deletes the user's bank whole (an erased user); resolves with how many memories it held. */
  erase(userId: string): Promise<number>;
  /** Resolves once every change asked so far is done (before the module stops). */
  settled(): Promise<void>;
}

interface Bank {
  /** The generation of the bank file parsed ('' before its first rewrite). */
  generation: string;
  /** Bytes of the log parsed so far (up to the last whole line). */
  parsed: number;
  memories: Map<string, Memory>;
  index: Bm25Index;
}

const decoder = new TextDecoder();
const NEWLINE = 0x0a;

function bankKey(userId: string): string {
  if (!isIdSegment(userId)) {
    throw new ValidationError(`not a user id: "${userId}"`, { details: { field: 'userId' } });
  }
  return `long_term/${userId}/memory_bank.jsonl`;
}

/** Names the bank's current generation (bumped by every rewrite); written after the bank it names. */
function generationKey(userId: string): string {
  return `long_term/${userId}/generation`;
}

const encoder = new TextEncoder();

/** The memory banks in `storage` (the module's storage). */
export function createMemoryBanks(storage: ModuleStorage, options: MemoryBankOptions): MemoryBanks {
  // Least recently used first (a Map iterates in insertion order).
  const banks = new Map<string, Bank>();
  // One catch-up at a time per user: two would parse the same new lines twice.
  const catchingUp = new Map<string, Promise<Bank>>();
  // A user's changes, one after another: a forget asked while a message is being remembered must find it.
  const changes = new Map<string, Promise<unknown>>();

  function serially<T>(userId: string, change: () => Promise<T>): Promise<T> {
    const previous = changes.get(userId) ?? Promise.resolve();
    const next = previous.then(change, change);
    const settled = next.then(
      () => {},
      () => {},
    );
    changes.set(userId, settled);
    void settled.then(() => {
      if (changes.get(userId) === settled) changes.delete(userId);
    });
    return next;
  }

  function apply(bank: Bank, userId: string, line: string): void {
    let record: Partial<Memory> & { forget?: unknown };
    try {
      record = JSON.parse(line);
    } catch {
      return; // a line that is not JSON (hand-edited?) is skipped, not fatal
    }
    if (Array.isArray(record.forget)) {
      for (const id of record.forget) {
        if (typeof id === 'string' && bank.memories.delete(id)) bank.index.remove(id, { ownerId: userId });
      }
      return;
    }
    const { id, sessionId, time, text } = record;
    if (
      typeof id !== 'string' ||
      typeof sessionId !== 'string' ||
      typeof time !== 'string' ||
      typeof text !== 'string'
    ) {
      return;
    }
    if (bank.memories.has(id)) return; // a turn delivered again stores its message once; its memory too
    bank.memories.set(id, { id, sessionId, time, text });
    bank.index.add({ id, docId: id, text }, { ownerId: userId });
  }

  function emptyBank(generation: string): Bank {
    return { generation, parsed: 0, memories: new Map(), index: createBm25Index() };
  }

  async function catchUp(userId: string): Promise<Bank> {
    const stored = await storage.read(generationKey(userId));
    const generation = stored === undefined ? '' : decoder.decode(stored);
    let bank = banks.get(userId);
    banks.delete(userId);
    // Rewritten since this node parsed it (or never parsed): its offsets mean nothing now, read it anew.
    if (bank === undefined || bank.generation !== generation) bank = emptyBank(generation);
    banks.set(userId, bank);
    while (banks.size > options.maxUsers) banks.delete(banks.keys().next().value as string);

    const tail = await readFrom(storage, bankKey(userId), bank.parsed);
    if (tail === undefined || tail.length === 0) return bank;
    // Only whole lines: a line being appended right now is read on the next catch-up.
    const end = tail.lastIndexOf(NEWLINE) + 1;
    if (end === 0) return bank;
    for (const line of decoder.decode(tail.subarray(0, end)).split('\n')) {
      if (line !== '') apply(bank, userId, line);
    }
    bank.parsed += end;
    return bank;
  }

  function current(userId: string): Promise<Bank> {
    const running = catchingUp.get(userId);
    if (running !== undefined) return running;
    const started = catchUp(userId).finally(() => catchingUp.delete(userId));
    catchingUp.set(userId, started);
    return started;
  }

  function append(userId: string, record: unknown): Promise<void> {
    return appendJsonLine(storage, bankKey(userId), record);
  }

  async function forgetNow(userId: string, what: ForgetWhat): Promise<number> {
    const bank = await current(userId);
    const ids =
      'memoryId' in what
        ? bank.memories.has(what.memoryId)
          ? [what.memoryId]
          : []
        : [...bank.memories.values()]
            .filter((memory) => 'all' in what || memory.sessionId === what.sessionId)
            .map((memory) => memory.id);
    if (ids.length === 0) return 0;
    // First the forget line: every node leaves them out from its next read on, even if the rewrite fails.
    await append(userId, { forget: ids });
    await rewrite(userId);
    return ids.length;
  }

  /**
   * Writes the bank anew with only the memories not forgotten (the bank's file is replaced whole), then
   * its new generation, so other nodes read it anew. A memory another node appends between this node's
   * last read and the replace is lost with the old file (a narrow window, on several nodes only).
   */
  async function rewrite(userId: string): Promise<void> {
    const bank = await current(userId);
    const lines = [...bank.memories.values()].map((memory) => encodeJsonLine(memory));
    const generation = newId();
    if (lines.length === 0) await storage.delete(bankKey(userId));
    else await storage.write(bankKey(userId), concatBytes(lines));
    await storage.write(generationKey(userId), encoder.encode(generation));
    // Read anew on next use (one read of the smaller bank): a catch-up that ran during the replace may
    // have parsed from an offset into the old file.
    banks.delete(userId);
  }

  return {
    remember(userId, memory) {
      const { id, sessionId, time, text } = memory;
      return serially(userId, () => append(userId, { id, sessionId, time, text }));
    },

    async recall(userId, query, recallOptions) {
      const bank = await current(userId);
      if (bank.memories.size === 0 || query.trim() === '') return [];
      // Memories of the session asking are in its history already: ask for enough to leave them out.
      const wanted = recallOptions.limit;
      const hits = bank.index.search(query, { ownerId: userId, topK: wanted * 4 + 8 });
      const recalled: RecalledMemory[] = [];
      for (const hit of hits) {
        const memory = bank.memories.get(hit.docId);
        if (memory === undefined || memory.sessionId === recallOptions.excludeSessionId) continue;
        recalled.push({ ...memory, score: hit.score });
        if (recalled.length === wanted) break;
      }
      return recalled;
    },

    async list(userId, listOptions) {
      const bank = await current(userId);
      const before = listOptions.before;
      return [...bank.memories.values()]
        .filter((memory) => before === undefined || memory.time < before)
        .sort((a, b) => (a.time === b.time ? (a.id < b.id ? 1 : -1) : a.time < b.time ? 1 : -1))
        .slice(0, listOptions.limit);
    },

    forget(userId, what) {
      return serially(userId, () => forgetNow(userId, what));
    },

    erase(userId) {
      return serially(userId, async () => {
        const held = (await current(userId)).memories.size;
        await storage.delete(bankKey(userId));
        await storage.delete(generationKey(userId));
        banks.delete(userId);
        return held;
      });
    },

    async settled() {
      await Promise.all(changes.values());
    },
  };
}
