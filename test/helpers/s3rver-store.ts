/**
 * Overrides of s3rver 3.7's filesystem store that give it the two properties of S3 the storage driver
 * relies on and its tests check — each request sees one version of an object, and a LIST costs the same
 * however many other objects the bucket holds. Imported for its effect by test/helpers/s3rver.ts.
 *
 * - **One version per request.** s3rver keeps an object in three files (bytes, MD5, metadata) and handles a
 *   request in several asynchronous steps over them, so a GET, HEAD or LIST running beside a PUT of the key
 *   could see the new bytes with the old ETag or metadata (or a short object: its PUT answered before the
 *   file was written). S3 replaces an object whole, and a 200 means it is stored. Here every request does
 *   its file work in one synchronous step, which on s3rver's single event loop no other request can
 *   interleave with (the bodies are small; a PUT still receives its body asynchronously first).
 * - **LIST by an index.** s3rver's LIST walks every folder on the prefix's path and stats every file in
 *   each, so its cost grew with the objects that merely sit beside the prefix (measured: a LIST of one
 *   key's prefix 3.6 ms beside 100 other objects, 17 ms beside 1,000, against 2 ms for a GET). S3 serves a
 *   LIST from a sorted index. Here each bucket keeps its keys sorted in memory (built from the folder on
 *   first use, kept up to date by every write and delete), so a LIST seeks to its prefix; it also returns
 *   keys in S3's order, which s3rver's walk did not (readdir order), so continuation tokens page correctly.
 */

import { createHash } from 'node:crypto';
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';

const require = createRequire(import.meta.url);

type Metadata = Record<string, string | number>;

interface StoredObject {
  bucket: string;
  key: string;
  metadata: Record<string, string>;
  content: Buffer | AsyncIterable<Buffer>;
}

interface FilesystemStore {
  getBucketPath(bucket: string): string;
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
}

interface ListOptions {
  delimiter?: string;
  startAfter?: string;
  prefix?: string;
  maxKeys?: number;
}

interface ObjectModel {
  range?: { start: number; end: number };
}

const store = require('s3rver/lib/stores/filesystem.js') as {
  prototype: FilesystemStore & Record<string, (...args: never[]) => unknown>;
};
const S3Object = require('s3rver/lib/models/object.js') as {
  new (bucket: string, key: string, content: Readable | null, metadata: Metadata): ObjectModel;
  ALLOWED_METADATA: string[];
};

/** How s3rver names the file that holds an object's bytes (its other files carry `._S3rver_` too). */
const OBJECT_SUFFIX = '._S3rver_object';
const STORE_MARK = '._S3rver_';

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

/** An object's metadata as s3rver reports it (its own shape), or `undefined` when there is no object. */
function metadataOf(self: FilesystemStore, bucket: string, key: string): Metadata | undefined {
  const objectPath = self.getResourcePath(bucket, key, 'object');
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(objectPath);
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
  let stored: Metadata = {};
  try {
    stored = JSON.parse(readFileSync(self.getResourcePath(bucket, key, 'metadata.json'), 'utf8')) as Metadata;
  } catch (error) {
    if (!isMissing(error)) throw error;
  }
  let md5: string;
  try {
    md5 = readFileSync(`${objectPath}.md5`, 'utf8');
  } catch (error) {
    if (!isMissing(error)) throw error;
    md5 = createHash('md5').update(readFileSync(objectPath)).digest('hex');
  }
  return {
    ...stored,
    etag: JSON.stringify(md5),
    'last-modified': stat.mtime.toUTCString(),
    'content-length': stat.size,
  };
}

/** Every object key stored under `path`, the folder that stands for the key prefix `folder`. */
function collectKeys(path: string, folder: string, keys: string[]): void {
  for (const name of readdirSync(path)) {
    if (name.endsWith(OBJECT_SUFFIX)) keys.push(folder + name.slice(0, -OBJECT_SUFFIX.length));
    else if (!name.includes(STORE_MARK)) collectKeys(join(path, name), `${folder}${name}/`, keys);
  }
}

/** Each bucket's keys, sorted, by the bucket's folder. */
const keyIndexes = new Map<string, string[]>();

function keyIndex(self: FilesystemStore, bucket: string): string[] {
  const bucketPath = self.getBucketPath(bucket);
  let keys = keyIndexes.get(bucketPath);
  if (keys === undefined) {
    keys = [];
    try {
      collectKeys(bucketPath, '', keys);
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
    keys.sort();
    keyIndexes.set(bucketPath, keys);
  }
  return keys;
}

/** The position of the first key not below `target`. */
function lowerBound(keys: string[], target: string): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (keys[middle]! < target) low = middle + 1;
    else high = middle;
  }
  return low;
}

function indexKey(self: FilesystemStore, bucket: string, key: string): void {
  const keys = keyIndex(self, bucket);
  const at = lowerBound(keys, key);
  if (keys[at] !== key) keys.splice(at, 0, key);
}

function unindexKey(self: FilesystemStore, bucket: string, key: string): void {
  const keys = keyIndex(self, bucket);
  const at = lowerBound(keys, key);
  if (keys[at] === key) keys.splice(at, 1);
}

/** s3rver's `copyObject`, which the override below wraps to keep the key index current. */
type CopyObject = (
  this: FilesystemStore,
  sourceBucket: string,
  sourceKey: string,
  bucket: string,
  key: string,
  metadata?: Record<string, string>,
) => Promise<Metadata>;

const original = {
  copyObject: store.prototype.copyObject as unknown as CopyObject,
  putObjectMultipart: store.prototype.putObjectMultipart as unknown as (
    this: FilesystemStore,
    bucket: string,
    uploadId: string,
    parts: unknown,
  ) => Promise<{ key: string }>,
  deleteBucket: store.prototype.deleteBucket as unknown as (
    this: FilesystemStore,
    bucket: string,
  ) => Promise<void>,
  reset: store.prototype.reset as unknown as (this: FilesystemStore) => void,
};

const copyObject: CopyObject = async function (sourceBucket, sourceKey, bucket, key, metadata) {
  const copied = await original.copyObject.call(this, sourceBucket, sourceKey, bucket, key, metadata);
  indexKey(this, bucket, key);
  return copied;
};

Object.assign(store.prototype, {
  async getMetadata(this: FilesystemStore, bucket: string, key: string) {
    const metadata = metadataOf(this, bucket, key);
    if (metadata === undefined) {
      throw Object.assign(new Error(`ENOENT: no object "${key}" in "${bucket}"`), { code: 'ENOENT' });
    }
    return metadata;
  },

  async putObject(this: FilesystemStore, object: StoredObject) {
    let content: Buffer;
    if (Buffer.isBuffer(object.content)) content = object.content;
    else {
      const chunks: Buffer[] = [];
      for await (const chunk of object.content) chunks.push(chunk);
      content = Buffer.concat(chunks);
    }
    const md5 = createHash('md5').update(content).digest('hex');
    const metadata: Record<string, string> = {};
    for (const [name, value] of Object.entries(object.metadata)) {
      if (S3Object.ALLOWED_METADATA.includes(name) || name.startsWith('x-amz-meta-')) metadata[name] = value;
    }
    // From here on synchronous: no request sees the new bytes with the old checksum or metadata.
    const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
    mkdirSync(dirname(objectPath), { recursive: true });
    writeFileSync(objectPath, content);
    writeFileSync(`${objectPath}.md5`, md5);
    writeFileSync(
      this.getResourcePath(object.bucket, object.key, 'metadata.json'),
      JSON.stringify(metadata, null, 2),
    );
    indexKey(this, object.bucket, object.key);
    return { size: content.length, md5 };
  },

  async getObject(
    this: FilesystemStore,
    bucket: string,
    key: string,
    options?: { start?: number; end?: number },
  ) {
    const metadata = metadataOf(this, bucket, key);
    if (metadata === undefined) return null;
    const bytes = readFileSync(this.getResourcePath(bucket, key, 'object'));
    const ranged = options !== undefined && (options.start !== undefined || options.end !== undefined);
    const range = {
      start: options?.start ?? 0,
      end: Math.min(options?.end ?? Number.POSITIVE_INFINITY, Math.max(0, bytes.length - 1)),
    };
    // An unsatisfiable range: an object without content, which s3rver answers with InvalidRange.
    const satisfiable = range.start >= 0 && range.end >= range.start;
    const body = ranged ? bytes.subarray(range.start, range.end + 1) : bytes;
    const content = satisfiable ? Readable.from(body.length > 0 ? [body] : []) : null;
    const object = new S3Object(bucket, key, content, metadata);
    if (ranged) object.range = range;
    return object;
  },

  async deleteObject(this: FilesystemStore, bucket: string, key: string) {
    for (const resource of ['object', 'object.md5', 'metadata.json']) {
      try {
        unlinkSync(this.getResourcePath(bucket, key, resource));
      } catch (error) {
        if (!isMissing(error)) throw error;
      }
    }
    unindexKey(this, bucket, key);
    // Empty folders go too, as in s3rver (the last segment is in the file name, not a folder).
    const bucketPath = this.getBucketPath(bucket);
    const folders = key.split('/').slice(0, -1);
    while (folders.length > 0 && readdirSync(join(bucketPath, ...folders)).length === 0) {
      rmdirSync(join(bucketPath, ...folders));
      folders.pop();
    }
  },

  copyObject,

  async putObjectMultipart(this: FilesystemStore, bucket: string, uploadId: string, parts: unknown) {
    const stored = await original.putObjectMultipart.call(this, bucket, uploadId, parts);
    // The key is known only from the upload's own files: rebuild this bucket's index on its next use.
    keyIndexes.delete(this.getBucketPath(bucket));
    return stored;
  },

  async deleteBucket(this: FilesystemStore, bucket: string) {
    await original.deleteBucket.call(this, bucket);
    keyIndexes.delete(this.getBucketPath(bucket));
  },

  reset(this: FilesystemStore) {
    original.reset.call(this);
    // Rebuilt from the folders on next use (other servers in this process lose nothing but time).
    keyIndexes.clear();
  },

  async listObjects(this: FilesystemStore, bucket: string, options: ListOptions) {
    const { delimiter = '', startAfter = '', prefix = '', maxKeys = Number.POSITIVE_INFINITY } = options;
    const keys = keyIndex(this, bucket);
    const objects: ObjectModel[] = [];
    const commonPrefixes = new Set<string>();
    let isTruncated = false;
    // From the prefix on, or past `startAfter` (where a continuation token left off).
    let index = lowerBound(keys, prefix);
    if (startAfter >= prefix) index = lowerBound(keys, startAfter);
    if (keys[index] === startAfter) index++;
    for (; index < keys.length && keys[index]!.startsWith(prefix); index++) {
      const key = keys[index]!;
      const cut = delimiter === '' ? -1 : key.indexOf(delimiter, prefix.length);
      if (cut !== -1) {
        const common = key.slice(0, cut + delimiter.length);
        commonPrefixes.add(common);
        // Every key under the common prefix sorts below this bound: skip them all at once.
        index = lowerBound(keys, `${common}\uffff`) - 1;
        continue;
      }
      if (objects.length === maxKeys) {
        isTruncated = true;
        break;
      }
      const metadata = metadataOf(this, bucket, key);
      if (metadata !== undefined) objects.push(new S3Object(bucket, key, null, metadata));
    }
    return { objects, commonPrefixes: [...commonPrefixes].sort(), isTruncated };
  },
});
