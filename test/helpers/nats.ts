import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { NatsBusConfig } from '../../src/core/config-types.ts';

/**
 * NATS for tests: the shared server (NATS_URL, default 127.0.0.1:4222) with a unique stream prefix per
 * run, and throw-away servers of a test's own for the tests that stop and restart NATS. Under CI=true a
 * missing server or binary fails the test file; elsewhere the tests are skipped with a message.
 */

/** The shared NATS server. */
export const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

/** The `bus.nats` defaults, read from config/default.json (so tests run what a deployment runs). */
export function natsDefaults(): NatsBusConfig {
  const path = join(import.meta.dirname, '..', '..', 'config', 'default.json');
  return (JSON.parse(readFileSync(path, 'utf8')) as { bus: { nats: NatsBusConfig } }).bus.nats;
}

/** `bus.nats` for a test: defaults, the given prefix and servers, and overrides (stream settings merged). */
export function natsTestConfig(
  prefix: string,
  overrides: Partial<Omit<NatsBusConfig, 'stream'>> & { stream?: Partial<NatsBusConfig['stream']> } = {},
): NatsBusConfig {
  const defaults = natsDefaults();
  const { stream, ...rest } = overrides;
  return {
    ...defaults,
    servers: NATS_URL,
    stream_prefix: prefix,
    // Tests on the shared server keep nothing on its disk.
    stream: { ...defaults.stream, storage: 'memory', ...stream },
    ...rest,
  };
}

/** A stream prefix no other test run uses. */
export function uniquePrefix(): string {
  return `PARLEY_T${Math.random().toString(36).slice(2, 10).toUpperCase()}`;
}

/** True when NATS with JetStream answers at `url`. */
export async function natsReachable(url = NATS_URL): Promise<boolean> {
  try {
    const connection = await connect({ servers: url, timeout: 1000, reconnect: false });
    const ok = connection.info?.jetstream === true;
    await connection.close();
    return ok;
  } catch {
    return false;
  }
}

/** Whether to run tests that need the shared NATS; throws under CI when it is unreachable. */
export async function requireNats(what: string): Promise<boolean> {
  if (await natsReachable()) return true;
  const message = `${what}: NATS with JetStream is not reachable at ${NATS_URL}`;
  if (process.env.CI === 'true') throw new Error(`${message} (CI=true: a missing service is a failure)`);
  console.warn(`${message}; skipping (start nats-server -js, or set NATS_URL)`);
  return false;
}

/** Deletes the streams (and with them the consumers) of the given prefixes. */
export async function deleteStreams(prefixes: string[], url = NATS_URL): Promise<void> {
  if (prefixes.length === 0) return;
  const connection = await connect({ servers: url, timeout: 2000, reconnect: false });
  try {
    const manager = await jetstreamManager(connection);
    for (const prefix of prefixes) await manager.streams.delete(`${prefix}_EVENTS`).catch(() => {});
  } finally {
    await connection.close();
  }
}

/** A nats-server process of a test's own, on a free port, storing JetStream in a temporary directory. */
export interface OwnNatsServer {
  url: string;
  port: number;
  /** Kills the process (SIGKILL: a crash, not a shutdown) and waits for it to exit. */
  kill(): Promise<void>;
  /** Starts it again on the same port and store directory. */
  start(): Promise<void>;
  /** Kills it and removes the store directory. */
  dispose(): Promise<void>;
}

/** Where the nats-server binary is, or undefined. */
export function natsServerBinary(): string | undefined {
  const candidates = [
    process.env.NATS_SERVER_BIN,
    ...(process.env.PATH ?? '').split(delimiter).map((directory) => join(directory, 'nats-server')),
    '/usr/sbin/nats-server',
    '/usr/local/bin/nats-server',
    '/usr/bin/nats-server',
  ];
  return candidates.find((candidate) => candidate !== undefined && candidate !== '' && existsSync(candidate));
}

/** Whether tests that start their own nats-server can run; throws under CI when the binary is missing. */
export function requireNatsServerBinary(what: string): boolean {
  if (natsServerBinary() !== undefined) return true;
  const message = `${what}: no nats-server binary (set NATS_SERVER_BIN or put it on PATH)`;
  if (process.env.CI === 'true') throw new Error(`${message} (CI=true: a missing service is a failure)`);
  console.warn(`${message}; skipping`);
  return false;
}

/** Starts a nats-server with JetStream on a free port. */
export async function startOwnNatsServer(): Promise<OwnNatsServer> {
  const binary = natsServerBinary();
  if (binary === undefined) throw new Error('no nats-server binary');
  const port = await freePort();
  const storeDirectory = mkdtempSync(join(tmpdir(), 'parley-nats-'));
  let child: ChildProcess | undefined;

  async function start(): Promise<void> {
    const process = spawn(binary!, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDirectory], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child = process;
    await new Promise<void>((resolve, reject) => {
      let output = '';
      const timer = setTimeout(() => reject(new Error(`nats-server did not start:\n${output}`)), 10_000);
      process.stderr!.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Server is ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      process.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited with ${code}:\n${output}`));
      });
    });
    process.stderr!.resume();
  }

  async function kill(): Promise<void> {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGKILL');
    await exited;
  }

  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    kill,
    start,
    async dispose() {
      await kill();
      rmSync(storeDirectory, { recursive: true, force: true });
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
