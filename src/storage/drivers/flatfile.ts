/**
 * The flatfile driver, parley's default: one file per key under a root directory, nothing to install.
 *
 * Durability (DESIGN.md §1.7, "nothing acknowledged is lost"):
 * - `write` replaces atomically: a temporary file in the same directory is written and fsynced, renamed
 *   over the key's file, then the directory is fsynced, so after a crash the key holds the old bytes or
 *   the new, never a mix.
 * - `append` resolves only after its bytes are durable: recorded in the append journal (flatfile-journal.ts,
 *   one flush for the appends of many files, replayed after a machine crash) or, with `journal: false`,
 *   fsynced in their file. Appends to one key queue in a per-key lane; all appends that arrive while a
 *   batch is being written and made durable go out together as the next batch (group commit), in one
 *   write, so the bytes of two appends never interleave.
 * - Operations on one key (write, delete, append) run one at a time in call order, so an append never
 *   lands in a file that a concurrent write is replacing.
 * - A `.jsonl` key holds whole lines only (see json-lines.ts). When such a file ends in a partial line —
 *   a write torn by a crash, never acknowledged — the first append after the file is opened cuts it off
 *   before writing, so a new line is never glued onto a fragment.
 *
 * Cost of an append (a chat turn makes one): the files appended to recently stay open (`maxOpenFiles`,
 * least recently used closed first). With the journal, an append batch is a synchronous `write` into the
 * page cache and a share of a journal flush. Without it, files are opened in synchronised-data mode
 * (`O_DSYNC`), so an append batch is one `write` that returns once the bytes are on disk — the same
 * guarantee as `write` + `fdatasync`, in one call to the thread pool instead of six (open, stat, read the
 * last byte, write, fdatasync, close). The
 * open, the size and the torn-tail check are paid once per file, when it is opened. Creating a file takes
 * no failed system call (nor the thrown error that costs more than the call): a log is opened with
 * `O_CREAT` and its size tells a new one, and a file in a folder the driver has not seen yet makes the
 * folder first rather than failing to open for want of it (a new chat session's folder, say).
 *
 * A `delete` removes the folders it emptied, up to the root, so nothing is left named after what was
 * deleted (a user's id, a chat's). It removes them with `rmdir`, which fails harmlessly on a folder that is
 * not empty, so a file created in one meanwhile stays; and a file being created in a folder that a delete
 * removes between the folder's making and the file's opening makes it again (`openCreating` retries).
 *
 * One process owns a root: two processes appending to the same files are not coordinated, and a file
 * removed or replaced behind the driver's back while it holds it open keeps receiving the appends.
 */

import { randomBytes } from 'node:crypto';
import { constants, type Dirent, writeSync } from 'node:fs';
import {
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  stat,
  unlink,
} from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { PlatformError, StorageUnavailableError } from '../../core/errors.ts';
import { concatBytes, copyBytes } from '../bytes.ts';
import { assertWholeLines, isJsonLinesKey } from '../json-lines.ts';
import { createKeyLanes } from '../key-lanes.ts';
import { assertValidKey, assertValidPrefix, isValidKey, RESERVED_NAME_PART } from '../keys.ts';
import { assertOffset } from '../read-from.ts';
import type { Storage } from '../types.ts';
import { type AppendJournal, openAppendJournal, replayJournals } from './flatfile-journal.ts';
import { SYNCED_WRITES, writeAll, writeDurably } from './synced-writes.ts';

export interface FlatfileStorageOptions {
  /** The directory that holds the files; created when missing. */
  root: string;
  /** Permission bits of new files (default 0o600: stored data is private to the server's user). */
  fileMode?: number;
  /** Permission bits of new directories (default 0o700). */
  directoryMode?: number;
  /** Files kept open for appending (default 256); the least recently used is closed beyond it. */
  maxOpenFiles?: number;
  /**
   * Appends made durable through the append journal, many appends a flush (default true; flatfile-journal.ts),
   * or each by an `O_DSYNC` write of its own file (false).
   */
  journal?: boolean;
  /** The journal is cut back (its files fsynced) once it holds this many bytes (default 16 MiB). */
  journalCheckpointBytes?: number;
}

/** Diagnostic counters since the storage was created (for tests and benchmarks, not for logic). */
export interface FlatfileStats {
  /** `append` calls that reached the disk queue. */
  appends: number;
  /** Batches written: several concurrent appends to one key share one batch. */
  appendBatches: number;
  /**
   * Append batches and writes made durable: each write by an fsync of its file, each append batch by its
   * journal record's flush (shared by the batches of other keys meanwhile) or, without the journal, by an
   * fsync of its file.
   */
  fileSyncs: number;
  /** Append journal writes: each one flush for the batches of every key journaled meanwhile. */
  journalFlushes: number;
  /** Append journal checkpoints (its files fsynced, the journal removed). */
  journalCheckpoints: number;
  /** fsync calls on directories (after a file or directory was created, renamed or removed). */
  directorySyncs: number;
  writes: number;
  deletes: number;
  /** Partial last lines of `.jsonl` files cut off before an append (each one a write torn by a crash). */
  tornTailsCut: number;
  /** Files opened for appending (an append to a file already open opens nothing). */
  appendFilesOpened: number;
}

/** The flatfile storage: the contract plus its diagnostics. */
export interface FlatfileStorage extends Storage {
  /** The absolute root directory. */
  readonly root: string;
  /** Diagnostic counters (a copy). */
  stats(): FlatfileStats;
}

const NEWLINE = 0x0a;
const TAIL_SCAN_CHUNK = 64 * 1024;
const APPEND_FLAGS = constants.O_RDWR | constants.O_APPEND;
/** Windows cannot rename a file that is open. */
const RENAME_OPEN_FILES = process.platform !== 'win32';
const DEFAULT_MAX_OPEN_FILES = 256;
/** Folders kept open for fsync (a new session's folder is synced three or four times in its first seconds). */
const MAX_OPEN_DIRECTORIES = 64;
/** Folders remembered as existing, so a file is created in them without making sure of the folder first. */
const MAX_KNOWN_DIRECTORIES = 4096;

/** The fsyncs of one folder: the one under way, and the next, shared by every caller that came meanwhile. */
interface FolderSync {
  running: Promise<void> | undefined;
  queued: Promise<void> | undefined;
}

const ignore = () => {};

/**
 * Attempts at making a file's folder and creating the file in it: a delete may remove the folder, emptied,
 * between the two. Each attempt lost takes another delete emptying that very folder at that very moment.
 */
const CREATE_ATTEMPTS = 3;

/** Folders a listing reads at once. */
const LIST_FOLDERS_AT_ONCE = 8;

/** A file held open for appending. */
interface AppendFile {
  handle: FileHandle;
  /** Its size: where the next batch starts (a failed batch is truncated back to it). */
  size: number;
  /** A batch is being written through it: it must not be closed now. */
  busy: boolean;
}

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/** A read's error that means no value is stored at the key (missing, or a folder of other keys). */
function isNoValue(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

/** Creates a storage that keeps each key in a file under `options.root`. */
export function createFlatfileStorage(options: FlatfileStorageOptions): FlatfileStorage {
  const root = resolve(options.root);
  const fileMode = options.fileMode ?? 0o600;
  const directoryMode = options.directoryMode ?? 0o700;
  const maxOpenFiles = Math.max(1, options.maxOpenFiles ?? DEFAULT_MAX_OPEN_FILES);
  // Without the journal, each append's own write is the flush (O_DSYNC).
  const appendFlags = options.journal === false ? APPEND_FLAGS | (constants.O_DSYNC ?? 0) : APPEND_FLAGS;
  // Temporary files are named by a random prefix of this storage and a counter: unique without asking
  // for random bytes on every write (the prefix tells them from those a crashed process left behind).
  const temporaryPrefix = `${RESERVED_NAME_PART}${randomBytes(8).toString('hex')}-`;
  let temporaryCount = 0;
  // Key → open file, least recently used first (a Map iterates in insertion order).
  const appendFiles = new Map<string, AppendFile>();
  // Folder path → open handle for fsync, least recently used first. A handle is closed only by eviction
  // or close(); FileHandle.close waits for a sync under way on it.
  const directories = new Map<string, FileHandle>();
  // Folder path → its fsync under way and the one queued after it (see syncDirectory).
  const folderSyncs = new Map<string, FolderSync>();
  // Folders known to exist (made or used here), oldest first. Only a hint: a folder removed behind the
  // driver's back fails the open with ENOENT, which makes it again.
  const knownDirectories = new Set<string>();
  // Folders this driver made that no log has been opened in yet: the first log in one is new for certain
  // (one process owns a root), so it is created exclusively, without asking for its size.
  const madeDirectories = new Set<string>();
  // Folders removed by deletes so far. A folder handle opened before a removal may be of the folder removed,
  // not of one made again at that path: it is used once, not kept for later fsyncs (see forgetDirectory).
  let directoriesRemoved = 0;
  const counters: FlatfileStats = {
    appends: 0,
    appendBatches: 0,
    fileSyncs: 0,
    directorySyncs: 0,
    writes: 0,
    deletes: 0,
    tornTailsCut: 0,
    appendFilesOpened: 0,
    journalFlushes: 0,
    journalCheckpoints: 0,
  };
  let closed = false;

  function assertOpen(): void {
    if (closed) throw new StorageUnavailableError('the flatfile storage is closed', { details: { root } });
  }

  function pathOf(key: string): string {
    const path = join(root, ...key.split('/'));
    // Validation already rules out escapes; this guards the guard.
    if (!path.startsWith(root + sep))
      throw new PlatformError('CHAT_ERR_STORAGE_INVALID_KEY', 'key escapes root');
    return path;
  }

  function failure(operation: string, key: string, error: unknown): PlatformError {
    if (error instanceof PlatformError) return error;
    const code = errorCode(error);
    // A full disk is not a fault of the request nor of parley: said as such (507), for clients to retry
    // later and operators to free space.
    const full = code === 'ENOSPC' || code === 'EDQUOT';
    const conflict = code === 'ENOTDIR' || code === 'EISDIR' || code === 'EEXIST';
    const reason = full
      ? 'no space left on the storage device'
      : conflict
        ? 'the key conflicts with a folder of other keys, or a key on its path is a file'
        : error instanceof Error
          ? error.message
          : String(error);
    return new PlatformError(
      full ? 'CHAT_ERR_STORAGE_FULL' : 'CHAT_ERR_STORAGE_FAILED',
      `flatfile ${operation} of "${key}" failed: ${reason}`,
      {
        details: { key, operation, code },
        cause: error,
      },
    );
  }

  /** Keeps a folder's handle open for its next fsyncs, closing the least recently used beyond the limit. */
  function keepDirectory(path: string, handle: FileHandle): void {
    directories.set(path, handle);
    for (const [oldest, oldestHandle] of directories) {
      if (directories.size <= MAX_OPEN_DIRECTORIES) break;
      directories.delete(oldest);
      void oldestHandle.close().catch(() => undefined);
    }
  }

  /**
   * Opens a folder just made, for the fsync its first entry needs, while that entry's file is being
   * written: the fsync then waits for no open of its own.
   */
  function openDirectoryAhead(path: string): void {
    if (directories.has(path)) return;
    const removedBefore = directoriesRemoved;
    open(path, constants.O_RDONLY).then(
      (handle) => {
        if (closed || directories.has(path) || directoriesRemoved !== removedBefore) {
          void handle.close().catch(() => undefined);
        } else keepDirectory(path, handle);
      },
      // The fsync opens it itself (and reports what failed).
      () => undefined,
    );
  }

  /**
   * fsyncs a folder after a change of its entries. Folder fsyncs are group-committed like appends: while
   * one runs (it may have begun before the caller's change), every caller that comes shares the next one,
   * which begins once it is done. A folder many changes land in at once (one user's chat sessions, each
   * new session a new folder in it) is then synced twice per burst instead of once per change.
   */
  function syncDirectory(path: string): Promise<void> {
    let state = folderSyncs.get(path);
    if (state === undefined) {
      state = { running: undefined, queued: undefined };
      folderSyncs.set(path, state);
    }
    const { running } = state;
    if (running === undefined) return startFolderSync(path, state);
    const shared = state;
    shared.queued ??= running.then(ignore, ignore).then(() => {
      // Callers from now on wait for a later fsync: this one may begin before their change is done.
      shared.queued = undefined;
      return startFolderSync(path, shared);
    });
    return shared.queued;
  }

  function startFolderSync(path: string, state: FolderSync): Promise<void> {
    const running: Promise<void> = fsyncDirectory(path).finally(() => {
      if (state.running === running) state.running = undefined;
      if (state.running === undefined && state.queued === undefined && folderSyncs.get(path) === state) {
        folderSyncs.delete(path);
      }
    });
    state.running = running;
    return running;
  }

  async function fsyncDirectory(path: string): Promise<void> {
    const kept = directories.get(path);
    if (kept !== undefined) {
      directories.delete(path);
      directories.set(path, kept);
      await kept.sync();
    } else {
      const removedBefore = directoriesRemoved;
      const handle = await open(path, constants.O_RDONLY);
      if (directories.has(path) || directoriesRemoved !== removedBefore) {
        // Another sync of this folder opened it meanwhile, or a delete removed a folder (maybe this one,
        // made again since): use this handle once.
        try {
          await handle.sync();
        } finally {
          await handle.close();
        }
      } else {
        keepDirectory(path, handle);
        await handle.sync();
      }
    }
    counters.directorySyncs += 1;
  }

  /**
   * Forgets everything held about a folder a delete removed: its open handle (a later fsync must open the
   * folder made again at that path, not sync the removed one) and the hints that it exists.
   */
  function forgetDirectory(path: string): void {
    directoriesRemoved += 1;
    knownDirectories.delete(path);
    madeDirectories.delete(path);
    const handle = directories.get(path);
    if (handle !== undefined) {
      directories.delete(path);
      void handle.close().catch(() => undefined);
    }
  }

  function knowDirectory(directory: string): void {
    if (knownDirectories.has(directory)) return;
    knownDirectories.add(directory);
    if (knownDirectories.size > MAX_KNOWN_DIRECTORIES) {
      knownDirectories.delete(knownDirectories.values().next().value!);
    }
  }

  /** Makes `directory` exist; returns the directories whose entries must be fsynced to make it durable. */
  async function ensureDirectory(directory: string): Promise<string[]> {
    const firstCreated = await mkdir(directory, { recursive: true, mode: directoryMode });
    knowDirectory(directory);
    if (firstCreated === undefined) return [];
    madeDirectories.add(directory);
    if (madeDirectories.size > MAX_KNOWN_DIRECTORIES) {
      madeDirectories.delete(madeDirectories.values().next().value!);
    }
    const parents = [dirname(firstCreated)];
    for (let current = directory; current !== dirname(firstCreated); current = dirname(current)) {
      if (current !== directory) parents.push(current);
    }
    return parents;
  }

  /** fsyncs `directory` (where a name was added or removed) and every parent of a directory just created. */
  async function syncEntries(directory: string, createdParents: string[]): Promise<void> {
    if (createdParents.length === 0) return syncDirectory(directory);
    await Promise.all([...new Set([...createdParents, directory])].map(syncDirectory));
  }

  /** Cuts a partial last line (a torn write) off a `.jsonl` file, so the next line starts cleanly. */
  async function cutTornTail(handle: FileHandle, size: number): Promise<number> {
    if (size === 0) return 0;
    const last = Buffer.alloc(1);
    await handle.read(last, 0, 1, size - 1);
    if (last[0] === NEWLINE) return size;
    let end = size;
    let keep = 0;
    while (end > 0) {
      const start = Math.max(0, end - TAIL_SCAN_CHUNK);
      const chunk = Buffer.alloc(end - start);
      await handle.read(chunk, 0, chunk.length, start);
      const index = chunk.lastIndexOf(NEWLINE);
      if (index >= 0) {
        keep = start + index + 1;
        break;
      }
      end = start;
    }
    await handle.truncate(keep);
    counters.tornTailsCut += 1;
    return keep;
  }

  /**
   * Opens the file at `path` with `flags` (which create it), making its folders first when the driver has
   * not seen its folder yet; a folder it knows is trusted, and made again if it was removed behind the
   * driver's back, or by a delete that emptied it. Returns the handle and the folders created, whose
   * parents' entries must be fsynced with the file's own folder.
   */
  async function openCreating(
    path: string,
    flags: number,
  ): Promise<{ handle: FileHandle; createdParents: string[] }> {
    const directory = dirname(path);
    if (knownDirectories.has(directory)) {
      try {
        return { handle: await open(path, flags, fileMode), createdParents: [] };
      } catch (error) {
        if (errorCode(error) !== 'ENOENT') throw error;
        knownDirectories.delete(directory);
      }
    }
    for (let attempt = 1; ; attempt++) {
      try {
        const createdParents = await ensureDirectory(directory);
        return { handle: await open(path, flags, fileMode), createdParents };
      } catch (error) {
        // A delete removed the folder, emptied, after it was made and before the file was created in it.
        if (errorCode(error) !== 'ENOENT' || attempt >= CREATE_ATTEMPTS) throw error;
        knownDirectories.delete(directory);
      }
    }
  }

  /** Creates the file at `path` (`O_EXCL`), and its folders when missing (see `openCreating`). */
  function createFile(
    path: string,
    flags: number,
  ): Promise<{ handle: FileHandle; createdParents: string[] }> {
    return openCreating(path, flags | constants.O_CREAT | constants.O_EXCL);
  }

  /**
   * Opens `key` for appending (creating it and its folders), with its torn tail cut off. For a file that
   * may be new (it is empty), `entrySynced` is the fsync of its folder (and of the folders created), under
   * way: the first batch is written meanwhile, and acknowledged only once both are done.
   */
  async function openAppendFile(key: string): Promise<{ file: AppendFile; entrySynced?: Promise<void> }> {
    const path = pathOf(key);
    const directory = dirname(path);
    if (madeDirectories.delete(directory)) {
      // The first log in a folder made here (a new chat session's): new, so no size to ask for. Should
      // something else have put it there (or removed the folder), the usual open below follows.
      try {
        const handle = await open(path, appendFlags | constants.O_CREAT | constants.O_EXCL, fileMode);
        counters.appendFilesOpened += 1;
        return { file: { handle, size: 0, busy: false }, entrySynced: syncDirectory(directory) };
      } catch (error) {
        const code = errorCode(error);
        if (code !== 'EEXIST' && code !== 'ENOENT') throw error;
      }
    }
    // O_CREAT without O_EXCL: a new file is told by its size below, not by a failed open (and its error).
    const { handle, createdParents } = await openCreating(path, appendFlags | constants.O_CREAT);
    // Made just now by this open: the file it created is its first log, nothing else is new there.
    madeDirectories.delete(directory);
    counters.appendFilesOpened += 1;
    try {
      let size = (await handle.stat()).size;
      if (size === 0) {
        // Maybe new: a new file is durable only once its directory entry is, before its first append is
        // acknowledged (for an empty file that was there already, the fsync is merely redundant).
        const entrySynced = syncEntries(dirname(path), createdParents);
        return { file: { handle, size: 0, busy: false }, entrySynced };
      }
      if (isJsonLinesKey(key)) size = await cutTornTail(handle, size);
      return { file: { handle, size, busy: false } };
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
  }

  /** Closes the least recently used idle files beyond `maxOpenFiles`. */
  function closeIdleFiles(): void {
    if (appendFiles.size <= maxOpenFiles) return;
    for (const [key, file] of appendFiles) {
      if (appendFiles.size <= maxOpenFiles) break;
      if (file.busy) continue;
      appendFiles.delete(key);
      void file.handle.close().catch(() => undefined);
    }
  }

  /** Closes the file held open for `key`, if any (before it is replaced or removed). */
  async function closeAppendFile(key: string): Promise<void> {
    const file = appendFiles.get(key);
    if (file === undefined) return;
    appendFiles.delete(key);
    await file.handle.close().catch(() => undefined);
  }

  /**
   * Writes a batch of appends to `key`'s file. A file already open is written at once, without an async
   * layer around the write: a chat turn's append passes here.
   */
  function appendBatch(key: string, chunks: Uint8Array[]): Promise<void> {
    const file = appendFiles.get(key);
    if (file === undefined) return openAndAppend(key, chunks);
    appendFiles.delete(key);
    return writeBatch(key, file, undefined, chunks);
  }

  async function openAndAppend(key: string, chunks: Uint8Array[]): Promise<void> {
    const { file, entrySynced } = await openAppendFile(key);
    return writeBatch(key, file, entrySynced, chunks);
  }

  /**
   * Writes `chunks` at the end of `file` (and waits for `entrySynced`, the fsync of a new file's folder);
   * a failure takes back what was written and closes the file.
   */
  function writeBatch(
    key: string,
    file: AppendFile,
    entrySynced: Promise<void> | undefined,
    chunks: Uint8Array[],
  ): Promise<void> {
    // Most recently used last; busy, so no other lane's eviction closes it under this batch.
    appendFiles.set(key, file);
    file.busy = true;
    counters.appendBatches += 1;
    const data = concatBytes(chunks);
    const written =
      journal !== undefined
        ? writeJournaled(key, file, data)
        : // Opened with O_DSYNC: the write is the flush.
          writeDurably(file.handle, data);
    return (entrySynced === undefined ? written : Promise.all([written, entrySynced])).then(
      () => {
        counters.fileSyncs += 1;
        file.size += data.length;
        file.busy = false;
        closeIdleFiles();
      },
      async (error: unknown) => {
        // Take back a partial batch so the rejected appends leave nothing behind (best effort), and close
        // the file: the next append opens it afresh and checks its end again.
        try {
          await file.handle.truncate(file.size).catch(() => undefined);
          if (appendFiles.get(key) === file) appendFiles.delete(key);
          await file.handle.close().catch(() => undefined);
        } finally {
          file.busy = false;
        }
        throw error;
      },
    );
  }

  /**
   * The temporary file is written in `O_DSYNC` mode (durable when the write returns, no `fdatasync` call
   * after it) and closed while it is renamed into place; a folder just made is opened for its fsync while
   * the file is written. So a new chat session's `metadata.json` waits for five calls to the thread pool
   * one after another (make the folder, create the file, write, rename, fsync the folders), not nine.
   */
  async function writeFile(key: string, data: Uint8Array, durable: boolean): Promise<boolean> {
    const path = pathOf(key);
    const directory = dirname(path);
    temporaryCount += 1;
    const temporaryPath = join(directory, `${temporaryPrefix}${temporaryCount.toString(36)}`);
    let createdParents: string[] = [];
    try {
      const created = await createFile(temporaryPath, constants.O_WRONLY | (constants.O_DSYNC ?? 0));
      createdParents = created.createdParents;
      if (durable && createdParents.length > 0) openDirectoryAhead(directory);
      const handle = created.handle;
      try {
        await writeAll(handle, data);
        // No write (an empty value) or no O_DSYNC: nothing synced the file yet.
        if (!SYNCED_WRITES || data.length === 0) await handle.datasync();
        counters.fileSyncs += 1;
      } catch (error) {
        await handle.close().catch(() => undefined);
        throw error;
      }
      if (RENAME_OPEN_FILES) {
        // Durable already: closing it need not come first (POSIX renames an open file), and a close that
        // failed could not take the bytes back.
        const closing = handle.close().catch(() => undefined);
        await Promise.all([rename(temporaryPath, path), closing]);
      } else {
        await handle.close();
        await rename(temporaryPath, path);
      }
    } catch (error) {
      await rm(temporaryPath, { force: true }).catch(() => undefined);
      throw error;
    }
    // Not durable: the folder is not synced, so a crash may undo the rename — leaving the old file, whole
    // (the new bytes were synced before it, so no filesystem can leave an empty or partial file instead).
    if (durable) await syncEntries(directory, createdParents);
    counters.writes += 1;
    return true;
  }

  async function deleteFile(key: string): Promise<boolean> {
    const path = pathOf(key);
    try {
      await unlink(path);
    } catch (error) {
      const code = errorCode(error);
      // Missing, or a folder of other keys: either way no value is stored at this key.
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR' || code === 'EPERM') return false;
      throw error;
    }
    await syncRemoval(await removeEmptiedFolders(dirname(path)));
    counters.deletes += 1;
    return true;
  }

  /**
   * Removes `directory` if a delete left it empty, and each parent it empties in turn, up to (not
   * including) the root; returns the first folder left, whose entries changed. `rmdir` fails on a folder
   * that is not empty (a file was created in it meanwhile, or it holds other keys), which ends the climb.
   */
  async function removeEmptiedFolders(directory: string): Promise<string> {
    let current = directory;
    while (current !== root && current.startsWith(root + sep)) {
      try {
        await rmdir(current);
      } catch {
        // Not empty (ENOTEMPTY, EEXIST), or gone already (another delete emptied it first): it stays.
        break;
      }
      forgetDirectory(current);
      current = dirname(current);
    }
    return current;
  }

  /** fsyncs the folder a removal changed; if a concurrent delete removed that one too, its parent instead. */
  async function syncRemoval(directory: string): Promise<void> {
    let current = directory;
    for (;;) {
      try {
        await syncDirectory(current);
        return;
      } catch (error) {
        if (errorCode(error) !== 'ENOENT' || current === root || !current.startsWith(root + sep)) throw error;
        current = dirname(current);
      }
    }
  }

  const lanes = createKeyLanes({ appendBatch, failure });

  /** Makes what was written to `key`'s file durable (for the journal: its checkpoints and `forget`). */
  async function syncKeyFile(key: string): Promise<void> {
    let handle: FileHandle;
    try {
      handle = await open(pathOf(key), 'r');
    } catch (error) {
      if (isNoValue(error)) return;
      throw error;
    }
    try {
      await handle.datasync();
    } finally {
      await handle.close().catch(ignore);
    }
  }

  // What a process that died with appends in its journal (the machine crashed) left unwritten is written
  // now, before anything is read.
  try {
    replayJournals(root, pathOf);
  } catch (error) {
    throw new PlatformError(
      'CHAT_ERR_STORAGE_FAILED',
      `flatfile: could not replay the append journal under ${root}: ${error instanceof Error ? error.message : String(error)}`,
      { details: { root }, cause: error },
    );
  }
  const journal =
    options.journal === false
      ? undefined
      : openAppendJournal({
          root,
          syncFile: syncKeyFile,
          ...(options.journalCheckpointBytes === undefined
            ? {}
            : { checkpointBytes: options.journalCheckpointBytes }),
        });

  /**
   * Writes `data` at the end of `file` into the page cache (readers see it at once) and journals it: durable
   * once its journal record is (flatfile-journal.ts). The write is synchronous: a few microseconds into the
   * page cache, where a round through the thread pool cost the event loop more, and the journal's one
   * thread-pool write serves the appends of many turns.
   */
  function writeJournaled(key: string, file: AppendFile, data: Uint8Array): Promise<void> {
    try {
      let written = 0;
      while (written < data.length) {
        written += writeSync(file.handle.fd, data, written, data.length - written);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    return (journal as AppendJournal).record(key, file.size, data);
  }

  async function walk(directory: string, keyPrefix: string, partial: string, keys: string[]): Promise<void> {
    let entries: Dirent[];
    try {
      entries = await readdir(directory, { withFileTypes: true });
    } catch (error) {
      const code = errorCode(error);
      // The folder does not exist (or vanished while we walked): it holds no keys.
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw error;
    }
    const folders: string[] = [];
    for (const entry of entries) {
      const name = entry.name;
      if (!name.startsWith(partial) || name.startsWith(RESERVED_NAME_PART)) continue;
      const key = keyPrefix + name;
      if (entry.isDirectory()) folders.push(name);
      else if (entry.isFile() && isValidKey(key)) keys.push(key);
    }
    // Several folders at once (a user's thousands of session folders one after another took ~0.1 ms of
    // waiting each), but a few only, so a listing does not queue its reads ahead of every other file
    // operation in the thread pool. The caller sorts the keys.
    for (let start = 0; start < folders.length; start += LIST_FOLDERS_AT_ONCE) {
      await Promise.all(
        folders
          .slice(start, start + LIST_FOLDERS_AT_ONCE)
          .map((name) => walk(join(directory, name), `${keyPrefix}${name}/`, '', keys)),
      );
    }
  }

  return {
    root,
    async read(key) {
      assertValidKey(key);
      assertOpen();
      try {
        const buffer = await readFile(pathOf(key));
        // A plain Uint8Array, like every driver returns; a view when the Buffer owns its whole memory.
        const ownsMemory = buffer.byteOffset === 0 && buffer.buffer.byteLength === buffer.byteLength;
        return ownsMemory ? new Uint8Array(buffer.buffer, 0, buffer.byteLength) : new Uint8Array(buffer);
      } catch (error) {
        if (isNoValue(error)) return undefined;
        throw failure('read', key, error);
      }
    },
    async readFrom(key, offset) {
      assertValidKey(key);
      assertOffset(offset);
      assertOpen();
      let handle: FileHandle | undefined;
      try {
        handle = await open(pathOf(key), 'r');
        // What is there now; lines appended meanwhile are the next reader's.
        const { size } = await handle.stat();
        const tail = new Uint8Array(Math.max(0, size - offset));
        let filled = 0;
        while (filled < tail.length) {
          const { bytesRead } = await handle.read(tail, filled, tail.length - filled, offset + filled);
          if (bytesRead === 0) break;
          filled += bytesRead;
        }
        return filled === tail.length ? tail : tail.slice(0, filled);
      } catch (error) {
        if (isNoValue(error)) return undefined;
        throw failure('read', key, error);
      } finally {
        await handle?.close().catch(() => undefined);
      }
    },
    async write(key, data, options) {
      assertValidKey(key);
      assertWholeLines(key, data, 'write');
      assertOpen();
      // Copy now: the caller may reuse its buffer before the queued write runs.
      const copy = copyBytes(data);
      const durable = options?.durable ?? true;
      // A file held open for appending would keep writing to the replaced file: close it first.
      return lanes.exclusive(key, 'write', async () => {
        await journal?.forget(key);
        await closeAppendFile(key);
        return writeFile(key, copy, durable);
      });
    },
    async delete(key) {
      assertValidKey(key);
      assertOpen();
      return lanes.exclusive(key, 'delete', async () => {
        await journal?.forget(key);
        await closeAppendFile(key);
        return deleteFile(key);
      });
    },
    async list(prefix) {
      assertValidPrefix(prefix);
      assertOpen();
      const folder = prefix.slice(0, prefix.lastIndexOf('/') + 1);
      const partial = prefix.slice(folder.length);
      const keys: string[] = [];
      try {
        await walk(folder === '' ? root : pathOf(folder.slice(0, -1)), folder, partial, keys);
      } catch (error) {
        throw failure('list', prefix, error);
      }
      return keys.sort();
    },
    async size(key) {
      assertValidKey(key);
      assertOpen();
      try {
        const stats = await stat(pathOf(key));
        return stats.isFile() ? stats.size : undefined;
      } catch (error) {
        if (isNoValue(error)) return undefined;
        throw failure('read', key, error);
      }
    },
    async exists(key) {
      assertValidKey(key);
      assertOpen();
      try {
        return (await stat(pathOf(key))).isFile();
      } catch (error) {
        const code = errorCode(error);
        if (code === 'ENOENT' || code === 'ENOTDIR') return false;
        throw failure('exists', key, error);
      }
    },
    async append(key, data) {
      assertValidKey(key);
      assertWholeLines(key, data, 'append');
      assertOpen();
      counters.appends += 1;
      const copy = copyBytes(data);
      return lanes.append(key, copy);
    },
    async close() {
      closed = true;
      await lanes.whenIdle();
      await journal?.close();
      const handles = [...[...appendFiles.values()].map((file) => file.handle), ...directories.values()];
      appendFiles.clear();
      directories.clear();
      await Promise.all(handles.map((handle) => handle.close().catch(() => undefined)));
    },
    stats() {
      const journaled = journal?.stats();
      return {
        ...counters,
        journalFlushes: journaled?.flushes ?? 0,
        journalCheckpoints: journaled?.checkpoints ?? 0,
      };
    },
  };
}
