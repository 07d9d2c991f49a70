/**
 * Encryption at rest's cost: flatfile storage plain beside the same flatfile under the encrypted wrapper
 * (AES-256-GCM, one framed record per append; security/encryption-at-rest.ts), in one run, on the
 * operations a chat turn makes of its session log:
 *
 * - `append`: one ~1 KB JSON line at a time (each acknowledged, so fsync-bound);
 * - `append ×32`: 32 at once to one log (group commit shares the fsyncs; the encryption runs per line);
 * - `read 200 lines`: a whole log of 200 ~1 KB lines (a history load without the read cache);
 * - `write 1 KB`: a metadata file replaced.
 *
 * Plain and encrypted take turns round by round on fresh keys, and each row gives the medians over rounds
 * of operations per second, and their ratio. Run: `npx node bench/storage-encryption/index.ts`
 * (about a minute; `--quick` for a few seconds).
 */

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareEncryptionAtRest } from '../../src/security/encryption-at-rest.ts';
import { createFlatfileStorage } from '../../src/storage/drivers/flatfile.ts';
import type { Storage } from '../../src/storage/types.ts';
import { formatTable, quantile } from '../report.ts';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 3 : 7;
const ROUND_MS = quick ? 300 : 1000;
const USER = '0190a1b2-0000-7000-8000-00000000a11c';
const line = Buffer.from(`${JSON.stringify({ role: 'user', content: 'x'.repeat(1000) })}\n`);
const metadata = randomBytes(512).toString('hex');

type Operation = {
  name: string;
  prepare?: (storage: Storage, key: string) => Promise<void>;
  run: (storage: Storage, key: string) => Promise<number>;
};

const operations: Operation[] = [
  {
    name: 'append',
    run: async (storage, key) => {
      await storage.append(key, line);
      return 1;
    },
  },
  {
    name: 'append ×32',
    run: async (storage, key) => {
      await Promise.all(Array.from({ length: 32 }, () => storage.append(key, line)));
      return 32;
    },
  },
  {
    name: 'read 200 lines',
    prepare: async (storage, key) => {
      for (let index = 0; index < 200; index++) await storage.append(key, line);
    },
    run: async (storage, key) => (((await storage.read(key))?.length ?? 0) > 0 ? 1 : 0),
  },
  {
    name: 'write 1 KB',
    run: async (storage, key) => {
      await storage.write(key, Buffer.from(metadata));
      return 1;
    },
  },
];

/** Operations per second of `operation` on `storage` for ROUND_MS, on a fresh key. */
async function round(storage: Storage, operation: Operation, roundIndex: number): Promise<number> {
  const key = `sessions/${USER}/s${roundIndex}-${operation.name.replace(/\W+/g, '-')}/${operation.name.startsWith('write') ? 'metadata.json' : 'messages.jsonl'}`;
  await operation.prepare?.(storage, key);
  let done = 0;
  const started = performance.now();
  while (performance.now() - started < ROUND_MS) done += await operation.run(storage, key);
  return done / ((performance.now() - started) / 1000);
}

const root = await mkdtemp(join(tmpdir(), 'parley-bench-encryption-'));
const plain = createFlatfileStorage({ root: join(root, 'plain') });
const encrypted = prepareEncryptionAtRest({
  keys: { k1: randomBytes(32).toString('base64') },
  active_key_id: '',
  sensitive: ['sessions/{user}/**'],
  plaintext_reads: false,
  data_key_cache: { ttl_ms: 300_000, max_entries: 10_000 },
})(createFlatfileStorage({ root: join(root, 'encrypted') })).storage;

const median = (values: number[]) =>
  quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  );
const rows: string[][] = [];
try {
  for (const operation of operations) {
    await round(plain, operation, -1); // warm-up
    await round(encrypted, operation, -1);
    const plainRates: number[] = [];
    const encryptedRates: number[] = [];
    const ratios: number[] = [];
    for (let index = 0; index < ROUNDS; index++) {
      const p = await round(plain, operation, index);
      const e = await round(encrypted, operation, index);
      plainRates.push(p);
      encryptedRates.push(e);
      ratios.push(e / p);
    }
    rows.push([
      operation.name,
      median(plainRates).toFixed(0),
      median(encryptedRates).toFixed(0),
      `${median(ratios).toFixed(2)}×`,
    ]);
  }
  console.log(`flatfile, plain vs encrypted (medians of ${ROUNDS} rounds of ${ROUND_MS} ms, ops/s)\n`);
  console.log(formatTable(['operation', 'plain', 'encrypted', 'encrypted ÷ plain'], rows));
} finally {
  await plain.close();
  await encrypted.close();
  await rm(root, { recursive: true, force: true });
}
