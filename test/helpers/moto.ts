/**
 * moto (a Python S3 server, `moto_server` on the PATH) for tests: a second S3 implementation beside s3rver,
 * written independently of it, so the S3 driver is shown to speak S3 and not one test double's dialect.
 * Unlike s3rver it is not on npm (pip install "moto[server]"), so where it is not installed the suite
 * skips with a message, under CI too: the driver's required S3 tests are the s3rver ones, which never skip.
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { S3StorageOptions } from '../../src/storage/drivers/s3.ts';
import { freePort } from './redis-server.ts';

/** A running moto server with one empty bucket. */
export interface RunningMoto {
  /** Options for `createS3Storage` (add a `prefix`). */
  readonly storageOptions: S3StorageOptions;
  close(): Promise<void>;
}

/** Whether `moto_server` can be started here; says why the suite skips when it cannot. */
export function motoAvailable(): boolean {
  const found = spawnSync('moto_server', ['--help'], { stdio: 'ignore' }).status === 0;
  if (!found)
    console.warn('skipping the moto S3 tests: `moto_server` is not installed (pip install "moto[server]")');
  return found;
}

/** Starts `moto_server` on a free port of 127.0.0.1 and creates `bucket` in it. */
export async function startMoto(bucket = 'parley-test'): Promise<RunningMoto> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const server: ChildProcess = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], {
    stdio: 'ignore',
  });
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  server.once('error', () => {}); // a missing binary shows as "did not answer" below
  const storageOptions: S3StorageOptions = {
    bucket,
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'moto', secretAccessKey: 'moto' },
  };
  const client = new S3Client({ ...storageOptions, maxAttempts: 1 });
  try {
    // Python takes a second or two to start: ask until the bucket can be made.
    for (const started = Date.now(); ; ) {
      try {
        await client.send(new CreateBucketCommand({ Bucket: bucket }));
        break;
      } catch (error) {
        if (Date.now() - started > 20_000 || server.exitCode !== null) {
          server.kill('SIGKILL');
          throw new Error(`moto_server on ${endpoint} did not answer within 20 s: ${String(error)}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  } finally {
    client.destroy();
  }
  return {
    storageOptions,
    async close() {
      server.kill('SIGTERM');
      await exited;
    },
  };
}
