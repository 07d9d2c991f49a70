/**
 * Each owner's searchable state — a BM25 index holding only that owner's chunks, and the owner's document
 * records — loaded lazily on the owner's first request and kept current on every node that shares the
 * storage. Besides the documents' own files (documents.ts), each owner has:
 *
 * - a change log, `index/log/{owner}/{generation}.jsonl`: after a change has written (or deleted) a
 *   document's files, it appends one line naming the document (`{ doc, rev, id }`), fsynced before the
 *   change is acknowledged. A line says "read this document again": a node that finds lines after the
 *   point it has read to reads those documents' files and nothing else, so lines from several nodes,
 *   in any order and even twice, lead to the same state. Appends are atomic, so writers on several nodes
 *   at once — which no lock serialises — lose none of each other's lines.
 * - a snapshot, `index/bm25/{owner}.json`: records, their revisions, the serialised index, and the log
 *   position (generation, byte offset) they include. Written `snapshot_delay_ms` after a node's last
 *   change (at once after `snapshot_every`), when a log generation is closed, and on dispose. Any node may
 *   write it; an older one only means more lines to read after it.
 *
 * Before answering, a node reads the log from where it stopped (one small read; `version_check_ms` spaces
 * them out, `rag.index.changed` from another node ends the wait). A writer reads the log after its own
 * append too, taking in what other nodes appended meanwhile.
 *
 * A log is never rewritten (a rewrite could drop a line another node appended meanwhile): past
 * `LOG_GENERATION_BYTES` a writer closes it. It creates the next generation (its first line a header
 * `{ generation }`), appends `{ next }` to the current one, reads the current one to its end, and stores
 * a snapshot at the new generation. A writer whose line landed after such a marker appends it again to
 * the next generation (the closer may have read the log before it). Generations between the first and
 * the one just closed are deleted then; a node or snapshot still pointing into a deleted one (or into
 * one a late writer's append made again, without its header) loads the owner afresh, from the snapshot,
 * else from every document's record. The first generation stays, so a node that has read nothing of an
 * owner can tell a closed log from none.
 *
 * Owners stored before the log (a snapshot of format version 1 and `index/journal/{owner}.jsonl`) are
 * loaded from those the first time, then stored in this form.
 */

import { randomBytes } from 'node:crypto';
import { PlatformError, ValidationError } from '../../core/errors.ts';
import type { ModuleLogger, ModuleStorage } from '../../core/module.ts';
import {
  type Bm25Index,
  type Bm25IndexJSON,
  type Bm25Options,
  bm25IndexFromJSON,
  createBm25Index,
  isCurrentBm25Snapshot,
} from '../../retrieval/bm25.ts';
import { readJsonLines } from '../../storage/json-lines.ts';
import {
  deleteDocumentFiles,
  readRecord,
  readStoredDocument,
  type StoredDocument,
  writeDocument,
} from './documents.ts';
import type { ChunkRecord, DocumentRecord } from './types.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const NEWLINE = 0x0a;

/** A log generation's size past which a writer closes it (about 50 lines): every request reads it. */
export const LOG_GENERATION_BYTES = 4096;
/** Documents read at once when the log names several (a load without snapshot reads them all). */
const READ_CONCURRENCY = 16;
/** Writes of one document's files before giving up when another writer keeps crossing them. */
const MAX_WRITE_ATTEMPTS = 8;

/** One owner's documents and index. Read freely; change only inside `OwnerIndexes.update`. */
export interface OwnerState {
  readonly ownerId: string;
  readonly index: Bm25Index;
  readonly documents: ReadonlyMap<string, DocumentRecord>;
  /** Chunk id → its document record and chunk (how a hit becomes a citation). */
  readonly chunks: ReadonlyMap<string, { record: DocumentRecord; chunk: ChunkRecord }>;
}

/** The changes a locked update may make; each is durable before the update is acknowledged. */
export interface OwnerTransaction {
  readonly state: OwnerState;
  /** Writes the document's files (`record`, `text`) and indexes its chunks. */
  put(record: DocumentRecord, text: string): Promise<void>;
  /** Deletes the document's files and drops its chunks. */
  remove(docId: string): Promise<void>;
}

/** `rag.index.changed`: an owner's documents changed; `version` is the id of the change's first log line. */
export interface OwnerIndexChange {
  ownerId: string;
  version: string;
}

export interface OwnerIndexesOptions {
  storage: ModuleStorage;
  bm25: Bm25Options;
  snapshotEvery: number;
  snapshotDelayMs: number;
  maxLoadedOwners: number;
  /** How long a request may use an owner's state without reading its log again (0: every request). */
  versionCheckMs: number;
  log: ModuleLogger;
  /** Told after this node changed an owner's documents (rag emits `rag.index.changed`). */
  changed?: (change: OwnerIndexChange) => Promise<void>;
  /** Told after this node took in another node's changes of an owner (the dense retriever reloads it). */
  refreshed?: (ownerId: string) => Promise<void>;
  /** Log generation size that closes it (tests make it small). Default LOG_GENERATION_BYTES. */
  logGenerationBytes?: number;
  now?: () => number;
}

/** The per-owner states of the rag module. */
export interface OwnerIndexes {
  /** The owner's state (loaded on first use, brought up to date with storage first). */
  get(ownerId: string): Promise<OwnerState>;
  /**
   * Runs `change` with the owner's state, brought up to date first; changes of one owner on this node run
   * one at a time, in call order.
   */
  update<T>(ownerId: string, change: (transaction: OwnerTransaction) => Promise<T>): Promise<T>;
  /** Another node changed the owner's documents: the next request reads the log whatever `versionCheckMs`. */
  invalidate(change: OwnerIndexChange): void;
  /** Owners held in memory now. */
  loadedOwners(): number;
  /** Writes every pending snapshot. */
  flush(): Promise<void>;
  /**
   * Deletes the owner's index files — every log generation, the snapshot, a legacy journal — and drops the
   * owner from memory (an erased user, whose documents are deleted first). Another node that still holds
   * the owner finds its log gone and loads it afresh: from no snapshot and no records, empty.
   */
  erase(ownerId: string): Promise<void>;
  /** Flushes, then stops the timers. */
  dispose(): Promise<void>;
}

/** A line of the change log. */
type LogLine =
  /** Read document `doc` again; `rev` is the revision its writer stored (none: deleted). */
  | { doc: string; rev?: string; id: string }
  /** This generation is closed: read on in generation `next`. */
  | { next: number }
  /** The first line of a generation (appending it creates the file). */
  | { generation: number };

type ChangeLine = Extract<LogLine, { doc: string }>;

interface OwnerSnapshot {
  format: 'parley-rag-owner';
  version: 2;
  ownerId: string;
  /** The log position the snapshot includes: every line before `offset` in `generation`, and older ones. */
  generation: number;
  offset: number;
  /** Document id → the revision of the record below. */
  revisions: Record<string, string>;
  documents: DocumentRecord[];
  bm25: Bm25IndexJSON;
}

/** The snapshot format before the change log (version 1), with its journal. */
interface LegacySnapshot {
  format: 'parley-rag-owner';
  version: 1;
  ownerId: string;
  sequence: number;
  documents: DocumentRecord[];
}

interface LegacyJournalEntry {
  seq: number;
  op: 'put' | 'delete';
  docId: string;
}

interface Slot {
  state: MutableState;
  /** Document id → revision of the record the state holds. */
  revisions: Map<string, string>;
  /** The log position the state is current with. */
  generation: number;
  offset: number;
  /** When the log was last read (for `versionCheckMs`). */
  checkedAt: number;
  /** The key of log generation `generation` (made once, not on every request's check). */
  logKey: { generation: number; key: string } | undefined;
  /** A catch-up queued or running, which later requests wait for instead of queueing another. */
  catchingUp: Promise<unknown> | undefined;
  /** Changes taken into memory since the last snapshot. */
  unsaved: number;
  /** The tail of the owner's change queue. */
  queue: Promise<unknown>;
  pending: number;
  timer: NodeJS.Timeout | undefined;
}

interface MutableState extends OwnerState {
  readonly documents: Map<string, DocumentRecord>;
  readonly chunks: Map<string, { record: DocumentRecord; chunk: ChunkRecord }>;
}

/**
 * What a change sees of its owner: `state` is the slot's state of the moment (a catch-up may replace it).
 * A class, not an object literal with a getter (lint/no-object-literal-accessor.grit).
 */
class SlotTransaction implements OwnerTransaction {
  readonly #slot: Slot;
  readonly put: OwnerTransaction['put'];
  readonly remove: OwnerTransaction['remove'];

  constructor(slot: Slot, put: OwnerTransaction['put'], remove: OwnerTransaction['remove']) {
    this.#slot = slot;
    this.put = put;
    this.remove = remove;
  }

  get state(): OwnerState {
    return this.#slot.state;
  }
}

/** A storage key segment for an owner id: reversible, and never `.`/`..`. */
function ownerSegment(ownerId: string): string {
  return encodeURIComponent(ownerId).replace(/\./g, '%2E');
}

function snapshotKey(ownerId: string): string {
  return `index/bm25/${ownerSegment(ownerId)}.json`;
}

function legacyJournalKey(ownerId: string): string {
  return `index/journal/${ownerSegment(ownerId)}.jsonl`;
}

function logFolder(ownerId: string): string {
  return `index/log/${ownerSegment(ownerId)}/`;
}

/** Zero-padded, so a listing sorts generations in order. */
function logKey(ownerId: string, generation: number): string {
  return `${logFolder(ownerId)}${String(generation).padStart(10, '0')}.jsonl`;
}

/** The first line of every generation. */
function headerOf(generation: number): string {
  return `${JSON.stringify({ generation })}\n`;
}

function lineBytes(lines: readonly LogLine[]): Uint8Array {
  return encoder.encode(lines.map((line) => `${JSON.stringify(line)}\n`).join(''));
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

function pause(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}

/** Creates the per-owner states over rag's storage. */
export function createOwnerIndexes(options: OwnerIndexesOptions): OwnerIndexes {
  const { storage, log } = options;
  const now = options.now ?? Date.now;
  const generationBytes = options.logGenerationBytes ?? LOG_GENERATION_BYTES;
  const slots = new Map<string, Slot>();
  const loading = new Map<string, Promise<Slot>>();
  let disposed = false;

  function emptyState(ownerId: string, index: Bm25Index = createBm25Index(options.bm25)): MutableState {
    return { ownerId, index, documents: new Map(), chunks: new Map() };
  }

  function newSlot(state: MutableState): Slot {
    return {
      state,
      revisions: new Map(),
      generation: 1,
      offset: 0,
      checkedAt: 0,
      logKey: undefined,
      catchingUp: undefined,
      unsaved: 0,
      queue: Promise.resolve(),
      pending: 0,
      timer: undefined,
    };
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

  /** Applies a document as storage holds it now (or drops it). Returns 1 when the state changed. */
  function takeIn(slot: Slot, docId: string, stored: StoredDocument): number {
    const { state } = slot;
    if (stored.state === 'stored' && stored.record.ownerId === state.ownerId) {
      if (slot.revisions.get(docId) === stored.revision) return 0;
      apply(state, stored.record, stored.text);
      slot.revisions.set(docId, stored.revision);
      return 1;
    }
    if (stored.state === 'torn') {
      // A write cut short (never acknowledged), or one going on now, whose log line brings us back here.
      log.warn({ docId }, 'rag: document files do not agree; left out of the index until written again');
    }
    if (!state.documents.has(docId)) return 0;
    drop(state, docId);
    slot.revisions.delete(docId);
    return 1;
  }

  /** Reads documents again and takes them in; returns how many changed in memory. */
  async function reread(slot: Slot, docIds: Iterable<string>): Promise<number> {
    const pending = [...docIds];
    let changed = 0;
    const worker = async () => {
      for (let docId = pending.pop(); docId !== undefined; docId = pending.pop()) {
        changed += takeIn(slot, docId, await readStoredDocument(storage, docId));
      }
    };
    await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, pending.length) }, worker));
    return changed;
  }

  async function generations(ownerId: string): Promise<number[]> {
    const folder = logFolder(ownerId);
    return (await storage.list(folder))
      .map((key) => Number.parseInt(key.slice(folder.length), 10))
      .filter((generation) => Number.isSafeInteger(generation) && generation > 0)
      .sort((left, right) => left - right);
  }

  /**
   * Reads the log from the slot's position to its end, following closed generations, and takes in the
   * documents it names. Returns the change lines' ids, each with whether it came after a `next` marker
   * in its generation; `undefined` when the slot's generation is gone and the owner was loaded afresh.
   * Runs in the owner's queue.
   */
  async function catchUp(slot: Slot): Promise<Map<string, boolean> | undefined> {
    const { ownerId } = slot.state;
    const ids = new Map<string, boolean>();
    // Document id → the revisions its lines name (undefined: deleted).
    const named = new Map<string, Set<string | undefined>>();
    let { generation, offset } = slot;
    for (;;) {
      const tail = await readTail(ownerId, generation, offset);
      if (tail === 'gone') {
        await reload(slot);
        return undefined;
      }
      // A torn last line (a crash mid-append) is not read; the driver cuts it off before the next append.
      const end = tail.lastIndexOf(NEWLINE) + 1;
      if (end === 0) break;
      let next: number | undefined;
      for (const text of decoder.decode(tail.subarray(0, end)).split('\n')) {
        if (text === '') continue;
        let line: LogLine;
        try {
          line = JSON.parse(text) as LogLine;
        } catch {
          continue;
        }
        if ('next' in line) next ??= line.next;
        else if ('doc' in line) {
          ids.set(line.id, next !== undefined);
          const revisions = named.get(line.doc) ?? new Set();
          named.set(line.doc, revisions.add(line.rev));
        }
      }
      offset += end;
      if (next === undefined) break;
      generation = next;
      offset = 0;
    }
    // Lines of this node's own writes name the revision the state holds: nothing to read.
    const stale = [...named]
      .filter(([docId, revisions]) =>
        [...revisions].some((revision) => revision !== slot.revisions.get(docId)),
      )
      .map(([docId]) => docId);
    const changed = await reread(slot, stale);
    // Only now: a request that finds nothing after this position must find these documents taken in.
    slot.generation = generation;
    slot.offset = offset;
    slot.checkedAt = now();
    if (changed > 0) {
      slot.unsaved += changed;
      log.debug({ ownerId, changed }, 'rag: took in document changes made on another node');
      await options.refreshed?.(ownerId);
    }
    return ids;
  }

  /**
   * A log generation from `offset` on; `gone` when the generation was deleted (a node closed two
   * since), or when what is there now is not it: a writer that still appended to a deleted generation made
   * the key again, without the header line every generation starts with.
   */
  async function readTail(ownerId: string, generation: number, offset: number): Promise<Uint8Array | 'gone'> {
    const bytes = await storage.read(logKey(ownerId, generation));
    // Nothing logged yet (the first generation is never deleted).
    if (bytes === undefined) return generation === 1 && offset === 0 ? new Uint8Array(0) : 'gone';
    if (bytes.length < offset || !startsWithHeader(bytes, generation)) return 'gone';
    return bytes.subarray(offset);
  }

  function startsWithHeader(bytes: Uint8Array, generation: number): boolean {
    const header = headerOf(generation);
    return decoder.decode(bytes.subarray(0, header.length)) === header;
  }

  /** Loads the owner afresh into an existing slot (its log generation is gone). */
  async function reload(slot: Slot): Promise<void> {
    const fresh = await load(slot.state.ownerId);
    log.info(
      { ownerId: slot.state.ownerId },
      'rag: the owner log moved on past this node; loaded the owner again',
    );
    Object.assign(slot, {
      state: fresh.state,
      revisions: fresh.revisions,
      generation: fresh.generation,
      offset: fresh.offset,
      unsaved: slot.unsaved + fresh.unsaved,
    });
    await options.refreshed?.(slot.state.ownerId);
  }

  /** The owner's snapshot in this format or the one before, or whether it is unreadable. */
  function parseSnapshot(
    ownerId: string,
    bytes: Uint8Array | undefined,
  ): { snapshot?: OwnerSnapshot; legacy?: LegacySnapshot; unreadable: boolean } {
    if (bytes === undefined) return { unreadable: false };
    try {
      const parsed = JSON.parse(decoder.decode(bytes)) as OwnerSnapshot | LegacySnapshot;
      if (parsed.format !== 'parley-rag-owner' || parsed.ownerId !== ownerId)
        throw new Error('not this owner');
      if (parsed.version === 2) return { snapshot: parsed, unreadable: false };
      if (parsed.version === 1) return { legacy: parsed, unreadable: false };
      throw new Error(`snapshot format version ${String((parsed as { version: unknown }).version)}`);
    } catch (error) {
      log.warn({ ownerId, err: error }, 'rag: unreadable index snapshot; reading the documents instead');
      return { unreadable: true };
    }
  }

  async function load(ownerId: string): Promise<Slot> {
    const stored = parseSnapshot(ownerId, await storage.read(snapshotKey(ownerId)));
    const existing = await generations(ownerId);
    const { snapshot } = stored;
    // Lines of a deleted generation cannot be read again: such a snapshot (or none, once the log was
    // closed) is no starting point.
    const followable = async (generation: number) => {
      if (existing.length === 0) return generation === 1;
      if (!existing.includes(generation)) return false;
      const bytes = await storage.read(logKey(ownerId, generation));
      return bytes !== undefined && startsWithHeader(bytes, generation);
    };
    let slot: Slot;
    if (snapshot !== undefined && (await followable(snapshot.generation))) {
      if (isCurrentBm25Snapshot(snapshot.bm25, options.bm25)) {
        slot = newSlot(emptyState(ownerId, bm25IndexFromJSON(snapshot.bm25)));
        for (const record of snapshot.documents) {
          const revision = snapshot.revisions[record.docId];
          if (revision === undefined) continue;
          slot.state.documents.set(record.docId, record);
          for (const chunk of record.chunks) slot.state.chunks.set(chunk.id, { record, chunk });
          slot.revisions.set(record.docId, revision);
        }
      } else {
        log.info({ ownerId }, 'rag: bm25 settings or index format changed; rebuilding the owner index');
        slot = newSlot(emptyState(ownerId));
        slot.unsaved = await reread(
          slot,
          snapshot.documents.map((record) => record.docId),
        );
      }
      slot.generation = snapshot.generation;
      slot.offset = snapshot.offset;
    } else if (
      snapshot === undefined &&
      !stored.unreadable &&
      existing.every((generation) => generation === 1)
    ) {
      // Never snapshotted in this form: the log from its start, after what the earlier format stored.
      slot = await loadLegacy(ownerId, stored.legacy);
    } else {
      slot = await loadFromRecords(ownerId, existing);
    }
    await catchUp(slot);
    return slot;
  }

  /**
   * The documents an owner had in the format before the log (none when it has none), read from their
   * files: once per owner, after which a snapshot in this form replaces it.
   */
  async function loadLegacy(ownerId: string, legacy: LegacySnapshot | undefined): Promise<Slot> {
    const slot = newSlot(emptyState(ownerId));
    const journal = await readJsonLines<LegacyJournalEntry>(storage, legacyJournalKey(ownerId));
    const sequence = legacy?.sequence ?? 0;
    // Deleted ones among them read as missing.
    const named = new Set([
      ...(legacy?.documents ?? []).map((record) => record.docId),
      ...journal.filter((entry) => entry.seq > sequence).map((entry) => entry.docId),
    ]);
    if (named.size === 0) return slot;
    slot.unsaved = Math.max(await reread(slot, named), 1);
    log.info(
      { ownerId, documents: slot.state.documents.size },
      'rag: loaded an owner stored before the change log',
    );
    return slot;
  }

  /**
   * The owner from every document's record (a scan of `documents/`): when no snapshot can be followed.
   * The log position is taken first, so whatever changes during the scan is read after it.
   */
  async function loadFromRecords(ownerId: string, existing: number[]): Promise<Slot> {
    const slot = newSlot(emptyState(ownerId));
    const last = existing.at(-1);
    if (last !== undefined) {
      const bytes = await storage.read(logKey(ownerId, last));
      slot.generation = last;
      slot.offset = bytes === undefined ? 0 : bytes.lastIndexOf(NEWLINE) + 1;
    }
    log.warn({ ownerId }, 'rag: no usable index snapshot; reading every document record to find the owner’s');
    const keys = (await storage.list('documents/')).filter((key) => key.endsWith('/metadata.json'));
    const owned: string[] = [];
    for (const key of keys) {
      const docId = key.split('/')[1]!;
      const record = await readRecord(storage, docId).catch(() => undefined);
      if (record?.ownerId === ownerId) owned.push(docId);
    }
    slot.unsaved = Math.max(await reread(slot, owned), 1);
    return slot;
  }

  /** The owner's slot when it is in memory (marked as the most recently used), without waiting. */
  function loadedSlot(ownerId: string): Slot | undefined {
    const loaded = slots.get(ownerId);
    if (loaded !== undefined) {
      // Map order is recency order: the least recently used owner comes first.
      slots.delete(ownerId);
      slots.set(ownerId, loaded);
    }
    return loaded;
  }

  async function slotOf(ownerId: string): Promise<Slot> {
    if (typeof ownerId !== 'string' || ownerId === '') {
      throw new ValidationError('ownerId must be a non-empty string', { details: { field: 'ownerId' } });
    }
    const loaded = loadedSlot(ownerId);
    if (loaded !== undefined) return loaded;
    let pending = loading.get(ownerId);
    if (pending === undefined) {
      pending = load(ownerId).then(
        (slot) => {
          loading.delete(ownerId);
          slots.set(ownerId, slot);
          if (slot.unsaved > 0) schedule(slot);
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

  /** The key of the log generation the slot is current with. */
  function currentLogKey(slot: Slot): string {
    const { generation } = slot;
    if (slot.logKey?.generation !== generation) {
      slot.logKey = { generation, key: logKey(slot.state.ownerId, generation) };
    }
    return slot.logKey.key;
  }

  /**
   * Whether the log, as `bytes` of the slot's generation, holds nothing past the slot's position: what
   * `readTail` tells by an empty tail, without making one (this check runs before every request).
   */
  function caughtUp(slot: Slot, bytes: Uint8Array | undefined): boolean {
    // Nothing logged yet (the first generation is never deleted), and nothing read.
    if (bytes === undefined) return slot.generation === 1 && slot.offset === 0;
    return bytes.length === slot.offset && startsWithHeader(bytes, slot.generation);
  }

  /** Makes sure the slot's state is the stored one (within `versionCheckMs`) before it is read. */
  async function current(slot: Slot): Promise<void> {
    if (options.versionCheckMs > 0 && now() - slot.checkedAt < options.versionCheckMs) return;
    if (slot.catchingUp === undefined && caughtUp(slot, await storage.read(currentLogKey(slot)))) {
      slot.checkedAt = now();
      return;
    }
    slot.catchingUp ??= enqueue(slot, () => catchUp(slot)).finally(() => {
      slot.catchingUp = undefined;
    });
    await slot.catchingUp;
  }

  /** Drops idle owners whose snapshot is current, least recently used first, down to the limit. */
  function evictIdle(): void {
    if (slots.size <= options.maxLoadedOwners) return;
    for (const [ownerId, slot] of slots) {
      if (slots.size <= options.maxLoadedOwners) return;
      if (slot.pending === 0 && slot.unsaved === 0 && slot.timer === undefined) slots.delete(ownerId);
    }
  }

  /** Writes the slot's snapshot at the log position it is current with (in the owner's queue). */
  async function saveSnapshot(slot: Slot, force = false): Promise<void> {
    if (slot.unsaved === 0 && !force) return;
    // Up to date first, so a snapshot never points into a generation older than it must.
    await catchUp(slot);
    const { state } = slot;
    const unsaved = slot.unsaved;
    const snapshot: OwnerSnapshot = {
      format: 'parley-rag-owner',
      version: 2,
      ownerId: state.ownerId,
      generation: slot.generation,
      offset: slot.offset,
      revisions: Object.fromEntries(slot.revisions),
      documents: [...state.documents.values()],
      bm25: state.index.toJSON(),
    };
    await storage.write(snapshotKey(state.ownerId), encoder.encode(JSON.stringify(snapshot)));
    slot.unsaved -= unsaved;
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
    if (slot.unsaved >= options.snapshotEvery) {
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

  /**
   * Stores a document's files until they hold this record and text together. Two writers of one document
   * (on two nodes) may cross: A's text, B's text, B's record, A's record. Each writer reads its files back:
   * one whose record was replaced since leaves them to the writer that replaced it; one whose record
   * stands but whose text does not writes both again. The last record written is then always checked by
   * its own writer, so the files end up one writer's, whole. Returns the revision written and what
   * storage holds after it.
   */
  async function storeDocument(
    record: DocumentRecord,
    text: string,
  ): Promise<{ revision: string; stored: StoredDocument }> {
    for (let attempt = 1; ; attempt++) {
      const revision = await writeDocument(storage, record, text);
      const stored = await readStoredDocument(storage, record.docId);
      // Ours and whole, or replaced (or deleted) by a later writer, who checks after us.
      if (stored.state !== 'torn' || stored.revision !== revision) return { revision, stored };
      if (attempt === MAX_WRITE_ATTEMPTS) {
        throw new PlatformError(
          'CHAT_ERR_CONFLICT',
          `document ${record.docId} is being written by another request at the same time; send it again`,
          { details: { docId: record.docId } },
        );
      }
      // Another writer's text overtook ours: back off a little so one of us gets through.
      await pause(Math.random() * 10 * attempt);
    }
  }

  async function update<T>(
    ownerId: string,
    change: (transaction: OwnerTransaction) => Promise<T>,
  ): Promise<T> {
    const slot = await slotOf(ownerId);
    // An idle owner may have been dropped while we waited; its successor holds the state now.
    if (slots.get(ownerId) !== slot) return update(ownerId, change);
    const lines: ChangeLine[] = [];
    const line = (docId: string, revision?: string): ChangeLine => ({
      doc: docId,
      ...(revision === undefined ? {} : { rev: revision }),
      id: randomBytes(8).toString('hex'),
    });
    const transaction = new SlotTransaction(
      slot,
      async (record, text) => {
        const { revision, stored } = await storeDocument(record, text);
        // What storage holds now: ours, or a later writer's that replaced it.
        takeIn(slot, record.docId, stored);
        lines.push(line(record.docId, revision));
      },
      async (docId) => {
        await deleteDocumentFiles(storage, docId);
        drop(slot.state, docId);
        slot.revisions.delete(docId);
        lines.push(line(docId));
      },
    );
    return enqueue(slot, async () => {
      // What other nodes changed first: `existing` documents, unchanged checks and deletes see it.
      await catchUp(slot);
      try {
        return await change(transaction);
      } finally {
        // Also after a failure: whatever the change stored before it failed is stored.
        if (lines.length > 0) await publish(slot, lines);
      }
    });
  }

  /**
   * Appends a change's lines to the log (one fsynced append) and reads the log after them: other nodes'
   * lines that came meanwhile are taken in; lines of ours that landed after a `next` marker (or in a
   * generation deleted meanwhile) are appended again where the log goes on. Then the generation is closed
   * when it grew past its size, and the change announced.
   */
  async function publish(slot: Slot, lines: ChangeLine[]): Promise<void> {
    const { ownerId } = slot.state;
    let unsettled = lines;
    for (let attempt = 0; unsettled.length > 0; attempt++) {
      // This node has seen no log of the owner: it makes the first generation, header first (closing
      // makes the later ones).
      const first = slot.generation === 1 && slot.offset === 0 ? headerOf(1) : '';
      await storage.append(
        logKey(ownerId, slot.generation),
        encoder.encode(first + decoder.decode(lineBytes(unsettled))),
      );
      const seen = await catchUp(slot);
      unsettled = unsettled.filter((line) => seen === undefined || seen.get(line.id) !== false);
      if (seen !== undefined && unsettled.length > 0 && unsettled.every((line) => !seen.has(line.id))) {
        // Not found after our position at all: the generation was deleted and our append made it again.
        await reload(slot);
      }
      if (attempt > 100) throw new Error(`rag: could not place change lines in the log of ${ownerId}`);
    }
    slot.unsaved += lines.length;
    schedule(slot);
    if (slot.offset > generationBytes) await closeGeneration(slot);
    await options
      .changed?.({ ownerId, version: lines[0]!.id })
      .catch((error: unknown) =>
        log.warn(
          { err: error, ownerId },
          'rag: announcing an index change failed (other nodes see it on their next log check)',
        ),
      );
  }

  /** Starts the next log generation: see the file comment. */
  async function closeGeneration(slot: Slot): Promise<void> {
    const { ownerId } = slot.state;
    const closing = slot.generation;
    const next = closing + 1;
    await storage.append(logKey(ownerId, next), encoder.encode(headerOf(next)));
    await storage.append(logKey(ownerId, closing), lineBytes([{ next }]));
    await saveSnapshot(slot, true);
    // The first generation stays (a node that has read nothing of the owner yet starts there and follows
    // its marker; without it, it could not tell a closed log from none).
    for (const generation of await generations(ownerId)) {
      if (generation > 1 && generation < closing) await storage.delete(logKey(ownerId, generation));
    }
  }

  return {
    async get(ownerId) {
      // An owner in memory (every request but its first) is checked at once, with no wait for a load.
      const slot = loadedSlot(ownerId) ?? (await slotOf(ownerId));
      await current(slot);
      return slot.state;
    },

    update,

    invalidate(change) {
      const slot = slots.get(change.ownerId);
      if (slot !== undefined) slot.checkedAt = 0;
    },

    loadedOwners: () => slots.size,

    flush,

    async erase(ownerId) {
      const slot = await slotOf(ownerId);
      await enqueue(slot, async () => {
        // No snapshot may be written after this (its timer would bring the owner's files back).
        clearTimeout(slot.timer);
        slot.timer = undefined;
        slot.unsaved = 0;
        if (slots.get(ownerId) === slot) slots.delete(ownerId);
        for (const generation of await generations(ownerId))
          await storage.delete(logKey(ownerId, generation));
        await storage.delete(snapshotKey(ownerId));
        await storage.delete(legacyJournalKey(ownerId));
      });
    },

    async dispose() {
      await Promise.all([...loading.values()].map((pending) => pending.catch(() => undefined)));
      await flush();
      disposed = true;
    },
  };
}
