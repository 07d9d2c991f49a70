/**
 * A separate process appending JSON lines to one S3 key, for the two-process append test of the s3
 * driver: `node test/helpers/s3-append-worker.ts '<json options>'`. It keeps `concurrency` appends in
 * flight, checks every `readEvery` appends that all of its acknowledged lines are readable, and prints
 * `{"acknowledged": n, "reads": n}` as its last line (exit 1 with the error otherwise).
 */

import { createS3Storage, type S3StorageOptions } from '../../src/storage/drivers/s3.ts';
import { appendJsonLine, readJsonLines } from '../../src/storage/json-lines.ts';

interface WorkerOptions {
  storage: S3StorageOptions;
  key: string;
  worker: string;
  count: number;
  concurrency: number;
  readEvery: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as WorkerOptions;
const storage = await createS3Storage(options.storage);
const acknowledged = new Set<number>();
let reads = 0;

async function checkReadable(): Promise<void> {
  reads++;
  // What was acknowledged before the read started must all be in it.
  const snapshot = [...acknowledged];
  const mine = new Set(
    (await readJsonLines<{ worker: string; seq: number }>(storage, options.key))
      .filter((line) => line.worker === options.worker)
      .map((line) => line.seq),
  );
  const missing = snapshot.filter((seq) => !mine.has(seq));
  if (missing.length > 0)
    throw new Error(`acknowledged lines not readable: ${missing.slice(0, 5).join(', ')}`);
}

try {
  const inFlight = new Set<Promise<void>>();
  for (let seq = 0; seq < options.count; seq++) {
    const append = appendJsonLine(storage, options.key, { worker: options.worker, seq }).then(() => {
      acknowledged.add(seq);
    });
    inFlight.add(append);
    void append.finally(() => inFlight.delete(append)).catch(() => undefined);
    if (inFlight.size >= options.concurrency) await Promise.race(inFlight);
    if (seq % options.readEvery === options.readEvery - 1) await checkReadable();
  }
  await Promise.all(inFlight);
  await checkReadable();
  await storage.close();
  console.log(JSON.stringify({ acknowledged: acknowledged.size, reads }));
} catch (error) {
  console.error(error);
  process.exit(1);
}
