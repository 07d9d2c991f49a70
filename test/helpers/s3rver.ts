/**
 * s3rver (an S3 API over local files) for tests and benchmarks: started on a free port of 127.0.0.1 with a
 * temporary directory and one bucket, so it is always available and needs nothing installed.
 * Run as a script (`node test/helpers/s3rver.ts [bucket]`) it starts one in its own process and prints
 * `{"endpoint": …}` as one JSON line (the storage benchmark does that, so the server gets its own core).
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3StorageOptions } from '../../src/storage/drivers/s3.ts';
// Makes each request see one version of an object, and LIST seek an index, as on S3 (see the file).
import './s3rver-store.ts';

interface S3rverOptions {
  address: string;
  port: number;
  silent: boolean;
  directory: string;
  configureBuckets: { name: string }[];
}

interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
}

const require = createRequire(import.meta.url);
const S3rver = require('s3rver') as new (options: S3rverOptions) => S3rverInstance;

/** s3rver's fixed credentials. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/** A running s3rver and how to reach it. */
export interface RunningS3rver {
  readonly endpoint: string;
  readonly bucket: string;
  /** Options for `createS3Storage` (add a `prefix`). */
  readonly storageOptions: S3StorageOptions;
  /** Stops the server and removes its files. */
  close(): Promise<void>;
}

/** Starts s3rver in this process with an empty `bucket`, on `port` (default: a free one). */
export async function startS3rver(bucket = 'parley-test', port = 0): Promise<RunningS3rver> {
  const directory = await mkdtemp(join(tmpdir(), 'parley-s3rver-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  const address = await server.run();
  const endpoint = `http://127.0.0.1:${address.port}`;
  return {
    endpoint,
    bucket,
    storageOptions: s3rverStorageOptions(endpoint, bucket),
    async close() {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/** `createS3Storage` options for an s3rver at `endpoint`. */
export function s3rverStorageOptions(endpoint: string, bucket: string): S3StorageOptions {
  return {
    bucket,
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { ...S3RVER_CREDENTIALS },
  };
}

if (import.meta.main) {
  const running = await startS3rver(process.argv[2]);
  console.log(JSON.stringify({ endpoint: running.endpoint, bucket: running.bucket }));
  const stop = () => void running.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
