/**
 * The Redis driver: each key's bytes in a Redis string at `prefix + key`, and one sorted set of all keys
 * (`prefix + '/keys'`, every score 0) so `list(prefix)` is a ZRANGEBYLEX range — O(log n + m), no SCAN of
 * the keyspace. The index name cannot collide with a value: no valid key starts with `/`.
 *
 * - Every key that has a value is in the index. Only creating a key adds to the index, so only creating
 *   one pays for a script: a `write` is a plain `SET … XX` (replace only an existing key — which is indexed
 *   already), and only when that finds no key does the write go again as a Lua script (SET + ZADD). An
 *   `append` is a script (APPEND, and ZADD when the APPEND created the key) and a `delete` one too (DEL +
 *   ZREM), so a listing never names a key without a value or misses one with a value.
 * - All commands go over one connection, and operations on one key apply in call order: each is sent at
 *   once unless an earlier one on the key must come back first (redis-key-order.ts) — a write, which may
 *   have to send the create script, or an append batch in flight: appends issued meanwhile go out
 *   together as one batch after it (group commit). APPEND is atomic, so appends from any number of
 *   connections never interleave.
 * - Failing fast (DESIGN.md §1.7: a clear 503, never a hang): the offline queue is off, so a command
 *   issued while Redis is unreachable rejects at once instead of waiting for a reconnection; in-flight
 *   commands reject when the connection drops (`maxRetriesPerRequest: 0`) instead of being resent —
 *   resending an APPEND that Redis may already have applied could duplicate it; and when commands are
 *   waiting but no reply has come for `commandTimeoutMs` (a hung server, a silent network), a watchdog
 *   drops the connection, which fails them. Each of these surfaces as CHAT_ERR_STORAGE_UNAVAILABLE.
 *   Meanwhile the client reconnects on its own, forever, with a backoff capped at `reconnectMaxDelayMs`,
 *   and the driver works again as soon as Redis is back.
 * - `readFrom(key, offset)` is one GETRANGE (in a script, beside EXISTS, so a missing key is told from an
 *   empty tail): a reader following a long log — text_chat's history, every turn — is sent the new bytes,
 *   not the whole log. `size(key)` is one STRLEN beside EXISTS in a script, likewise.
 * - Durability is Redis's: an acknowledged write is in Redis's memory; it survives a Redis crash only as
 *   far as its persistence settings say (`appendonly yes` + `appendfsync always`: every write; `everysec`:
 *   all but the last 1–2 s). See README.md.
 */

import { Redis, ReplyError } from 'ioredis';
import { PlatformError, StorageUnavailableError } from '../../core/errors.ts';
import { assertWholeLines } from '../json-lines.ts';
import { assertValidKey, assertValidPrefix } from '../keys.ts';
import { assertOffset } from '../read-from.ts';
import type { Storage } from '../types.ts';
import { createCopyArena } from './copy-arena.ts';
import { createRedisKeyOrder } from './redis-key-order.ts';

export interface RedisStorageOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://` for TLS. */
  url: string;
  /** Put before every key (and the index), so several platforms or tests can share one Redis. */
  prefix?: string;
  /** How long creating the storage waits for the first connection (default 5000 ms). */
  connectTimeoutMs?: number;
  /**
   * When commands wait and no reply has come for this long, the connection is dropped and re-made, and
   * the waiting commands reject with CHAT_ERR_STORAGE_UNAVAILABLE (default 2000 ms).
   */
  commandTimeoutMs?: number;
  /** Longest pause between reconnection attempts (default 1000 ms). */
  reconnectMaxDelayMs?: number;
}

/** Options from the `storage.redis` config section (snake_case keys, as validated by the schema). */
export function redisOptionsFromConfig(config: Record<string, unknown> | undefined): RedisStorageOptions {
  const section = config ?? {};
  const options: RedisStorageOptions = {
    url: typeof section.url === 'string' ? section.url : 'redis://127.0.0.1:6379',
  };
  if (typeof section.prefix === 'string') options.prefix = section.prefix;
  if (typeof section.connect_timeout_ms === 'number') options.connectTimeoutMs = section.connect_timeout_ms;
  if (typeof section.command_timeout_ms === 'number') options.commandTimeoutMs = section.command_timeout_ms;
  if (typeof section.reconnect_max_delay_ms === 'number') {
    options.reconnectMaxDelayMs = section.reconnect_max_delay_ms;
  }
  return options;
}

/** The Redis storage: the contract plus a health probe. */
export interface RedisStorage extends Storage {
  /** The prefix in front of every Redis key this storage uses. */
  readonly prefix: string;
  /** Resolves when Redis answers a PING; rejects with CHAT_ERR_STORAGE_UNAVAILABLE otherwise. */
  ping(): Promise<void>;
  readFrom(key: string, offset: number): Promise<Uint8Array | undefined>;
  size(key: string): Promise<number | undefined>;
}

/**
 * The scripts that keep value and index in step atomically, in one round trip (cheaper than MULTI/EXEC's
 * four). Exported for bench/storage, which sends them raw beside the driver. Sent with EVAL every time,
 * not EVALSHA: after a Redis restart EVALSHA fails with NOSCRIPT and has to be resent, and a resent write
 * could land after a later append to the same key that succeeded meanwhile (and EVALSHA measured no
 * faster here). APPEND returns the new length: the data's own length means the key was just created (or
 * was empty, and is indexed already), and only then is the index touched.
 */
export const REDIS_SCRIPTS = {
  create: "redis.call('SET', KEYS[1], ARGV[1]) redis.call('ZADD', KEYS[2], 0, ARGV[2]) return 1",
  append:
    "local length = redis.call('APPEND', KEYS[1], ARGV[1]) if length == #ARGV[1] then redis.call('ZADD', KEYS[2], 0, ARGV[2]) end return length",
  delete: "local removed = redis.call('DEL', KEYS[1]) redis.call('ZREM', KEYS[2], ARGV[1]) return removed",
  /** Not about the index: the bytes from ARGV[1] on, or nil when there is no key (GETRANGE alone gives ''). */
  readFrom:
    "if redis.call('EXISTS', KEYS[1]) == 0 then return false end return redis.call('GETRANGE', KEYS[1], ARGV[1], -1)",
  /** Not about the index: the value's length, or nil when there is no key (STRLEN alone gives 0). */
  size: "if redis.call('EXISTS', KEYS[1]) == 0 then return false end return redis.call('STRLEN', KEYS[1])",
} as const;

// Server replies that mean "not now" rather than "this operation is wrong".
const UNAVAILABLE_REPLIES = /^(LOADING|BUSY|MASTERDOWN|READONLY|TRYAGAIN|CLUSTERDOWN)\b/;
// Redis at its `maxmemory` with an eviction policy that keeps every key: out of room, as a full disk is.
const OUT_OF_MEMORY_REPLY = /^OOM\b/;

const INDEX_SUFFIX = '/keys';
const LEX_TOP = Buffer.from([0xff]);

/** The URL without its password, for messages and details. */
function safeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable url)';
  }
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function toUint8Array(buffer: Buffer): Uint8Array {
  // A plain Uint8Array the caller owns. ioredis hands a reply's bytes as a view into the chunk the socket
  // read (fresh memory per read, never written again), so a view of the same bytes is the caller's alone.
  // Copying 1 KiB cost 10-25% of the read rate in bench/storage (a new backing store per read, and the
  // garbage collection it brings). A value that is less than half of its chunk (many replies read at once)
  // is copied instead, so a small value kept for long never holds a large chunk in memory.
  if (buffer.byteLength * 2 >= buffer.buffer.byteLength) {
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  }
  return new Uint8Array(buffer);
}

/**
 * Connects to Redis and returns a storage on it. Rejects with CHAT_ERR_STORAGE_UNAVAILABLE when Redis
 * cannot be reached within `connectTimeoutMs`.
 */
export async function createRedisStorage(options: RedisStorageOptions): Promise<RedisStorage> {
  const prefix = options.prefix ?? 'parley:';
  const url = safeUrl(options.url);
  const indexKey = prefix + INDEX_SUFFIX;
  const reconnectMaxDelayMs = options.reconnectMaxDelayMs ?? 1000;
  const commandTimeoutMs = options.commandTimeoutMs ?? 2000;
  const redis = new Redis(options.url, {
    lazyConnect: true,
    connectTimeout: options.connectTimeoutMs ?? 5000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    retryStrategy: (attempt) => Math.min(attempt * 100, reconnectMaxDelayMs),
  });
  let lastConnectionError: Error | undefined;
  // Without a listener ioredis prints every failed reconnection; the last one goes into our errors instead.
  redis.on('error', (error: Error) => {
    lastConnectionError = error;
  });
  redis.on('ready', () => {
    lastConnectionError = undefined;
  });

  function unavailable(operation: string, cause: unknown): StorageUnavailableError {
    const reason = lastConnectionError?.message ?? (cause instanceof Error ? cause.message : String(cause));
    return new StorageUnavailableError(`Redis at ${url} is unavailable (${operation}): ${reason}`, {
      details: { backend: 'redis', url, operation, status: redis.status },
      cause,
    });
  }

  function failure(operation: string, key: string, error: unknown): PlatformError {
    if (error instanceof PlatformError) return error;
    const isReply = error instanceof ReplyError;
    const message = error instanceof Error ? error.message : String(error);
    if (!isReply || UNAVAILABLE_REPLIES.test(message)) return unavailable(operation, error);
    // Not a fault of the request nor of parley (507, as flatfile's full disk): an operator must make room.
    if (OUT_OF_MEMORY_REPLY.test(message)) {
      return new PlatformError(
        'CHAT_ERR_STORAGE_FULL',
        `Redis ${operation} of "${key}" failed: Redis is out of memory (maxmemory); what the request would have stored was not`,
        { details: { backend: 'redis', key, operation }, cause: error },
      );
    }
    return new PlatformError('CHAT_ERR_STORAGE_FAILED', `Redis ${operation} of "${key}" failed: ${message}`, {
      details: { backend: 'redis', key, operation },
      cause: error,
    });
  }

  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw unavailable('connect', error);
  }

  // Commands sent and not yet answered; `close` waits for them. A counter, not a set of promises: the
  // bookkeeping sits on every operation's path, next to a sub-millisecond round trip.
  let inFlight = 0;
  let drained: (() => void) | undefined;
  let closed = false;
  let closing: Promise<void> | undefined;

  function assertOpen(): void {
    if (closed)
      throw new StorageUnavailableError('the Redis storage is closed', { details: { url, prefix } });
  }

  function settled(): void {
    inFlight -= 1;
    replies += 1;
    if (inFlight === 0 && drained !== undefined) drained();
  }

  // The hang watchdog. ioredis's own `commandTimeout` arms a timer for every command, which cost about a
  // fifth of the throughput of small commands in bench/storage; one interval per connection costs nothing
  // per command. It looks at a reply counter four times per timeout: commands waiting through four looks
  // in a row with no reply means no reply for at least ¾ of the timeout (and at most all of it).
  let replies = 0;
  let repliesAtLastLook = 0;
  let silentLooks = 0;
  const watchdog = setInterval(
    () => {
      if (inFlight === 0 || replies !== repliesAtLastLook) {
        repliesAtLastLook = replies;
        silentLooks = 0;
        return;
      }
      silentLooks += 1;
      if (silentLooks < 4) return;
      silentLooks = 0;
      lastConnectionError = new Error(`timed out: no reply for ${commandTimeoutMs} ms`);
      // Fails the waiting commands (maxRetriesPerRequest: 0) and reconnects with the usual backoff.
      redis.disconnect(true);
    },
    Math.max(1, Math.floor(commandTimeoutMs / 4)),
  );
  watchdog.unref();

  // Call order per key (redis-key-order.ts): operations go out at once unless an earlier one on the same
  // key must come back first — a write that may have to create its key, or an append batch in flight,
  // behind which the next appends gather into one batch.
  const copyBytes = createCopyArena();
  const order = createRedisKeyOrder((key, chunks) =>
    redis.eval(
      REDIS_SCRIPTS.append,
      2,
      prefix + key,
      indexKey,
      chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks),
      key,
    ),
  );

  /** Runs one operation and maps its failure to a platform error; `close` waits for it. */
  async function run<T>(operation: string, key: string, send: () => Promise<T>): Promise<T> {
    inFlight += 1;
    try {
      return await send();
    } catch (error) {
      throw failure(operation, key, error);
    } finally {
      settled();
    }
  }

  /** The write: replace an existing (so indexed) key, or create the key and index it. */
  async function replaceOrCreate(key: string, bytes: Buffer): Promise<void> {
    const replaced = await redis.set(prefix + key, bytes, 'XX');
    if (replaced === null) await redis.eval(REDIS_SCRIPTS.create, 2, prefix + key, indexKey, bytes, key);
  }

  return {
    prefix,
    async read(key) {
      assertValidKey(key);
      assertOpen();
      const value = await run('read', key, () => order.plain(key, () => redis.getBuffer(prefix + key)));
      return value === null ? undefined : toUint8Array(value);
    },
    async readFrom(key, offset) {
      assertValidKey(key);
      assertOffset(offset);
      assertOpen();
      // callBuffer: the reply as bytes (eval would decode it as UTF-8, which a cut mid-character breaks).
      const value = await run('read', key, () =>
        order.plain(key, () =>
          redis.callBuffer('EVAL', REDIS_SCRIPTS.readFrom, 1, prefix + key, String(offset)),
        ),
      );
      return value === null ? undefined : toUint8Array(value as Buffer);
    },
    async write(key, data) {
      assertValidKey(key);
      assertWholeLines(key, data, 'write');
      assertOpen();
      // Copied now: the bytes may be sent after the caller has its array back (a create sends them twice).
      const copy = copyBytes(data);
      await run('write', key, () => order.write(key, () => replaceOrCreate(key, copy.bytes)));
      // Only once it succeeded: a failed write's error (ioredis's `command.args`) may still show the bytes.
      copy.release();
      return true;
    },
    async delete(key) {
      assertValidKey(key);
      assertOpen();
      return (
        (await run('delete', key, () =>
          order.plain(key, () => redis.eval(REDIS_SCRIPTS.delete, 2, prefix + key, indexKey, key)),
        )) === 1
      );
    },
    async list(listPrefix) {
      assertValidPrefix(listPrefix);
      assertOpen();
      // Lexicographic range over the UTF-8 bytes: every member starting with the prefix lies between the
      // prefix itself and the prefix followed by 0xff (a byte UTF-8 never uses).
      const low = listPrefix === '' ? '-' : `[${listPrefix}`;
      const high = listPrefix === '' ? '+' : Buffer.concat([Buffer.from(`(${listPrefix}`), LEX_TOP]);
      // A listing comes after the writes issued before it (one may still be creating its key).
      const writes = order.writesUnder(listPrefix);
      const keys = await run('list', listPrefix, async () => {
        if (writes !== undefined) await writes;
        return redis.zrangebylex(indexKey, low, high);
      });
      // Redis orders by UTF-8 bytes; the contract orders by UTF-16 code units (they differ above U+FFFF).
      return keys.sort();
    },
    async size(key) {
      assertValidKey(key);
      assertOpen();
      const length = await run('read', key, () =>
        order.plain(key, () => redis.eval(REDIS_SCRIPTS.size, 1, prefix + key)),
      );
      return typeof length === 'number' ? length : undefined;
    },
    async exists(key) {
      assertValidKey(key);
      assertOpen();
      return (await run('exists', key, () => order.plain(key, () => redis.exists(prefix + key)))) === 1;
    },
    async append(key, data) {
      assertValidKey(key);
      assertWholeLines(key, data, 'append');
      assertOpen();
      await run('append', key, () => order.append(key, asBuffer(data)));
    },
    async ping() {
      assertOpen();
      await run('ping', '', () => redis.ping());
    },
    close() {
      closed = true;
      closing ??= (async () => {
        if (inFlight > 0) await new Promise<void>((resolve) => (drained = resolve));
        clearInterval(watchdog);
        if (redis.status === 'ready') await redis.quit().catch(() => undefined);
        redis.disconnect();
      })();
      return closing;
    },
  };
}
