import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeNpy, encodeNpy } from './npy.ts';

const ascii = (text: string): number[] => [...text].map((character) => character.charCodeAt(0));

describe('encodeNpy', () => {
  it('writes the exact bytes numpy.save writes for a 2×2 float32 matrix', () => {
    // np.save(f, np.array([[1.5, -2], [0, 3.25]], dtype='<f4')) with NumPy 2.4: magic, version 1.0,
    // header length 118 (0x76): the 59-character dict, 20 growth spaces, 38 padding spaces, a newline, the data.
    const header = `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }${' '.repeat(20 + 38)}\n`;
    const expected = new Uint8Array([
      0x93,
      ...ascii('NUMPY'),
      1,
      0,
      0x76,
      0x00,
      ...ascii(header),
      ...[0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x50, 0x40],
    ]);
    const bytes = encodeNpy({ data: new Float32Array([1.5, -2, 0, 3.25]), rows: 2, columns: 2 });
    expect(header.length).toBe(118);
    expect([...bytes]).toEqual([...expected]);
  });

  it('starts the data on a 64-byte boundary whatever the shape', () => {
    for (const [rows, columns] of [
      [0, 384],
      [1, 1],
      [12345, 3],
      [10 ** 15, 0],
    ] as const) {
      const bytes = encodeNpy({ data: new Float32Array(rows * columns), rows, columns });
      const headerLength = bytes[8]! + bytes[9]! * 256;
      expect((10 + headerLength) % 64).toBe(0);
      expect(bytes[10 + headerLength - 1]).toBe(0x0a);
    }
  });

  it('refuses data that does not fill the shape', () => {
    expect(() => encodeNpy({ data: new Float32Array(5), rows: 2, columns: 3 })).toThrow(/needs 6 values/);
  });
});

describe('decodeNpy', () => {
  it('reads back what it wrote, bit for bit (NaN, infinities, -0 included)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 20 }),
        fc.integer({ min: 1, max: 40 }),
        fc.array(fc.float(), { minLength: 800, maxLength: 800 }),
        (rows, columns, values) => {
          const data = Float32Array.from(values.slice(0, rows * columns));
          const decoded = decodeNpy(encodeNpy({ data, rows, columns }));
          expect(decoded.rows).toBe(rows);
          expect(decoded.columns).toBe(columns);
          expect(new Uint8Array(decoded.data.buffer)).toEqual(new Uint8Array(data.buffer));
        },
      ),
    );
  });

  it('reads a file that starts at an unaligned offset of a larger buffer', () => {
    const file = encodeNpy({ data: new Float32Array([1, 2, 3]), rows: 1, columns: 3 });
    const shifted = new Uint8Array(file.length + 3);
    shifted.set(file, 3);
    expect([...decodeNpy(shifted.subarray(3)).data]).toEqual([1, 2, 3]);
  });

  it('rejects what is not a float matrix with a clear message', () => {
    expect(() => decodeNpy(new TextEncoder().encode('{"not": "npy"}'))).toThrow(/magic/);
    const int64 = encodeNpy({ data: new Float32Array(2), rows: 1, columns: 2 });
    int64.set(ascii("'<i8'"), 10 + "{'descr': ".length);
    expect(() => decodeNpy(int64)).toThrow(/unsupported .npy dtype <i8/);
    const truncated = encodeNpy({ data: new Float32Array(6), rows: 2, columns: 3 }).subarray(0, 140);
    expect(() => decodeNpy(truncated)).toThrow(/truncated/);
  });
});

// The real reader: NumPy itself, when this machine's Python has it (it is not a project dependency).
const python = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
const hasNumpy = python.status === 0;

describe.skipIf(!hasNumpy)('interoperability with NumPy (python3 with numpy on this machine)', () => {
  it('numpy.load reads our file, and we read numpy.save’s (float32 and float64)', () => {
    const directory = mkdtempSync(join(tmpdir(), 'parley-npy-'));
    try {
      const data = Float32Array.from({ length: 7 * 5 }, (_, index) => Math.sin(index) * 1e3);
      writeFileSync(join(directory, 'ours.npy'), encodeNpy({ data, rows: 7, columns: 5 }));
      const script = [
        'import numpy as np, sys, io',
        `d = sys.argv[1]`,
        `a = np.load(d + '/ours.npy')`,
        `assert a.dtype == np.float32 and a.shape == (7, 5), (a.dtype, a.shape)`,
        `np.save(d + '/theirs32.npy', a * 2)`,
        `np.save(d + '/theirs64.npy', (a * 3).astype(np.float64))`,
        // Our bytes must equal what numpy.save writes for the same array.
        `b = io.BytesIO(); np.save(b, a); assert b.getvalue() == open(d + '/ours.npy', 'rb').read()`,
        `print(float(a[6, 4]))`,
      ].join('\n');
      const run = spawnSync('python3', ['-c', script, directory], { encoding: 'utf8' });
      expect(run.stderr).toBe('');
      expect(Number(run.stdout.trim())).toBe(data[34]);
      const twice = decodeNpy(readFileSync(join(directory, 'theirs32.npy')));
      expect([...twice.data]).toEqual([...data].map((value) => Math.fround(value * 2)));
      const thrice = decodeNpy(readFileSync(join(directory, 'theirs64.npy')));
      expect(thrice.rows).toBe(7);
      expect([...thrice.data]).toEqual([...data].map((value) => Math.fround(value * 3)));
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
});
