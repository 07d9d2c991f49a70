/**
 * Services around a test cluster: a redis-server of the test's own with AOF persistence (so a crash and
 * restart keeps what it acknowledged, as in production), clean-up of a run's Redis keys, and a direct look
 * at what Redis holds for a session, bypassing parley.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, IN_CI, redisAnswers } from './redis-server.ts';

/** A private redis-server with `appendonly yes` in a temporary directory. */
export interface DurableRedis {
  readonly url: string;
  readonly port: number;
  /** SIGKILL: a crash. What was acknowledged is in the AOF (written before the reply). */
  kill(): Promise<void>;
  /** Starts it again on the same port and directory; resolves once it has replayed the AOF and answers. */
  start(): Promise<void>;
  /** Kills it and removes its directory. */
  dispose(): Promise<void>;
}

/** Whether `redis-server` can be started; throws under CI when it cannot. */
export async function requireRedisServerBinary(what: string): Promise<boolean> {
  const found = await new Promise<boolean>((resolve) => {
    const probe = spawn('redis-server', ['--version'], { stdio: 'ignore' });
    probe.once('error', () => resolve(false));
    probe.once('exit', (code) => resolve(code === 0));
  });
  if (found) return true;
  const message = `${what}: no redis-server binary on PATH`;
  if (IN_CI) throw new Error(`${message} (CI=true: a missing service is a failure)`);
  console.warn(`${message}; skipping`);
  return false;
}

/**
 * Starts `redis-server --appendonly yes --appendfsync <fsync>` on a free port. Only `always` keeps every
 * acknowledged write through a process crash: under `everysec` (Redis's default) a background fsync that
 * takes over a second makes Redis postpone writing to the file by up to 2 s while still replying — a
 * loaded CI disk does that — and a SIGKILL then loses those writes (docs/operations.md).
 */
export async function startDurableRedis(fsync: 'everysec' | 'always'): Promise<DurableRedis> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const directory = await mkdtemp(join(tmpdir(), 'parley-redis-aof-'));
  let child: ChildProcess | undefined;

  async function start(): Promise<void> {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes'];
    args.push('--appendfsync', fsync, '--dir', directory);
    const started = spawn('redis-server', args, { stdio: 'ignore' });
    child = started;
    const deadline = Date.now() + 15_000;
    // PING answers -LOADING while the AOF is replayed: wait for a real PONG.
    while (!(await redisAnswers(url, 200))) {
      if (started.exitCode !== null || started.signalCode !== null) throw new Error('redis-server exited');
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not start`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  async function kill(): Promise<void> {
    const target = child;
    child = undefined;
    if (target === undefined || target.exitCode !== null || target.signalCode !== null) return;
    const exited = new Promise((resolve) => target.once('exit', resolve));
    target.kill('SIGKILL');
    await exited;
  }

  await start();
  return {
    url,
    port,
    kill,
    start,
    async dispose() {
      await kill();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/** Deletes every Redis key under `prefix` (a test run's own). */
export async function deleteRedisPrefix(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** A stored message as it is in a session's messages.jsonl. */
export interface StoredMessage {
  id: string;
  role: string;
  content: string;
  metadata: { turnId?: string; finishReason?: string; [key: string]: unknown };
}

/** The lines of a session's log as Redis holds them (read straight from Redis, not through parley). */
export async function readSessionLog(
  url: string,
  prefix: string,
  userId: string,
  sessionId: string,
): Promise<StoredMessage[]> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const text = await redis.get(`${prefix}sessions/${userId}/${sessionId}/messages.jsonl`);
    return (text ?? '')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as StoredMessage);
  } finally {
    redis.disconnect();
  }
}
