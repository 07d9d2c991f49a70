/**
 * The flatfile driver's append journal: how an append is durable without an fsync of its own file.
 *
 * An append writes its bytes to the key's file without waiting for the disk (the page cache: readers see
 * them at once), and a record of them — key, offset, bytes — to this journal. Journal records are written
 * by one writer, in `O_DSYNC` mode: the records of every append that arrives while one write is under way
 * go out together in the next (group commit), so a busy server pays one disk flush for many appends, to
 * many files, where a flush per file paid one each (ADR 0008). An append is acknowledged once its record
 * is durable.
 *
 * After a crash of the machine (bytes in the page cache lost), the next driver on the root replays the
 * journals the dead process left (`replayJournals`): each recorded append whose bytes its file lacks is
 * written again at its offset, and the files are fsynced before the journal is removed. A process killed
 * alone loses nothing of the page cache: replay then only syncs.
 *
 * Once the journal holds `checkpointBytes`, a checkpoint fsyncs the files it names and removes it (new
 * records wait meanwhile, for the next journal). A key with records in the journal is replaced or deleted
 * only after a checkpoint (`forget`): so replay never writes old appends into the file that took its
 * place, a deleted file's bytes do not stay behind in the journal, and a replayed record never creates a
 * file (a file's first append is acknowledged only once its directory entry is durable, flatfile.ts: a
 * missing file was deleted).
 *
 * Each process writes its own journal, named by its pid: a journal whose process still runs is left alone,
 * so a CLI opening the root of a running server does not touch the server's (one process owns a root for
 * writing all the same: flatfile.ts).
 */

import { randomBytes } from 'node:crypto';
import {
  close as closeFd,
  closeSync,
  constants,
  fdatasync,
  fdatasyncSync,
  fstatSync,
  fsync,
  ftruncate,
  open,
  openSync,
  readdirSync,
  readFileSync,
  unlink,
  unlinkSync,
  write,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { RESERVED_NAME_PART } from '../keys.ts';

const JOURNAL_PREFIX = `${RESERVED_NAME_PART}journal-`;
/** The journal is cut back (its files fsynced) once it holds this many bytes. */
export const DEFAULT_CHECKPOINT_BYTES = 16 * 1024 * 1024;

/** The one kind of record so far (a byte for it leaves room for others). */
const APPEND_RECORD = 1;
/** Length of what follows the first 8 bytes, and its CRC-32; then the type, the key's length, the offset. */
const FRAME_BYTES = 8;
const BODY_HEAD_BYTES = 1 + 2 + 8;

/** Journals of this process's drivers that are open now: never replayed by another driver of it. */
const openJournals = new Set<string>();

export interface AppendJournalOptions {
  root: string;
  /** Makes the bytes written to `key`'s file durable (fdatasync); a missing file is no error. */
  syncFile: (key: string) => Promise<void>;
  checkpointBytes?: number;
}

export interface AppendJournal {
  /** Records `data`, written at `offset` of `key`'s file; resolves once the record is durable. */
  record(key: string, offset: number, data: Uint8Array): Promise<void>;
  /** Before `key` is replaced or deleted: a checkpoint, when the journal holds records of it. */
  forget(key: string): Promise<void>;
  /** Syncs the files the journal names and removes it: nothing is left to replay. */
  close(): Promise<void>;
  /** Journal writes (each one flush for the records of every append that came meanwhile), checkpoints. */
  stats(): { flushes: number; checkpoints: number };
}

interface Pending {
  frame: Uint8Array;
  key: string;
  resolve: () => void;
  reject: (error: unknown) => void;
}

function encodeRecord(key: string, offset: number, data: Uint8Array): Uint8Array {
  const keyLength = Buffer.byteLength(key);
  const dataLength = data.length;
  const frame = Buffer.allocUnsafe(FRAME_BYTES + BODY_HEAD_BYTES + keyLength + dataLength);
  frame.writeUInt32LE(BODY_HEAD_BYTES + keyLength + dataLength, 0);
  frame.writeUInt8(APPEND_RECORD, FRAME_BYTES);
  frame.writeUInt16LE(keyLength, FRAME_BYTES + 1);
  frame.writeDoubleLE(offset, FRAME_BYTES + 3);
  frame.write(key, FRAME_BYTES + BODY_HEAD_BYTES, 'utf8');
  frame.set(data, FRAME_BYTES + BODY_HEAD_BYTES + keyLength);
  frame.writeUInt32LE(crc32(frame.subarray(FRAME_BYTES)), 4);
  return frame;
}

/** An append recorded in a journal. */
interface RecordedAppend {
  offset: number;
  data: Uint8Array;
}

/** The appends a journal holds, by key, in order. */
function readRecords(bytes: Buffer): Map<string, RecordedAppend[]> {
  const appends = new Map<string, RecordedAppend[]>();
  let position = 0;
  while (position + FRAME_BYTES + BODY_HEAD_BYTES <= bytes.length) {
    const length = bytes.readUInt32LE(position);
    const end = position + FRAME_BYTES + length;
    // A record cut short, or not the bytes written: the crash came during its write, never acknowledged.
    if (length < BODY_HEAD_BYTES || end > bytes.length) break;
    const body = bytes.subarray(position + FRAME_BYTES, end);
    if (crc32(body) !== bytes.readUInt32LE(position + 4)) break;
    const type = body.readUInt8(0);
    const keyLength = body.readUInt16LE(1);
    const offset = body.readDoubleLE(3);
    const key = body.toString('utf8', BODY_HEAD_BYTES, BODY_HEAD_BYTES + keyLength);
    if (type === APPEND_RECORD) {
      const data = body.subarray(BODY_HEAD_BYTES + keyLength);
      const list = appends.get(key);
      if (list === undefined) appends.set(key, [{ offset, data }]);
      else list.push({ offset, data });
    }
    position = end;
  }
  return appends;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Writes again the recorded bytes `path`'s file lacks, then fsyncs it. */
function replayFile(path: string, appends: readonly RecordedAppend[]): void {
  let fd: number;
  try {
    fd = openSync(path, 'r+');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // Deleted since (a missing file was deleted: see the file comment).
    if (code === 'ENOENT' || code === 'ENOTDIR') return;
    throw error;
  }
  try {
    let size = fstatSync(fd).size;
    for (const { offset, data } of appends) {
      const end = offset + data.length;
      if (size >= end) continue;
      // Bytes before the record are missing too, and no record has them: nothing to write them after.
      if (size < offset) break;
      const rest = data.subarray(size - offset);
      let written = 0;
      while (written < rest.length)
        written += writeSync(fd, rest, written, rest.length - written, size + written);
      size = end;
    }
    // Whether or not anything was missing: the bytes may be in the page cache only.
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Replays the journals under `root` that no running process writes (see the file comment), then removes
 * them; `pathOf` gives a key's file. Synchronous: it runs once, when a driver is made, before any use.
 */
export function replayJournals(root: string, pathOf: (key: string) => string): void {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  for (const name of names) {
    if (!name.startsWith(JOURNAL_PREFIX)) continue;
    const path = join(root, name);
    const pid = Number(name.slice(JOURNAL_PREFIX.length).split('-')[0]);
    if (openJournals.has(path) || (Number.isInteger(pid) && pid !== process.pid && isAlive(pid))) continue;
    for (const [key, appends] of readRecords(readFileSync(path))) replayFile(pathOf(key), appends);
    unlinkSync(path);
  }
}

/** Writes all of `data` at the end of the file `fd` (opened to append), then calls `done`. */
function writeAll(fd: number, data: Uint8Array, done: (error: Error | null) => void): void {
  let offset = 0;
  const rest = () =>
    write(fd, data, offset, data.length - offset, null, (error, written) => {
      if (error !== null) return done(error);
      offset += written;
      if (offset < data.length) rest();
      else done(null);
    });
  rest();
}

/** Whether a write to a file opened with O_DSYNC is its flush (not on Windows). */
const SYNCED_WRITES = constants.O_DSYNC !== undefined;

/** Files synced at once by a checkpoint or a close. */
const SYNCS_AT_ONCE = 8;

/** Runs a callback-style file system call as a promise. */
function called(run: (done: (error: NodeJS.ErrnoException | null) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => run((error) => (error === null ? resolve() : reject(error))));
}

/** fsyncs a folder: what was created or removed in it is durable. */
function syncFolder(path: string): Promise<void> {
  return new Promise((resolve, reject) =>
    open(path, 'r', (error, folder) => {
      if (error !== null) return reject(error);
      fsync(folder, (syncError) =>
        closeFd(folder, () => (syncError === null ? resolve() : reject(syncError))),
      );
    }),
  );
}

/** Opens this driver's journal (the file is made with its first record, and removed by each checkpoint). */
export function openAppendJournal(options: AppendJournalOptions): AppendJournal {
  const { root, syncFile } = options;
  const checkpointBytes = options.checkpointBytes ?? DEFAULT_CHECKPOINT_BYTES;
  const path = join(root, `${JOURNAL_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
  openJournals.add(path);
  let opened: Promise<number> | undefined;
  let size = 0;
  let checkpointAt = checkpointBytes;
  let queue: Pending[] = [];
  let writing = false;
  let checkpoint: Promise<void> | undefined;
  /** Who asked for a checkpoint not begun yet (`forget`, `close`). */
  let wanted: PromiseWithResolvers<void>[] = [];
  /** Keys with records in the journal as it is now, and those of a checkpoint under way. */
  let named = new Set<string>();
  let checkpointed = new Set<string>();
  const counters = { flushes: 0, checkpoints: 0 };

  /** The journal file, made in `O_DSYNC` mode, with its entry in the root made durable before any record. */
  function descriptor(): Promise<number> {
    opened ??= new Promise<number>((resolve, reject) => {
      const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | (constants.O_DSYNC ?? 0);
      open(path, flags, 0o600, (error, fd) => {
        if (error !== null) return reject(error);
        syncFolder(root).then(
          () => resolve(fd),
          (syncError: unknown) => closeFd(fd, () => reject(syncError)),
        );
      });
    });
    return opened;
  }

  function syncAll(keys: Iterable<string>): Promise<void> {
    const waiting = [...keys];
    const next = async (): Promise<void> => {
      for (let key = waiting.pop(); key !== undefined; key = waiting.pop()) await syncFile(key);
    };
    return Promise.all(Array.from({ length: Math.min(SYNCS_AT_ONCE, waiting.length) }, next)).then(() => {});
  }

  /**
   * Between writes: a checkpoint when one is due or asked for, else the queued records as one write. A
   * journal write is never under way beside a checkpoint, which removes the file it writes to.
   */
  function pump(): void {
    if (writing || checkpoint !== undefined) return;
    if (wanted.length > 0 || size >= checkpointAt) {
      startCheckpoint(wanted);
      wanted = [];
      return;
    }
    if (queue.length === 0) return;
    writing = true;
    const batch = queue;
    queue = [];
    const data = batch.length === 1 ? batch[0]!.frame : Buffer.concat(batch.map((pending) => pending.frame));
    const written = (error: unknown) => {
      writing = false;
      if (error !== null) for (const pending of batch) pending.reject(error);
      else {
        counters.flushes += 1;
        size += data.length;
        for (const pending of batch) {
          named.add(pending.key);
          pending.resolve();
        }
      }
      pump();
    };
    descriptor().then(
      (fd) =>
        writeAll(fd, data, (error) => {
          // Where there is no O_DSYNC (Windows), an explicit flush follows the write.
          if (error === null) return SYNCED_WRITES ? written(null) : fdatasync(fd, written);
          // A record cut short would end replay there, before the records written after it: cut it off,
          // or (that failing too) start a new journal at the next checkpoint, which comes at once.
          ftruncate(fd, size, (cutError) => {
            if (cutError !== null) checkpointAt = 0;
            written(error);
          });
        }),
      written,
    );
  }

  /**
   * Syncs the files the journal names, then removes it (and syncs the root, so it stays removed): nothing
   * in it is needed any more. Records that come meanwhile wait, for the next journal.
   */
  function startCheckpoint(waiters: readonly PromiseWithResolvers<void>[]): void {
    checkpointed = named;
    named = new Set();
    checkpoint = (async () => {
      if (opened !== undefined) {
        await syncAll(checkpointed);
        const fd = await opened;
        opened = undefined;
        await called((done) => closeFd(fd, done));
        await called((done) => unlink(path, done));
        await syncFolder(root);
      }
      size = 0;
      checkpointAt = checkpointBytes;
      counters.checkpoints += 1;
    })().then(
      () => {
        for (const waiter of waiters) waiter.resolve();
      },
      (error: unknown) => {
        // The records stay (a journal not removed is replayed after a crash); tried again once as many
        // bytes more are written, or when asked.
        for (const key of checkpointed) named.add(key);
        checkpointAt = size + checkpointBytes;
        for (const waiter of waiters) waiter.reject(error);
      },
    );
    void checkpoint.finally(() => {
      checkpointed = new Set();
      checkpoint = undefined;
      pump();
    });
  }

  function checkpointNow(): Promise<void> {
    const waiter = Promise.withResolvers<void>();
    wanted.push(waiter);
    pump();
    return waiter.promise;
  }

  return {
    record(key, offset, data) {
      return new Promise<void>((resolve, reject) => {
        queue.push({ frame: encodeRecord(key, offset, data), key, resolve, reject });
        pump();
      });
    },
    forget(key) {
      return named.has(key) || checkpointed.has(key) ? checkpointNow() : Promise.resolve();
    },
    async close() {
      // After the records queued before it; the journal removed, not even its name is left.
      await checkpointNow();
      openJournals.delete(path);
    },
    stats: () => ({ ...counters }),
  };
}
