/**
 * The S3 driver (AWS S3, MinIO, Cloudflare R2, s3rver — any S3 API, chosen by config alone).
 *
 * Layout in the bucket:
 * - `prefix + key` — the base: the value last `write`n, a plain object any S3 tool can read. Its metadata
 *   `parley-cutoff` holds a sortable id (UUIDv7) taken when it was written.
 * - `prefix + key + '.parley-tmp-append.' + id` — one object per append batch ("part"), `id` a UUIDv7 taken
 *   when the batch was sent. No key segment may contain `.parley-tmp-` (keys.ts), so a part can never be
 *   mistaken for a key, `list` never shows one, and a key's parts sit beside it in one folder (never below
 *   it: MinIO cannot list an object and objects under its name as a folder both).
 * - `… + '.parley-tmp-append.' + to + '.' + from + '.' + random` — a merged part: the bytes of every part
 *   with an id from `from` to `to`, made by compaction. Its name says what it covers, so readers skip
 *   covered parts from the listing alone, without fetching them.
 *
 * The value of a key is its base object followed by its parts with ids above the base's cutoff, in id
 * order. S3 has no append and (portably) no conditional write, so appends never read-modify-write
 * anything: each is a PutObject of a new object with a unique name, and appends from any number of
 * processes or nodes lose nothing. Nothing but the base is ever overwritten. A `write` is one PutObject of
 * the base: parts older than its cutoff are hidden at once (so the value is replaced atomically) and
 * deleted later. Within this process, writes, appends and deletes of one key run in call order, and
 * appends waiting behind a busy key go out together as one part (group commit, as in the flatfile driver).
 *
 * Reads: one ListObjectsV2 with the key as prefix shows the base's ETag and every part (another node's
 * appends never touch the base, so only a listing reveals them). This node keeps copies of the objects it
 * wrote or read, up to `cacheBytes`: a part's name is never reused, so its bytes never change; a base copy
 * is used only while the listing shows the same ETag. A read whose objects are all cached is that one
 * LIST. Otherwise it GETs what it lacks (when nothing is known of the key, the base is fetched beside the
 * listing, as a cold read must), and it checks the base again (HEAD) after the listing when the base has
 * parts beside it — an ETag names the bytes, not the cutoff, and a write of the same bytes takes a new
 * cutoff — or when there is no base but a part young enough that a write may have raced the listing. It
 * starts over if the base changed or a part vanished meanwhile. See docs/adr/0001-s3-read-one-listing.md.
 * `readFrom(key, offset)` is the same read, copying out only the bytes from `offset` on.
 *
 * Compaction: a read that finds at least `compactAfterParts` live parts older than `compactionAgeMs`
 * stores them as one merged part, then deletes the parts it covers. Only parts older than
 * `compactionAgeMs` are merged, because an append still in flight (its id taken, not yet stored) with an
 * id inside the merged range would be hidden: the age must exceed the longest time an append can take
 * (request timeout × attempts) plus the clock skew between nodes.
 *
 * Durability is the store's: a PutObject S3 acknowledged is stored redundantly (MinIO: on its drives;
 * s3rver, for tests only: in files, not fsynced).
 */

import { randomBytes } from 'node:crypto';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { PlatformError, StorageUnavailableError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { createByteBoundedCache } from '../byte-bounded-cache.ts';
import { concatBytes, copyBytes, copyTail } from '../bytes.ts';
import { assertWholeLines } from '../json-lines.ts';
import { createKeyLanes } from '../key-lanes.ts';
import { assertValidKey, assertValidPrefix, isValidKey, RESERVED_NAME_PART } from '../keys.ts';
import { assertOffset } from '../read-from.ts';
import type { Storage } from '../types.ts';

export interface S3StorageOptions {
  bucket: string;
  /** Default `us-east-1` (what MinIO and s3rver expect; R2 takes `auto`). */
  region?: string;
  /** For S3-compatible stores (`http://127.0.0.1:9000` for MinIO); unset means AWS. */
  endpoint?: string;
  /** Path-style URLs (`endpoint/bucket/key`), which MinIO and s3rver need. Default false. */
  forcePathStyle?: boolean;
  /** Put before every object name (`parley/` keeps a shared bucket tidy). Default `''`. */
  prefix?: string;
  /** Static credentials; unset means the AWS SDK's own chain (env vars, profile, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** A request without a response by then fails (default 10000 ms; each request is tried up to 3 times). */
  requestTimeoutMs?: number;
  /** A read that finds this many live parts old enough merges them (default 32). */
  compactAfterParts?: number;
  /** Only parts older than this are merged (default 60000 ms; at least 4 × `requestTimeoutMs`). */
  compactionAgeMs?: number;
  /** Bytes of objects this node keeps copies of, checked against a listing on every read (default 32 MiB; 0: none). */
  cacheBytes?: number;
  /** The clock that decides which parts are old enough to merge (tests move it forward). */
  now?: () => number;
}

/** Diagnostic counters since the storage was created (for tests and benchmarks, not for logic). */
export interface S3StorageStats {
  /** Parts stored (one per append batch; concurrent appends to one key share one). */
  parts: number;
  /** Reads that started over because the key changed while they ran. */
  readRetries: number;
  /** Compactions done, and the parts they merged. */
  compactions: number;
  partsMerged: number;
  /** Compactions that failed (they are best effort; the next read tries again). */
  compactionFailures: number;
  /** Requests that read a key (for read, exists, delete, compaction): listings, GETs of a base or a part, HEADs of a base. */
  keyListings: number;
  baseGets: number;
  partGets: number;
  baseChecks: number;
  /** The node's copies of objects: how many, their bytes, and how many were dropped to stay in bounds. */
  cacheEntries: number;
  cacheBytes: number;
  cacheEvictions: number;
}

/** The S3 storage: the contract plus its diagnostics. */
export interface S3Storage extends Storage {
  readonly bucket: string;
  readonly prefix: string;
  /** Diagnostic counters (a copy). */
  stats(): S3StorageStats;
}

/** Options from the `storage.s3` config section (snake_case keys, as validated by the schema). */
export function s3OptionsFromConfig(config: Record<string, unknown> | undefined): S3StorageOptions {
  const section = config ?? {};
  const string = (name: string) => (typeof section[name] === 'string' ? section[name] : undefined);
  const number = (name: string) => (typeof section[name] === 'number' ? section[name] : undefined);
  const options: S3StorageOptions = { bucket: string('bucket') ?? 'parley' };
  const region = string('region');
  if (region !== undefined) options.region = region;
  const endpoint = string('endpoint');
  if (endpoint !== undefined) options.endpoint = endpoint;
  if (typeof section.force_path_style === 'boolean') options.forcePathStyle = section.force_path_style;
  const prefix = string('prefix');
  if (prefix !== undefined) options.prefix = prefix;
  const accessKeyId = string('access_key_id');
  const secretAccessKey = string('secret_access_key');
  if (accessKeyId !== undefined && secretAccessKey !== undefined) {
    options.credentials = { accessKeyId, secretAccessKey };
  } else if (accessKeyId !== undefined || secretAccessKey !== undefined) {
    // Half a key pair would silently fall back to the SDK's credential chain: say so instead.
    throw new PlatformError(
      'CHAT_ERR_CONFIG_INVALID',
      'storage.s3.access_key_id and storage.s3.secret_access_key must be set together (or neither)',
      {
        details: {
          path: accessKeyId === undefined ? 'storage.s3.access_key_id' : 'storage.s3.secret_access_key',
        },
      },
    );
  }
  const requestTimeoutMs = number('request_timeout_ms');
  if (requestTimeoutMs !== undefined) options.requestTimeoutMs = requestTimeoutMs;
  const compactAfterParts = number('compact_after_parts');
  if (compactAfterParts !== undefined) options.compactAfterParts = compactAfterParts;
  const compactionAgeMs = number('compaction_age_ms');
  if (compactionAgeMs !== undefined) options.compactionAgeMs = compactionAgeMs;
  const cacheBytes = number('cache_bytes');
  if (cacheBytes !== undefined) options.cacheBytes = cacheBytes;
  return options;
}

/** What separates a key from the id of one of its parts: `key + S3_PART_MARKER + id`. */
export const S3_PART_MARKER = `${RESERVED_NAME_PART}append.`;

const CUTOFF_METADATA = 'parley-cutoff';
const MAX_ATTEMPTS = 3;
const READ_ATTEMPTS = 10;
const FETCH_CONCURRENCY = 16;
const DELETE_BATCH = 1000;
const DEFAULT_CACHE_BYTES = 32 * 1024 * 1024;
/** What a cache entry costs beyond its bytes (the entry itself and its strings, roughly). */
const ENTRY_OVERHEAD = 64;

interface Base {
  bytes: Uint8Array;
  cutoff: string;
  /** The ETag without quotes; `''` when the store sent none (such a base is never cached). */
  etag: string;
}

/** A part as its name describes it: the ids it covers, `from` to `to` (both its id for a plain part). */
interface PartName {
  name: string;
  from: string;
  to: string;
}

interface Part extends PartName {
  bytes: Uint8Array;
}

/** What one listing of a key shows: its base's ETag (when there is a base) and its parts. */
interface Listing {
  base: { etag: string } | undefined;
  parts: PartName[];
}

/** What one consistent read saw. */
interface Snapshot {
  base: Base | undefined;
  /** Every listed part (live, covered and stale). */
  listed: PartName[];
  /** The live parts not covered by a merged part, in order: the value is base + these. */
  parts: Part[];
}

/**
 * What this node keeps of an object, under its name: a base's bytes with the ETag and cutoff they were
 * read or written with, the knowledge that a key had no base when last seen (so its next read does not
 * fetch one beside the listing), or a part's bytes.
 */
type Cached = ({ kind: 'base' } & Base) | { kind: 'absent' } | { kind: 'part'; bytes: Uint8Array };

const ABSENT: Cached = { kind: 'absent' };

/** Milliseconds since the epoch in a UUIDv7 (its first 48 bits). */
function idMillis(id: string): number {
  return Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

/** An ETag as S3 sends it (quoted, sometimes weak) reduced to its value, so two can be compared. */
function plainEtag(etag: string | undefined): string {
  return (etag ?? '').replace(/^W\//, '').replaceAll('"', '');
}

function httpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

function isNotFound(error: unknown): boolean {
  return httpStatus(error) === 404;
}

/** Runs `work` over `items` with at most `limit` at a time; results in input order. */
async function mapLimited<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  async function worker(): Promise<void> {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

const UUID_LENGTH = 36;

/** Reads a part's name: a plain id, or `to.from.random` for a merged part; `undefined` for anything else. */
function parsePartName(name: string): PartName | undefined {
  if (name.length === UUID_LENGTH) return { name, from: name, to: name };
  const [to, from] = name.split('.');
  if (to?.length !== UUID_LENGTH || from?.length !== UUID_LENGTH || from > to) return undefined;
  return { name, from, to };
}

/** Orders parts by `from`, the widest first, then by name (greatest first). */
function outermostFirst(a: PartName, b: PartName): number {
  if (a.from !== b.from) return a.from < b.from ? -1 : 1;
  if (a.to !== b.to) return a.to > b.to ? -1 : 1;
  if (a.name === b.name) return 0;
  return a.name > b.name ? -1 : 1;
}

/**
 * The parts no other part covers, in order. Merged ranges nest or are disjoint (a merge covers every part
 * in its range), so sorting by `from`, widest first, and keeping each part that reaches past everything
 * kept so far leaves exactly the outermost ones. Two merges of the same range: the greater name wins.
 */
function uncovered<T extends PartName>(parts: T[]): T[] {
  const sorted = [...parts].sort(outermostFirst);
  const kept: T[] = [];
  let reach = '';
  for (const part of sorted) {
    if (part.to <= reach) continue;
    kept.push(part);
    reach = part.to;
  }
  return kept;
}

/** Creates a storage on an S3 bucket; checks that the bucket answers first. */
export async function createS3Storage(options: S3StorageOptions): Promise<S3Storage> {
  const bucket = options.bucket;
  const prefix = options.prefix ?? '';
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  const compactAfterParts = options.compactAfterParts ?? 32;
  const compactionAgeMs = options.compactionAgeMs ?? 60_000;
  const now = options.now ?? Date.now;
  // An append or write can be in flight for MAX_ATTEMPTS request timeouts, and the listing that raced it
  // for one more: a part older than that cannot have been stored after a write the listing missed.
  const minimumAgeMs = (MAX_ATTEMPTS + 1) * requestTimeoutMs;
  if (compactionAgeMs < minimumAgeMs) {
    throw new PlatformError(
      'CHAT_ERR_CONFIG_INVALID',
      `storage.s3.compaction_age_ms (${compactionAgeMs}) must be at least ${MAX_ATTEMPTS + 1} × request_timeout_ms (${requestTimeoutMs}): an append or write in flight longer than that could be hidden by a compaction or missed by a read`,
      { details: { path: 'storage.s3.compaction_age_ms', value: compactionAgeMs } },
    );
  }
  const clientConfig: S3ClientConfig = {
    region: options.region ?? 'us-east-1',
    forcePathStyle: options.forcePathStyle ?? false,
    maxAttempts: MAX_ATTEMPTS,
    requestHandler: { requestTimeout: requestTimeoutMs, connectionTimeout: requestTimeoutMs },
  };
  if (options.endpoint !== undefined) clientConfig.endpoint = options.endpoint;
  if (options.credentials !== undefined) clientConfig.credentials = options.credentials;
  const client = new S3Client(clientConfig);
  const where = `s3://${bucket}/${prefix}${options.endpoint === undefined ? '' : ` at ${options.endpoint}`}`;
  const counters = {
    parts: 0,
    readRetries: 0,
    compactions: 0,
    partsMerged: 0,
    compactionFailures: 0,
    keyListings: 0,
    baseGets: 0,
    partGets: 0,
    baseChecks: 0,
  };
  const cache = createByteBoundedCache<Cached>(options.cacheBytes ?? DEFAULT_CACHE_BYTES);

  function failure(operation: string, key: string, error: unknown): PlatformError {
    if (error instanceof PlatformError) return error;
    const status = httpStatus(error);
    const name = error instanceof Error ? error.name : undefined;
    const message = error instanceof Error ? error.message : String(error);
    const details = { backend: 's3', bucket, operation, key, status, code: name };
    // No HTTP answer (refused, reset, timed out) or a 5xx/throttle: the store is not there right now. No
    // credentials at all is a configuration problem, not an outage.
    const outage =
      status === undefined ? name !== 'CredentialsProviderError' : status >= 500 || status === 429;
    if (outage) {
      return new StorageUnavailableError(`S3 ${where} is unavailable (${operation}): ${message}`, {
        details,
        cause: error,
      });
    }
    return new PlatformError('CHAT_ERR_STORAGE_FAILED', `S3 ${operation} of "${key}" failed: ${message}`, {
      details,
      cause: error,
    });
  }

  async function guarded<T>(operation: string, key: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw failure(operation, key, error);
    }
  }

  try {
    await client.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch (error) {
    client.destroy();
    if (isNotFound(error)) {
      throw new PlatformError('CHAT_ERR_STORAGE_FAILED', `the S3 bucket "${bucket}" does not exist`, {
        details: { backend: 's3', bucket, path: 'storage.s3.bucket' },
        cause: error,
      });
    }
    throw failure('connect', '', error);
  }

  const compactionQueued = new Set<string>();
  let closed = false;
  let closing: Promise<void> | undefined;

  function assertOpen(): void {
    if (closed)
      throw new StorageUnavailableError('the S3 storage is closed', { details: { bucket, prefix } });
  }

  const baseName = (key: string) => prefix + key;
  const partName = (key: string, part: string) => prefix + key + S3_PART_MARKER + part;

  /** Keeps this node's copy of a key's base (or that it has none), as read or written just now. */
  function rememberBase(key: string, base: Base | undefined): void {
    if (base === undefined) cache.set(baseName(key), ABSENT, ENTRY_OVERHEAD);
    else if (base.etag === '') cache.delete(baseName(key));
    else cache.set(baseName(key), { kind: 'base', ...base }, base.bytes.length + ENTRY_OVERHEAD);
  }

  /** Keeps this node's copy of a part (its name is never reused, so the copy never goes stale). */
  function rememberPart(name: string, bytes: Uint8Array): void {
    cache.set(name, { kind: 'part', bytes }, bytes.length + ENTRY_OVERHEAD);
  }

  /** The pages of one listing under `namePrefix`; `sending` runs before each request (to count it). */
  async function* listPages(
    namePrefix: string,
    delimiter?: string,
    sending?: () => void,
  ): AsyncGenerator<ListObjectsV2CommandOutput> {
    let token: string | undefined;
    do {
      sending?.();
      const page: ListObjectsV2CommandOutput = await client.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: namePrefix,
          Delimiter: delimiter,
          ContinuationToken: token,
        }),
      );
      yield page;
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  /** Every object name under `namePrefix` (all pages). */
  async function listNames(namePrefix: string): Promise<string[]> {
    const names: string[] = [];
    for await (const page of listPages(namePrefix)) {
      for (const object of page.Contents ?? []) if (object.Key !== undefined) names.push(object.Key);
    }
    return names;
  }

  function countKeyListing(): void {
    counters.keyListings += 1;
  }

  /**
   * The base and parts of `key`, from one listing with the key's name as prefix. Other keys that share it
   * as a string prefix (`a/b.json.bak` beside `a/b.json`) are listed too and skipped; keys below it
   * (`a/b.json/c`) are folded into one common prefix by the `/` delimiter and never walked.
   */
  async function listKey(key: string): Promise<Listing> {
    const name = baseName(key);
    const partsStart = name + S3_PART_MARKER;
    let base: Listing['base'];
    const parts: PartName[] = [];
    for await (const page of listPages(name, '/', countKeyListing)) {
      for (const object of page.Contents ?? []) {
        if (object.Key === name) base = { etag: plainEtag(object.ETag) };
        else if (object.Key?.startsWith(partsStart)) {
          const part = parsePartName(object.Key.slice(partsStart.length));
          if (part !== undefined) parts.push(part);
        }
      }
    }
    return { base, parts };
  }

  async function getBase(key: string): Promise<Base | undefined> {
    counters.baseGets += 1;
    try {
      const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: baseName(key) }));
      const bytes = (await response.Body?.transformToByteArray()) ?? new Uint8Array();
      return {
        // Its own memory: a small body can be a view of a pooled buffer the cache would keep alive.
        bytes: copyBytes(bytes),
        cutoff: response.Metadata?.[CUTOFF_METADATA] ?? '',
        etag: plainEtag(response.ETag),
      };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async function headBase(key: string): Promise<{ cutoff: string; etag: string } | undefined> {
    counters.baseChecks += 1;
    try {
      const response = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: baseName(key) }));
      return { cutoff: response.Metadata?.[CUTOFF_METADATA] ?? '', etag: plainEtag(response.ETag) };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** A part's bytes (this node's copy, or fetched), or `undefined` when it was deleted after the listing. */
  async function getPart(key: string, part: PartName): Promise<Part | undefined> {
    const name = partName(key, part.name);
    const cached = cache.get(name);
    if (cached?.kind === 'part') return { ...part, bytes: cached.bytes };
    counters.partGets += 1;
    try {
      const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: name }));
      const bytes = copyBytes((await response.Body?.transformToByteArray()) ?? new Uint8Array());
      rememberPart(name, bytes);
      return { ...part, bytes };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async function deleteNames(names: string[]): Promise<void> {
    for (let start = 0; start < names.length; start += DELETE_BATCH) {
      const batch = names.slice(start, start + DELETE_BATCH);
      const response = await client.send(
        new DeleteObjectsCommand({
          Bucket: bucket,
          Delete: { Objects: batch.map((name) => ({ Key: name })), Quiet: true },
        }),
      );
      for (const name of batch) cache.delete(name);
      const failed = response.Errors?.[0];
      if (failed !== undefined) throw new Error(`could not delete ${failed.Key}: ${failed.Message}`);
    }
  }

  /** The base the listing shows, from this node's copy when its ETag matches, else fetched. */
  async function baseOf(
    key: string,
    listing: Listing,
    known: Cached | undefined,
    early: Promise<Base | undefined> | undefined,
  ): Promise<Base | undefined> {
    if (listing.base === undefined) {
      if (known?.kind !== 'absent') rememberBase(key, undefined);
      return undefined;
    }
    const etag = listing.base.etag;
    if (known?.kind === 'base' && etag !== '' && known.etag === etag) return known;
    const fetched = await (early ?? getBase(key));
    // Kept even when it is not the version listed: a copy is always one response's bytes, ETag and cutoff.
    rememberBase(key, fetched);
    // Fetched after (or beside) the listing, so it may be another version: then the read starts over.
    if (fetched === undefined || fetched.etag !== etag) return undefined;
    return fetched;
  }

  /** One consistent view of a key: base and live parts, retried while the key changes under it. */
  async function snapshot(key: string): Promise<Snapshot> {
    for (let attempt = 1; ; attempt++) {
      const known = cache.get(baseName(key));
      // Nothing known of the key here: fetch the base beside the listing, so a cold read stays one round trip.
      const early = known === undefined ? getBase(key) : undefined;
      // Not awaited when the listing shows no base: never an unhandled rejection.
      early?.catch(() => undefined);
      const listing = await listKey(key);
      const base = await baseOf(key, listing, known, early);
      const changed = listing.base !== undefined && base === undefined;
      if (!changed) {
        const view = await completeSnapshot(key, listing, base);
        if (view !== undefined) return view;
      }
      if (attempt >= READ_ATTEMPTS) {
        throw new StorageUnavailableError(
          `S3 read of "${key}" kept changing under ${READ_ATTEMPTS} attempts`,
          {
            details: { backend: 's3', bucket, key, operation: 'read' },
          },
        );
      }
      counters.readRetries += 1;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * attempt));
    }
  }

  /**
   * Fetches the live parts the listing shows (those not cached), and checks the base again when the
   * listing alone cannot vouch for it; `undefined` when the key changed meanwhile (the read starts over).
   */
  async function completeSnapshot(
    key: string,
    listing: Listing,
    base: Base | undefined,
  ): Promise<Snapshot | undefined> {
    const listed = listing.parts;
    const guessed = uncovered(listed.filter((part) => part.from > (base?.cutoff ?? '')));
    // A base with parts beside it: its ETag names its bytes but not its cutoff, and a write of the same
    // bytes takes a new cutoff, hiding more parts. No base but a young part: a write may have landed
    // after the listing passed the base's name and before it reached that part, which belongs after it.
    const settled = now() - compactionAgeMs;
    const check =
      listed.length > 0 &&
      (listing.base !== undefined || guessed.some((part) => idMillis(part.to) >= settled));
    if (!check && guessed.length === 0) return { base, listed, parts: [] };
    const [fetched, again] = await Promise.all([
      mapLimited(guessed, FETCH_CONCURRENCY, (part) => getPart(key, part)),
      check ? headBase(key) : undefined,
    ]);
    let view = base;
    if (check) {
      if (again?.etag !== listing.base?.etag) return undefined;
      if (base !== undefined && again !== undefined && again.cutoff !== base.cutoff) {
        // The same bytes were written again: the newer cutoff is the one that counts.
        view = { ...base, cutoff: again.cutoff };
        rememberBase(key, view);
      }
    }
    const live =
      view === base ? guessed : uncovered(listed.filter((part) => part.from > (view?.cutoff ?? '')));
    const byName = new Map(fetched.filter((part) => part !== undefined).map((part) => [part.name, part]));
    const parts: Part[] = [];
    for (const part of live) {
      // Gone since the listing (a compaction finished, or a write or delete elsewhere), or not fetched
      // because the cutoff moved: start over.
      const found = byName.get(part.name);
      if (found === undefined) return undefined;
      parts.push(found);
    }
    return { base: view, listed, parts };
  }

  /** Whether a read's snapshot has enough old parts (or old stale parts) to be worth a compaction. */
  function worthCompacting(view: Snapshot): boolean {
    const horizon = now() - compactionAgeMs;
    const old = view.parts.filter((part) => idMillis(part.to) < horizon).length;
    if (old >= compactAfterParts) return true;
    const cutoff = view.base?.cutoff ?? '';
    const leftovers = view.listed.filter((part) => part.from > cutoff).length - view.parts.length;
    if (leftovers >= compactAfterParts) return true;
    return cutoff !== '' && idMillis(cutoff) < horizon && view.listed.some((part) => part.from <= cutoff);
  }

  /** Merges the old live parts into one, and deletes covered parts and parts older than the base. */
  async function compact(key: string): Promise<void> {
    const view = await snapshot(key);
    const horizon = now() - compactionAgeMs;
    const cutoff = view.base?.cutoff ?? '';
    const doomed = new Set<string>();
    // Parts from before the last write are hidden already; delete them once that write is old enough
    // that no read which fetched the base before it can still be listing parts.
    if (cutoff !== '' && idMillis(cutoff) < horizon) {
      for (const part of view.listed) if (part.from <= cutoff) doomed.add(part.name);
    }
    // Parts a merged part covers (left by a compaction that has not finished deleting them).
    const kept = new Set(view.parts.map((part) => part.name));
    for (const part of view.listed) if (part.from > cutoff && !kept.has(part.name)) doomed.add(part.name);
    let oldCount = 0;
    while (oldCount < view.parts.length && idMillis(view.parts[oldCount]!.to) < horizon) oldCount++;
    if (oldCount >= 2) {
      const merged = view.parts.slice(0, oldCount);
      const from = merged[0]!.from;
      const to = merged[merged.length - 1]!.to;
      const name = partName(key, `${to}.${from}.${randomBytes(4).toString('hex')}`);
      const bytes = concatBytes(merged.map((part) => part.bytes));
      // A new object, never an overwrite: until the covered parts are gone, readers skip them by name.
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: name, Body: bytes }));
      rememberPart(name, bytes);
      for (const part of merged) doomed.add(part.name);
      counters.compactions += 1;
      counters.partsMerged += merged.length;
    }
    if (doomed.size > 0) await deleteNames([...doomed].map((name) => partName(key, name)));
  }

  /** One append batch, stored as one new part. */
  async function appendBatch(key: string, chunks: Uint8Array[]): Promise<void> {
    const name = partName(key, newId());
    // The chunks are the storage's own copies (append copies the caller's bytes), so the cache may keep them.
    const bytes = concatBytes(chunks);
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: name, Body: bytes }));
    counters.parts += 1;
    rememberPart(name, bytes);
  }

  const lanes = createKeyLanes({ appendBatch, failure });

  function scheduleCompaction(key: string): void {
    if (closed || compactionQueued.has(key)) return;
    compactionQueued.add(key);
    lanes
      .exclusive(key, 'compact', () => compact(key))
      .catch(() => {
        counters.compactionFailures += 1;
      })
      .finally(() => compactionQueued.delete(key));
  }

  /** The value's bytes from `offset` on: a copy of only those (a log's follower is given its new lines). */
  async function readTail(key: string, offset: number): Promise<Uint8Array | undefined> {
    assertValidKey(key);
    assertOpen();
    const view = await guarded('read', key, () => snapshot(key));
    if (view.base === undefined && view.parts.length === 0) return undefined;
    if (worthCompacting(view)) scheduleCompaction(key);
    const chunks = view.parts.map((part) => part.bytes);
    if (view.base !== undefined) chunks.unshift(view.base.bytes);
    // The chunks may be this node's cached copies: the caller gets bytes of its own.
    return copyTail(chunks, offset);
  }

  return {
    bucket,
    prefix,
    read: (key) => readTail(key, 0),
    async readFrom(key, offset) {
      assertOffset(offset);
      return readTail(key, offset);
    },
    async write(key, data) {
      assertValidKey(key);
      assertWholeLines(key, data, 'write');
      assertOpen();
      const copy = copyBytes(data);
      await lanes.exclusive(key, 'write', async () => {
        const cutoff = newId();
        const response = await client.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: baseName(key),
            Body: copy,
            Metadata: { [CUTOFF_METADATA]: cutoff },
          }),
        );
        rememberBase(key, { bytes: copy, cutoff, etag: plainEtag(response.ETag) });
      });
      return true;
    },
    async delete(key) {
      assertValidKey(key);
      assertOpen();
      return lanes.exclusive(key, 'delete', async () => {
        const listing = await listKey(key);
        // Parts first: were the base gone first, parts it had hidden would show again.
        await deleteNames(listing.parts.map((part) => partName(key, part.name)));
        if (listing.base !== undefined) {
          await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: baseName(key) }));
        }
        rememberBase(key, undefined);
        return listing.base !== undefined || listing.parts.length > 0;
      });
    },
    async list(listPrefix) {
      assertValidPrefix(listPrefix);
      assertOpen();
      const names = await guarded('list', listPrefix, () => listNames(prefix + listPrefix));
      const keys = new Set<string>();
      for (const name of names) {
        const rest = name.slice(prefix.length);
        // No key contains the marker, so its first occurrence ends the key a part belongs to.
        const marker = rest.indexOf(S3_PART_MARKER);
        if (marker === -1) {
          // Skips "folder" objects made by other tools (their names end in `/`, not a valid key).
          if (isValidKey(rest)) keys.add(rest);
          continue;
        }
        const key = rest.slice(0, marker);
        const part = parsePartName(rest.slice(marker + S3_PART_MARKER.length));
        if (part !== undefined && key.startsWith(listPrefix) && isValidKey(key)) keys.add(key);
      }
      return [...keys].sort();
    },
    async exists(key) {
      assertValidKey(key);
      assertOpen();
      // A base, or any part (parts without a base are all live), is a value.
      const listing = await guarded('exists', key, () => listKey(key));
      return listing.base !== undefined || listing.parts.length > 0;
    },
    async append(key, data) {
      assertValidKey(key);
      assertWholeLines(key, data, 'append');
      assertOpen();
      const copy = copyBytes(data);
      return lanes.append(key, copy);
    },
    close() {
      closed = true;
      closing ??= (async () => {
        await lanes.whenIdle();
        client.destroy();
        cache.clear();
      })();
      return closing;
    },
    stats() {
      const held = cache.stats();
      return {
        ...counters,
        cacheEntries: held.entries,
        cacheBytes: held.bytes,
        cacheEvictions: held.evictions,
      };
    },
  };
}
