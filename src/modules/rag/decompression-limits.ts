/**
 * Bounds on what a compressed upload may expand to, checked before a parser sees it. A 20 MB DOCX (a ZIP
 * archive) or PDF (deflated streams) can inflate to gigabytes — a zip bomb — and mammoth (through JSZip)
 * and PDF.js inflate whatever they are given, with no limit of their own. So the archive's entries, or the
 * PDF's deflated streams, are inflated here first with node:zlib's `maxOutputLength`: a file whose real
 * (not declared) uncompressed size passes `rag.max_uncompressed_bytes`, or a ZIP with more than
 * `rag.max_archive_entries` entries, is refused with CHAT_ERR_PAYLOAD_TOO_LARGE (413) before any parser runs.
 * This costs one extra inflate of the file, and keeps at most one entry's output in memory at a time.
 */
import { constants, inflateRawSync, inflateSync } from 'node:zlib';
import { PlatformError } from '../../core/errors.ts';

/** What a compressed file may expand to (`rag.max_uncompressed_bytes`, `rag.max_archive_entries`). */
export interface DecompressionLimits {
  /** Bytes all entries (ZIP) or deflated streams (PDF) of one file may inflate to, together. */
  maxUncompressedBytes: number;
  /** Entries a ZIP archive may have. */
  maxArchiveEntries: number;
}

/** The defaults behind the config keys: a 50 MiB expansion, 10,000 entries (a DOCX has tens). */
export const DEFAULT_DECOMPRESSION_LIMITS: Readonly<DecompressionLimits> = Object.freeze({
  maxUncompressedBytes: 50 * 1024 * 1024,
  maxArchiveEntries: 10_000,
});

/** A compressed file expands past a limit. */
export class DecompressionLimitError extends PlatformError {
  constructor(message: string, details: Record<string, unknown>) {
    super('CHAT_ERR_PAYLOAD_TOO_LARGE', message, { details });
    this.name = 'DecompressionLimitError';
  }
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL_HEADER = 0x02014b50;
const LOCAL_HEADER = 0x04034b50;
const ZIP64_EXTRA = 0x0001;
const STORED = 0;
const DEFLATED = 8;

function mebibytes(bytes: number): string {
  return `${Math.round((bytes / 1024 / 1024) * 10) / 10} MiB`;
}

function tooLarge(label: string, limits: DecompressionLimits): DecompressionLimitError {
  return new DecompressionLimitError(
    `${label}: decompresses to more than ${mebibytes(limits.maxUncompressedBytes)} (rag.max_uncompressed_bytes)`,
    { filename: label, limit: limits.maxUncompressedBytes, field: 'max_uncompressed_bytes' },
  );
}

/**
 * Inflates `data` within what is left of the budget and returns its size, or throws when it would pass it.
 * `undefined` when the data is not a valid stream (the parser reports that, in its words).
 */
function inflatedSize(
  data: Uint8Array,
  raw: boolean,
  room: number,
  label: string,
  limits: DecompressionLimits,
): Buffer | undefined {
  try {
    // One byte over the room is enough to know it does not fit; Z_SYNC_FLUSH accepts a stream cut short.
    const options = { maxOutputLength: Math.max(1, room + 1), finishFlush: constants.Z_SYNC_FLUSH };
    const output = raw ? inflateRawSync(data, options) : inflateSync(data, options);
    if (output.length > room) throw tooLarge(label, limits);
    return output;
  } catch (error) {
    if ((error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(label, limits);
    if (error instanceof DecompressionLimitError) throw error;
    return undefined;
  }
}

/**
 * Checks a ZIP archive (DOCX) against the limits: its entry count, and the real size of every entry once
 * inflated. An archive that cannot be read is left to the parser, which says why.
 */
export function checkZipArchive(bytes: Uint8Array, label: string, limits: DecompressionLimits): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = findEndOfCentralDirectory(view);
  if (end === undefined) return;
  let entries = view.getUint16(end + 10, true);
  let directoryOffset = view.getUint32(end + 16, true);
  // ZIP64: the counts and offset live in another record, found through the locator just before.
  if (end >= 20 && view.getUint32(end - 20, true) === ZIP64_LOCATOR) {
    const record = Number(view.getBigUint64(end - 12, true));
    if (record + 56 <= view.byteLength && view.getUint32(record, true) === ZIP64_EOCD) {
      entries = Number(view.getBigUint64(record + 32, true));
      directoryOffset = Number(view.getBigUint64(record + 48, true));
    }
  }
  const tooMany = (count: number) =>
    new DecompressionLimitError(
      `${label}: has ${count} or more archive entries, more than ${limits.maxArchiveEntries} (rag.max_archive_entries)`,
      { filename: label, limit: limits.maxArchiveEntries, field: 'max_archive_entries' },
    );
  if (entries > limits.maxArchiveEntries) throw tooMany(entries);

  let room = limits.maxUncompressedBytes;
  let position = directoryOffset;
  // The declared count may lie: the walk stops at the limit whatever it says.
  for (let count = 0; position + 46 <= view.byteLength; count++) {
    if (view.getUint32(position, true) !== CENTRAL_HEADER) break;
    if (count >= limits.maxArchiveEntries) throw tooMany(count + 1);
    const method = view.getUint16(position + 10, true);
    let compressedSize = view.getUint32(position + 20, true);
    let declaredSize = view.getUint32(position + 24, true);
    const nameLength = view.getUint16(position + 28, true);
    const extraLength = view.getUint16(position + 30, true);
    const commentLength = view.getUint16(position + 32, true);
    let localOffset = view.getUint32(position + 42, true);
    const zip64 = readZip64Extra(view, position + 46 + nameLength, extraLength, {
      declaredSize,
      compressedSize,
      localOffset,
    });
    ({ declaredSize, compressedSize, localOffset } = zip64);
    position += 46 + nameLength + extraLength + commentLength;

    // What the header says is checked first (cheap); what the data really inflates to, next.
    if (declaredSize > room) throw tooLarge(label, limits);
    const start = localDataStart(view, localOffset);
    if (start === undefined || start + compressedSize > view.byteLength) continue;
    const data = bytes.subarray(start, start + compressedSize);
    if (method === STORED) {
      if (data.length > room) throw tooLarge(label, limits);
      room -= data.length;
    } else if (method === DEFLATED) {
      room -= inflatedSize(data, true, room, label, limits)?.length ?? 0;
    }
    // Other methods: JSZip (under mammoth) reads none, so the parser refuses the file anyway.
  }
}

function findEndOfCentralDirectory(view: DataView): number | undefined {
  // The record is 22 bytes plus a comment of at most 65,535 bytes, at the very end.
  const last = view.byteLength - 22;
  for (let position = last; position >= 0 && position >= last - 65_535; position--) {
    if (view.getUint32(position, true) === EOCD) return position;
  }
  return undefined;
}

function readZip64Extra(
  view: DataView,
  start: number,
  length: number,
  sizes: { declaredSize: number; compressedSize: number; localOffset: number },
): { declaredSize: number; compressedSize: number; localOffset: number } {
  const result = { ...sizes };
  const wide = 0xffffffff;
  if (result.declaredSize !== wide && result.compressedSize !== wide && result.localOffset !== wide)
    return result;
  for (let field = start; field + 4 <= start + length && field + 4 <= view.byteLength; ) {
    const id = view.getUint16(field, true);
    const size = view.getUint16(field + 2, true);
    if (id === ZIP64_EXTRA) {
      // Only the fields whose 32-bit value is 0xFFFFFFFF are present, in this order.
      let at = field + 4;
      const next = (): number | undefined => {
        if (at + 8 > field + 4 + size || at + 8 > view.byteLength) return undefined;
        const value = Number(view.getBigUint64(at, true));
        at += 8;
        return value;
      };
      if (result.declaredSize === wide) result.declaredSize = next() ?? result.declaredSize;
      if (result.compressedSize === wide) result.compressedSize = next() ?? result.compressedSize;
      if (result.localOffset === wide) result.localOffset = next() ?? result.localOffset;
      return result;
    }
    field += 4 + size;
  }
  return result;
}

function localDataStart(view: DataView, offset: number): number | undefined {
  if (offset + 30 > view.byteLength || view.getUint32(offset, true) !== LOCAL_HEADER) return undefined;
  return offset + 30 + view.getUint16(offset + 26, true) + view.getUint16(offset + 28, true);
}

const STREAM = /stream\r?\n/g;

/**
 * Checks a PDF against the limits: the deflated (FlateDecode) streams PDF.js would inflate to extract text
 * — content streams, fonts, object streams — inflated here with the budget (a stream deflated twice over,
 * twice). Image streams are left out: text extraction never decodes them. A stream that is not valid zlib
 * data (an encrypted PDF's) is left to PDF.js.
 */
export function checkPdfStreams(bytes: Uint8Array, label: string, limits: DecompressionLimits): void {
  // latin1 keeps one character per byte, so string offsets are byte offsets.
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  let room = limits.maxUncompressedBytes;
  for (const match of text.matchAll(STREAM)) {
    const keyword = match.index;
    // "endstream" also ends in "stream": only a keyword that starts a stream counts.
    if (text.startsWith('end', keyword - 3)) continue;
    const dictionaryStart = text.lastIndexOf('obj', keyword);
    if (dictionaryStart === -1) continue;
    const dictionary = text.slice(dictionaryStart, keyword);
    const passes = dictionary.match(/\/FlateDecode\b|\/Fl\b/g)?.length ?? 0;
    if (passes === 0 || /\/Subtype\s*\/Image\b/.test(dictionary)) continue;
    const start = keyword + match[0].length;
    const end = text.indexOf('endstream', start);
    if (end === -1) continue;
    let data: Uint8Array | undefined = bytes.subarray(start, end);
    for (let pass = 0; pass < passes && data !== undefined; pass++) {
      const output: Buffer | undefined = inflatedSize(data, false, room, label, limits);
      // The last pass is what PDF.js holds; earlier ones count too, as they are inflated on the way.
      room -= output?.length ?? 0;
      data = output;
    }
  }
}
