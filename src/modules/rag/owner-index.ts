/**
 * Each owner's searchable state — a BM25 index holding only that owner's chunks, and the owner's document
 * records — loaded lazily on the owner's first request and kept durable without rewriting it per change:
 *
 * - `index/bm25/{owner}.json` is a snapshot (the records and the serialised index) up to a sequence number;
 * - `index/journal/{owner}.jsonl` gets one fsynced line per change (`put`/`delete` of a document) before the
 *   change is acknowledged.
 *
 * Loading reads the snapshot and replays the journal lines after it (a `put` re-reads the document's
 * metadata.json and content.txt, which were written before its line). A snapshot is written once
 * `snapshot_every` changes piled up, `snapshot_delay_ms` after the last change, and on dispose; then the
 * journal is emptied. Startup therefore costs nothing per document, and an owner's first query costs one
 * snapshot read, not a re-tokenisation of every chunk.
 */

import { ValidationError } from '../../core/errors.ts';
import type { ModuleLogger, ModuleStorage } from '../../core/module.ts';
import { appendJsonLine, readJsonLines } from '../../storage/json-lines.ts';
import {
  type Bm25Index,
  type Bm25IndexJSON,
  type Bm25Options,
  bm25IndexFromJSON,
  createBm25Index,
  isCurrentBm25Snapshot,
} from './bm25.ts';
import { contentHash, readContent, readRecord } from './documents.ts';
import type { ChunkRecord, DocumentRecord } from './types.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One owner's documents and index. Read freely; change only inside `OwnerIndexes.update`. */
export interface OwnerState {
  readonly ownerId: string;
  readonly index: Bm25Index;
  readonly documents: ReadonlyMap<string, DocumentRecord>;
  /** Chunk id → its document record and chunk (how a hit becomes a citation). */
  readonly chunks: ReadonlyMap<string, { record: DocumentRecord; chunk: ChunkRecord }>;
}

/** The changes a locked update may make; each is journaled (durable) before it is applied. */
export interface OwnerTransaction {
  readonly state: OwnerState;
  /** Records that the document's files now hold `record` and `text`, and indexes its chunks. */
  put(record: DocumentRecord, text: string): Promise<void>;
  /** Records that the document is gone, and drops its chunks. */
  remove(docId: string): Promise<void>;
}

export interface OwnerIndexesOptions {
  storage: ModuleStorage;
  bm25: Bm25Options;
  snapshotEvery: number;
  snapshotDelayMs: number;
  maxLoadedOwners: number;
  log: ModuleLogger;
}

/** The per-owner states of the rag module. */
export interface OwnerIndexes {
  /** The owner's state (loaded on first use). */
  get(ownerId: string): Promise<OwnerState>;
  /** Runs `change` with the owner's state; changes of one owner run one at a time, in call order. */
  update<T>(ownerId: string, change: (transaction: OwnerTransaction) => Promise<T>): Promise<T>;
  /** Owners held in memory now. */
  loadedOwners(): number;
  /** Writes every pending snapshot. */
  flush(): Promise<void>;
  /** Flushes, then stops the timers. */
  dispose(): Promise<void>;
}

interface JournalEntry {
  seq: number;
  op: 'put' | 'delete';
  docId: string;
}

interface OwnerSnapshot {
  format: 'parley-rag-owner';
  version: 1;
  ownerId: string;
  /** The last journal sequence number the snapshot includes. */
  sequence: number;
  documents: DocumentRecord[];
  bm25: Bm25IndexJSON;
}

interface Slot {
  state: MutableState;
  sequence: number;
  savedSequence: number;
  /** The tail of the owner's change queue. */
  queue: Promise<unknown>;
  pending: number;
  timer: NodeJS.Timeout | undefined;
}

interface MutableState extends OwnerState {
  readonly documents: Map<string, DocumentRecord>;
  readonly chunks: Map<string, { record: DocumentRecord; chunk: ChunkRecord }>;
}

/** A storage key segment for an owner id: reversible, and never `.`/`..`. */
function ownerSegment(ownerId: string): string {
  return encodeURIComponent(ownerId).replace(/\./g, '%2E');
}

function snapshotKey(ownerId: string): string {
  return `index/bm25/${ownerSegment(ownerId)}.json`;
}

function journalKey(ownerId: string): string {
  return `index/journal/${ownerSegment(ownerId)}.jsonl`;
}

/** What a chunk is filtered by: the document's own metadata plus the fields rag sets (which win). */
export function chunkMetadata(record: DocumentRecord): Record<string, unknown> {
  return {
    ...record.metadata,
    docId: record.docId,
    kind: record.kind,
    mediaType: record.mediaType,
    scope: record.sessionId === undefined ? 'library' : `session:${record.sessionId}`,
  };
}

/** Creates the per-owner states over rag's storage. */
export function createOwnerIndexes(options: OwnerIndexesOptions): OwnerIndexes {
  const { storage, log } = options;
  const slots = new Map<string, Slot>();
  const loading = new Map<string, Promise<Slot>>();
  let disposed = false;

  function emptyState(ownerId: string, index: Bm25Index = createBm25Index(options.bm25)): MutableState {
    return { ownerId, index, documents: new Map(), chunks: new Map() };
  }

  function apply(state: MutableState, record: DocumentRecord, text: string): void {
    drop(state, record.docId);
    const metadata = chunkMetadata(record);
    for (const chunk of record.chunks) {
      const indexed: { id: string; docId: string; text: string; title: string; heading?: string } = {
        id: chunk.id,
        docId: record.docId,
        text: text.slice(chunk.start, chunk.end),
        title: record.title,
      };
      if (chunk.heading !== undefined) indexed.heading = chunk.heading;
      state.index.add(indexed, { ownerId: state.ownerId, metadata });
      state.chunks.set(chunk.id, { record, chunk });
    }
    state.documents.set(record.docId, record);
  }

  function drop(state: MutableState, docId: string): void {
    const previous = state.documents.get(docId);
    if (previous === undefined) return;
    state.index.remove(docId, { ownerId: state.ownerId });
    for (const chunk of previous.chunks) state.chunks.delete(chunk.id);
    state.documents.delete(docId);
  }

  /** Reads a journaled document back; `undefined` (logged) when its files are gone or don't agree. */
  async function readStored(
    ownerId: string,
    docId: string,
  ): Promise<{ record: DocumentRecord; text: string } | undefined> {
    const record = await readRecord(storage, docId);
    const text = record === undefined ? undefined : await readContent(storage, docId);
    if (record === undefined || text === undefined) return undefined;
    if (record.ownerId !== ownerId || contentHash(text) !== record.contentHash) {
      // A crash between writing content.txt and metadata.json of an unacknowledged update: leave the
      // document out until it is ingested again (its re-ingest sees the mismatch and rewrites both).
      log.warn({ docId }, 'rag: document files do not agree; left out of the index until re-ingested');
      return undefined;
    }
    return { record, text };
  }

  async function rebuild(ownerId: string, records: DocumentRecord[]): Promise<MutableState> {
    const state = emptyState(ownerId);
    for (const { docId } of records) {
      const stored = await readStored(ownerId, docId);
      if (stored !== undefined) apply(state, stored.record, stored.text);
    }
    return state;
  }

  /** Every record of the owner, found by reading every document's metadata (only when the snapshot is lost). */
  async function scanRecords(ownerId: string): Promise<DocumentRecord[]> {
    const keys = (await storage.list('documents/')).filter((key) => key.endsWith('/metadata.json'));
    const records: DocumentRecord[] = [];
    for (const key of keys) {
      const docId = key.split('/')[1]!;
      const record = await readRecord(storage, docId).catch(() => undefined);
      if (record?.ownerId === ownerId) records.push(record);
    }
    return records;
  }

  async function load(ownerId: string): Promise<Slot> {
    let state: MutableState;
    let savedSequence = 0;
    // Rebuilt states are costly to make again: they get a snapshot soon.
    let rebuilt = false;
    const bytes = await storage.read(snapshotKey(ownerId));
    let snapshot: OwnerSnapshot | undefined;
    if (bytes !== undefined) {
      try {
        snapshot = JSON.parse(decoder.decode(bytes)) as OwnerSnapshot;
        if (
          snapshot.format !== 'parley-rag-owner' ||
          snapshot.version !== 1 ||
          snapshot.ownerId !== ownerId
        ) {
          throw new Error('not a rag owner snapshot of this owner');
        }
      } catch (error) {
        log.warn({ ownerId, err: error }, 'rag: unreadable index snapshot; rebuilding from the documents');
        snapshot = undefined;
      }
    }
    if (snapshot !== undefined) {
      savedSequence = snapshot.sequence;
      if (isCurrentBm25Snapshot(snapshot.bm25, options.bm25)) {
        state = emptyState(ownerId, bm25IndexFromJSON(snapshot.bm25));
        for (const record of snapshot.documents) {
          state.documents.set(record.docId, record);
          for (const chunk of record.chunks) state.chunks.set(chunk.id, { record, chunk });
        }
      } else {
        log.info({ ownerId }, 'rag: bm25 settings or index format changed; rebuilding the owner index');
        state = await rebuild(ownerId, snapshot.documents);
        rebuilt = true;
      }
    } else if (bytes !== undefined) {
      state = await rebuild(ownerId, await scanRecords(ownerId));
      rebuilt = true;
    } else {
      state = emptyState(ownerId);
    }

    let sequence = savedSequence;
    const journal = await readJsonLines<JournalEntry>(storage, journalKey(ownerId));
    for (const entry of journal) {
      if (entry.seq <= savedSequence) continue;
      sequence = Math.max(sequence, entry.seq);
      if (entry.op === 'delete') {
        drop(state, entry.docId);
      } else {
        const stored = await readStored(ownerId, entry.docId);
        if (stored === undefined) drop(state, entry.docId);
        else apply(state, stored.record, stored.text);
      }
    }
    return {
      state,
      sequence,
      savedSequence: rebuilt ? -1 : savedSequence,
      queue: Promise.resolve(),
      pending: 0,
      timer: undefined,
    };
  }

  async function slotOf(ownerId: string): Promise<Slot> {
    if (typeof ownerId !== 'string' || ownerId === '') {
      throw new ValidationError('ownerId must be a non-empty string', { details: { field: 'ownerId' } });
    }
    const loaded = slots.get(ownerId);
    if (loaded !== undefined) {
      // Map order is recency order: the least recently used owner comes first.
      slots.delete(ownerId);
      slots.set(ownerId, loaded);
      return loaded;
    }
    let pending = loading.get(ownerId);
    if (pending === undefined) {
      pending = load(ownerId).then(
        (slot) => {
          loading.delete(ownerId);
          slots.set(ownerId, slot);
          if (slot.sequence > slot.savedSequence) schedule(slot);
          evictIdle();
          return slot;
        },
        (error: unknown) => {
          loading.delete(ownerId);
          throw error;
        },
      );
      loading.set(ownerId, pending);
    }
    return pending;
  }

  /** Drops idle owners whose snapshot is current, least recently used first, down to the limit. */
  function evictIdle(): void {
    if (slots.size <= options.maxLoadedOwners) return;
    for (const [ownerId, slot] of slots) {
      if (slots.size <= options.maxLoadedOwners) return;
      if (slot.pending === 0 && slot.sequence === slot.savedSequence && slot.timer === undefined) {
        slots.delete(ownerId);
      }
    }
  }

  async function saveSnapshot(slot: Slot): Promise<void> {
    if (slot.sequence === slot.savedSequence) return;
    const { state } = slot;
    const snapshot: OwnerSnapshot = {
      format: 'parley-rag-owner',
      version: 1,
      ownerId: state.ownerId,
      sequence: slot.sequence,
      documents: [...state.documents.values()],
      bm25: state.index.toJSON(),
    };
    await storage.write(snapshotKey(state.ownerId), encoder.encode(JSON.stringify(snapshot)));
    // The lines up to `sequence` are in the snapshot now; a crash before this write only means they are
    // skipped on the next load (sequence numbers, not line counts, decide what is replayed).
    await storage.write(journalKey(state.ownerId), new Uint8Array(0));
    slot.savedSequence = slot.sequence;
  }

  /** Runs `task` after the owner's earlier changes; the queue survives a failing task. */
  function enqueue<T>(slot: Slot, task: () => Promise<T>): Promise<T> {
    slot.pending++;
    const run = slot.queue.then(task);
    slot.queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run.finally(() => {
      slot.pending--;
    });
  }

  function schedule(slot: Slot): void {
    if (disposed) return;
    if (slot.sequence - slot.savedSequence >= options.snapshotEvery) {
      void enqueue(slot, () => saveSnapshot(slot)).catch((error: unknown) =>
        log.error({ err: error, ownerId: slot.state.ownerId }, 'rag: writing the index snapshot failed'),
      );
      return;
    }
    if (slot.timer !== undefined) clearTimeout(slot.timer);
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      enqueue(slot, () => saveSnapshot(slot))
        .then(() => evictIdle())
        .catch((error: unknown) =>
          log.error({ err: error, ownerId: slot.state.ownerId }, 'rag: writing the index snapshot failed'),
        );
    }, options.snapshotDelayMs);
    slot.timer.unref();
  }

  async function flush(): Promise<void> {
    await Promise.all(
      [...slots.values()].map((slot) => {
        if (slot.timer !== undefined) {
          clearTimeout(slot.timer);
          slot.timer = undefined;
        }
        return enqueue(slot, () => saveSnapshot(slot));
      }),
    );
  }

  async function update<T>(
    ownerId: string,
    change: (transaction: OwnerTransaction) => Promise<T>,
  ): Promise<T> {
    const slot = await slotOf(ownerId);
    // An idle owner may have been dropped while we waited; its successor holds the journal now.
    if (slots.get(ownerId) !== slot) return update(ownerId, change);
    const journal = async (op: JournalEntry['op'], docId: string) => {
      const entry: JournalEntry = { seq: slot.sequence + 1, op, docId };
      await appendJsonLine(storage, journalKey(ownerId), entry);
      slot.sequence = entry.seq;
    };
    const transaction: OwnerTransaction = {
      state: slot.state,
      async put(record, text) {
        await journal('put', record.docId);
        apply(slot.state, record, text);
      },
      async remove(docId) {
        await journal('delete', docId);
        drop(slot.state, docId);
      },
    };
    try {
      return await enqueue(slot, () => change(transaction));
    } finally {
      // Also after a failure: whatever the change journaled before it failed is part of the state.
      if (slot.sequence > slot.savedSequence) schedule(slot);
    }
  }

  return {
    async get(ownerId) {
      return (await slotOf(ownerId)).state;
    },

    update,

    loadedOwners: () => slots.size,

    flush,

    async dispose() {
      await Promise.all([...loading.values()].map((pending) => pending.catch(() => undefined)));
      await flush();
      disposed = true;
    },
  };
}
