/**
 * Writing to a file in synchronised-data mode, shared by the flatfile driver and its append journal.
 */

import { constants, write } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

/**
 * O_DSYNC: each write returns once its bytes (and the size that makes them readable) are on disk, as if
 * followed by fdatasync. Where the platform has no O_DSYNC (Windows), an explicit datasync follows.
 */
export const SYNCED_WRITES = constants.O_DSYNC !== undefined;

/**
 * Writes all of `data` at the file's position (its end, for a file opened to append). Through the callback
 * API on the handle's descriptor, not `FileHandle.write`: that one costs each write about seven promises
 * (its own async layers), which a chat turn's append paid on the event loop; this costs one.
 */
export function writeAll(handle: FileHandle, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    let offset = 0;
    const writeRest = () =>
      write(handle.fd, data, offset, data.length - offset, null, (error, bytesWritten) => {
        if (error !== null) return reject(error);
        offset += bytesWritten;
        if (offset < data.length) writeRest();
        else resolve();
      });
    writeRest();
  });
}

/**
 * `writeAll` to a file opened with O_DSYNC, durable once it resolves: the write is the flush, else a
 * datasync follows. Not an async function: an append batch passes here, and its promise is the only one.
 */
export function writeDurably(handle: FileHandle, data: Uint8Array): Promise<void> {
  const written = writeAll(handle, data);
  return SYNCED_WRITES ? written : written.then(() => handle.datasync());
}
