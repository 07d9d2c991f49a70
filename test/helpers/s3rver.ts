/**
 * s3rver (an S3 API over local files) for tests and benchmarks: started on a free port of 127.0.0.1 with a
 * temporary directory and one bucket, so it is always available and needs nothing installed.
 * Run as a script (`node test/helpers/s3rver.ts [bucket]`) it starts one in its own process and prints
 * `{"endpoint": …}` as one JSON line (the storage benchmark does that, so the server gets its own core).
 */

import { createHash, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { S3StorageOptions } from '../../src/storage/drivers/s3.ts';

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

interface S3rverObject {
  bucket: string;
  key: string;
  metadata: Record<string, string>;
  content: Buffer | AsyncIterable<Buffer>;
}

interface S3rverFilesystemStore {
  getResourcePath(bucket: string, key: string, resource: string): string;
  putMetadata(bucket: string, key: string, metadata: Record<string, string>, md5: string): Promise<void>;
}

/**
 * s3rver 3.7's putObject answers the PUT once the body has passed its checksum step, before the file
 * is written, and writes the object file in place: a GET right after a PUT, or during another PUT of the
 * key, can read a short or empty object (seen once in the contract suite's racing-writes test on a busy
 * machine). Real S3 replaces an object whole and a 200 means it is stored; this makes s3rver do the same
 * (the whole body, then a temporary file renamed over the object) so tests check our driver, not s3rver.
 */
const store = require('s3rver/lib/stores/filesystem.js') as { prototype: S3rverFilesystemStore };
Object.assign(store.prototype, {
  async putObject(this: S3rverFilesystemStore, object: S3rverObject) {
    const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
    await mkdir(dirname(objectPath), { recursive: true });
    let content: Buffer;
    if (Buffer.isBuffer(object.content)) content = object.content;
    else {
      const chunks: Buffer[] = [];
      for await (const chunk of object.content) chunks.push(chunk);
      content = Buffer.concat(chunks);
    }
    const md5 = createHash('md5').update(content).digest('hex');
    // Ends in ".tmp", not in s3rver's object suffix, so listings never show it.
    const temporary = `${objectPath}.${randomUUID()}.tmp`;
    await writeFile(temporary, content);
    await rename(temporary, objectPath);
    await this.putMetadata(object.bucket, object.key, object.metadata, md5);
    return { size: content.length, md5 };
  },
});

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
