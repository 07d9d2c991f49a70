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
 * Once the journal file holds `checkpointBytes`, a checkpoint retires it — records go to a new file from
 * then on — fsyncs the files it names and removes it. A key with records in the journal is replaced or deleted
 * only after a checkpoint (`forget`): so replay never writes old appends into the file that took its
 * place, a deleted file's bytes do not stay behind in the journal, and a replayed record never creates a
 * file (a file's first append is acknowledged only once its directory entry is durable, flatfile.ts: a
 * missing file was deleted).
 *
 * A crash during a checkpoint leaves the retired file beside the new one: replay takes them in the order
 * they were written (`<pid>-<random>-<sequence>`).
 *
 * Each process writes its own journal, named by its pid: a journal whose process still runs is left alone,
 * so a CLI opening the root of a running server does not touch the server's (one process owns a root for
 * writing all the same: flatfile.ts).
 */

import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fdatasyncSync,
  fstatSync,
  openSync,
  readdirSync,
  readFileSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { type FileHandle, open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { RESERVED_NAME_PART } from '../keys.ts';
import { writeDurably } from './synced-writes.ts';

const JOURNAL_PREFIX = `${RESERVED_NAME_PART}journal-`;
const JOURNAL_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | (constants.O_DSYNC ?? 0);
/** The journal is cut back (its files fsynced) once it holds this many bytes. */
const DEFAULT_CHECKPOINT_BYTES = 16 * 1024 * 1024;

/** The one kind of record so far (a byte for it leaves room for others). */
const APPEND_RECORD = 1;
/** Length of what follows the first 8 bytes, and its CRC-32; then the type, the key's length, the offset. */
const FRAME_BYTES = 8;
const BODY_HEAD_BYTES = 1 + 2 + 8;

/** The journals (`<pid>-<random>`) of this process's drivers that are open now: never replayed. */
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
  // Oldest first: a crash during a checkpoint leaves a process's retired file beside its new one.
  const journals = names
    .filter((name) => name.startsWith(JOURNAL_PREFIX))
    .map((name) => {
      const [pid = '', random = '', sequence = '0'] = name.slice(JOURNAL_PREFIX.length).split('-');
      return { name, owner: `${pid}-${random}`, pid: Number(pid), sequence: Number(sequence) };
    })
    .filter(
      ({ owner, pid }) =>
        !openJournals.has(owner) && !(Number.isInteger(pid) && pid !== process.pid && isAlive(pid)),
    )
    .sort((a, b) => (a.owner === b.owner ? a.sequence - b.sequence : a.owner < b.owner ? -1 : 1));
  for (const { name } of journals) {
    const path = join(root, name);
    for (const [key, appends] of readRecords(readFileSync(path))) replayFile(pathOf(key), appends);
    unlinkSync(path);
  }
}

/** Files synced at once by a checkpoint or a close. */
const SYNCS_AT_ONCE = 8;

/** fsyncs a folder (the root): a journal file made or removed there stays so. */
async function syncFolder(path: string): Promise<void> {
  const folder = await open(path, 'r');
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
}

/** One journal file of a driver: the file is made with its first record. */
interface JournalFile {
  path: string;
  opened: Promise<FileHandle> | undefined;
  size: number;
  /** Keys with records in it. */
  named: Set<string>;
}

/** Opens this driver's journal: one file written at a time, a new one from each checkpoint on. */
export function openAppendJournal(options: AppendJournalOptions): AppendJournal {
  const { root, syncFile } = options;
  const checkpointBytes = options.checkpointBytes ?? DEFAULT_CHECKPOINT_BYTES;
  const owner = `${process.pid}-${randomBytes(4).toString('hex')}`;
  openJournals.add(owner);
  let sequence = 0;
  const fileAfter = (): JournalFile => ({
    path: join(root, `${JOURNAL_PREFIX}${owner}-${sequence++}`),
    opened: undefined,
    size: 0,
    named: new Set(),
  });
  let current = fileAfter();
  /** Files written before the current one, whose files a checkpoint is syncing (or failed to). */
  let retired: JournalFile[] = [];
  let checkpointAt = checkpointBytes;
  let queue: Pending[] = [];
  let writing = false;
  let checkpoint: Promise<void> | undefined;
  /** Who asked for a checkpoint not begun yet (`forget`, `close`). */
  let wanted: PromiseWithResolvers<void>[] = [];
  const counters = { flushes: 0, checkpoints: 0 };

  /** A journal file, made in `O_DSYNC` mode, its entry in the root durable before any record. */
  function opening(file: JournalFile): Promise<FileHandle> {
    file.opened ??= open(file.path, JOURNAL_FLAGS, 0o600).then(async (handle) => {
      try {
        await syncFolder(root);
      } catch (error) {
        await handle.close().catch(() => {});
        throw error;
      }
      return handle;
    });
    return file.opened;
  }

  function syncAll(keys: Iterable<string>): Promise<void> {
    const waiting = [...new Set(keys)];
    const next = async (): Promise<void> => {
      for (let key = waiting.pop(); key !== undefined; key = waiting.pop()) await syncFile(key);
    };
    return Promise.all(Array.from({ length: Math.min(SYNCS_AT_ONCE, waiting.length) }, next)).then(() => {});
  }

  /**
   * Between writes: a checkpoint when one is due or asked for (it takes the file written so far, and the
   * next write starts a new one), then the queued records as one write.
   */
  function pump(): void {
    if (writing) return;
    if (checkpoint === undefined && (wanted.length > 0 || current.size >= checkpointAt)) {
      startCheckpoint(wanted);
      wanted = [];
    }
    if (queue.length === 0) return;
    writing = true;
    const batch = queue;
    queue = [];
    const file = current;
    const data = batch.length === 1 ? batch[0]!.frame : Buffer.concat(batch.map((pending) => pending.frame));
    const written = (error: unknown) => {
      writing = false;
      if (error !== null) for (const pending of batch) pending.reject(error);
      else {
        counters.flushes += 1;
        file.size += data.length;
        for (const pending of batch) {
          file.named.add(pending.key);
          pending.resolve();
        }
      }
      pump();
    };
    opening(file)
      .then((handle) =>
        writeDurably(handle, data).catch((error: unknown) =>
          // A record cut short would end replay there, before the records written after it: cut it off,
          // or (that failing too) start a new file at once.
          handle.truncate(file.size).then(
            () => Promise.reject(error),
            () => {
              checkpointAt = 0;
              return Promise.reject(error);
            },
          ),
        ),
      )
      .then(() => written(null), written);
  }

  /**
   * Retires the file written so far (records go to a new one from now on), syncs the files its records
   * name, then removes it and syncs the root, so it stays removed. No write to it is under way (`pump`).
   */
  function startCheckpoint(waiters: readonly PromiseWithResolvers<void>[]): void {
    if (current.opened !== undefined) {
      retired.push(current);
      current = fileAfter();
    }
    const leaving = retired;
    checkpoint = (async () => {
      await syncAll(leaving.flatMap((file) => [...file.named]));
      for (const file of leaving) {
        // A file whose making failed holds no record: there may be nothing to close, nor to remove.
        await (await file.opened?.catch(() => undefined))?.close();
        file.opened = undefined;
        await unlink(file.path).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'ENOENT') throw error;
        });
      }
      if (leaving.length > 0) await syncFolder(root);
      retired = retired.filter((file) => !leaving.includes(file));
      checkpointAt = checkpointBytes;
      counters.checkpoints += 1;
    })().then(
      () => {
        for (const waiter of waiters) waiter.resolve();
      },
      (error: unknown) => {
        // The retired files stay (replayed after a crash) and are tried again by the next checkpoint: once
        // as many bytes more are written, or when asked.
        checkpointAt = current.size + checkpointBytes;
        for (const waiter of waiters) waiter.reject(error);
      },
    );
    void checkpoint.finally(() => {
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
      const named = current.named.has(key) || retired.some((file) => file.named.has(key));
      return named ? checkpointNow() : Promise.resolve();
    },
    async close() {
      // After the records queued before it; every file removed, not even a name is left.
      await checkpointNow();
      openJournals.delete(owner);
    },
    stats: () => ({ ...counters }),
  };
}
