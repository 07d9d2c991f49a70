/**
 * The NumPy `.npy` format (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html) for
 * float32 matrices, so `rag/vectors/{index_id}/embeddings.npy` opens with `numpy.load` as it is.
 *
 * Written as version 1.0 exactly the way NumPy writes it (byte for byte): the magic `\x93NUMPY`, the
 * version, a little-endian uint16 header length, then the header — the repr of a dict with sorted keys,
 * spare spaces so the row count can grow in place (NumPy's GROWTH_AXIS_MAX_DIGITS), padding so the data
 * starts on a 64-byte boundary, and a newline — then the rows in C order. Reading also accepts versions
 * 2.0 and 3.0 (uint32 header length) and `<f8` or `>f4` data, converted to float32.
 */
import { ValidationError } from '../../core/errors.ts';

/** A row-major matrix of float32 values: `data.length === rows * columns`. */
export interface Float32Matrix {
  data: Float32Array;
  rows: number;
  columns: number;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
/** NumPy aligns the start of the data to this many bytes. */
const ARRAY_ALIGN = 64;
/** NumPy leaves room for a row count of this many digits, so appending rows need not move the data. */
const GROWTH_AXIS_MAX_DIGITS = 21;
/** Bytes before the header of a version 1.0 file: magic, two version bytes, uint16 length. */
const PREFIX_V1 = MAGIC.length + 2 + 2;

/** The header text NumPy writes for a C-order float32 array of `shape` (without padding). */
function headerText(shape: readonly number[]): string {
  const shapeRepr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dictionary = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeRepr}, }`;
  const growth = shape.length > 0 ? GROWTH_AXIS_MAX_DIGITS - String(shape[0]).length : 0;
  return dictionary + ' '.repeat(Math.max(0, growth));
}

/** Encodes a float32 matrix as a `.npy` file (version 1.0, little-endian, C order), as numpy.save would. */
export function encodeNpy(matrix: Float32Matrix): Uint8Array {
  const { data, rows, columns } = matrix;
  if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(columns) || rows < 0 || columns < 0) {
    throw new ValidationError('a matrix needs whole, non-negative rows and columns', {
      details: { rows, columns },
    });
  }
  if (data.length !== rows * columns) {
    throw new ValidationError(
      `a ${rows}×${columns} matrix needs ${rows * columns} values, got ${data.length}`,
    );
  }
  const header = headerText([rows, columns]);
  const withNewline = header.length + 1;
  const padding = ARRAY_ALIGN - ((PREFIX_V1 + withNewline) % ARRAY_ALIGN);
  const headerLength = withNewline + padding;
  if (headerLength > 0xffff) throw new ValidationError('npy header too long for version 1.0');
  const bytes = new Uint8Array(PREFIX_V1 + headerLength + data.byteLength);
  bytes.set(MAGIC, 0);
  bytes[6] = 1;
  bytes[7] = 0;
  new DataView(bytes.buffer).setUint16(8, headerLength, true);
  const text = `${header}${' '.repeat(padding)}\n`;
  for (let position = 0; position < text.length; position++) {
    bytes[PREFIX_V1 + position] = text.charCodeAt(position);
  }
  const body = PREFIX_V1 + headerLength;
  if (littleEndianHost()) {
    bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), body);
  } else {
    const view = new DataView(bytes.buffer, body);
    for (let index = 0; index < data.length; index++) view.setFloat32(index * 4, data[index]!, true);
  }
  return bytes;
}

/** Decodes a `.npy` file holding a 2-D (or 1-D, read as one row) float array into a float32 matrix. */
export function decodeNpy(bytes: Uint8Array): Float32Matrix {
  if (bytes.length < PREFIX_V1 || MAGIC.some((value, index) => bytes[index] !== value)) {
    throw invalid('not a .npy file (the \\x93NUMPY magic is missing)');
  }
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerStart: number;
  let headerLength: number;
  if (major === 1) {
    headerLength = view.getUint16(8, true);
    headerStart = PREFIX_V1;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw invalid('truncated .npy header');
    headerLength = view.getUint32(8, true);
    headerStart = 12;
  } else {
    throw invalid(`unsupported .npy version ${major}.${bytes[7]}`);
  }
  const dataStart = headerStart + headerLength;
  if (dataStart > bytes.length) throw invalid('truncated .npy header');
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(
    bytes.subarray(headerStart, dataStart),
  );
  const { descr, fortranOrder, shape } = parseHeader(header);
  if (fortranOrder && shape.length > 1 && shape[0]! > 1 && shape[1]! > 1) {
    throw invalid('Fortran-order arrays are not supported; save the array in C order');
  }
  const [rows, columns] = shape.length === 1 ? [1, shape[0]!] : [shape[0]!, shape[1]!];
  const count = rows * columns;
  const itemSize = descr.endsWith('8') ? 8 : 4;
  if (bytes.length - dataStart < count * itemSize) {
    throw invalid(`truncated .npy data: ${rows}×${columns} values need ${count * itemSize} bytes`);
  }
  const data = new Float32Array(count);
  if (descr === '<f4' && littleEndianHost()) {
    // Copy (rather than view) so the matrix owns its memory, does not pin the whole file, and is aligned.
    // (Uint8Array's slice copies; a Node Buffer's own slice would not.)
    const copy = Uint8Array.prototype.slice.call(bytes, dataStart, dataStart + count * 4);
    data.set(new Float32Array(copy.buffer, 0, count));
  } else {
    const little = descr.startsWith('<') || descr.startsWith('|');
    for (let index = 0; index < count; index++) {
      const offset = dataStart + index * itemSize;
      data[index] = itemSize === 8 ? view.getFloat64(offset, little) : view.getFloat32(offset, little);
    }
  }
  return { data, rows, columns };
}

function parseHeader(header: string): { descr: string; fortranOrder: boolean; shape: number[] } {
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw invalid(`malformed .npy header: ${header.trim()}`);
  }
  if (!['<f4', '>f4', '<f8', '>f8'].includes(descr)) {
    throw invalid(`unsupported .npy dtype ${descr}: expected float32 ('<f4') or float64`);
  }
  const shape = shapeText
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map(Number);
  if (shape.length < 1 || shape.length > 2 || shape.some((size) => !Number.isSafeInteger(size) || size < 0)) {
    throw invalid(`unsupported .npy shape (${shapeText}): expected a matrix (rows, columns)`);
  }
  return { descr, fortranOrder: fortran === 'True', shape };
}

function invalid(message: string): ValidationError {
  return new ValidationError(message);
}

let hostEndianness: boolean | undefined;

function littleEndianHost(): boolean {
  hostEndianness ??= new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  return hostEndianness;
}
