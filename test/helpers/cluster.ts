/**
 * Several `parley serve` processes for multi-node and fault tests: each node is a real child process
 * (`node src/cli/main.ts serve`) configured by `CHAT_*` env vars only, listening on a free port (its address
 * is read from the "parley is listening on" log line). Every spawned process is remembered, so a test's
 * afterAll — or, failing that, the exit of the test worker — kills whatever is still running.
 */

import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const REPO_ROOT = join(import.meta.dirname, '..', '..');
const MAIN = join(REPO_ROOT, 'src', 'cli', 'main.ts');

/** How long a node may take to start listening (2 cores, other test files running at the same time). */
const START_TIMEOUT_MS = 40_000;

/** What `call` returns: status, headers and the parsed JSON body (or the text when it is not JSON). */
export interface NodeCallResult {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary response bodies
  body: any;
  /** Milliseconds from sending the request to having read the whole answer. */
  milliseconds: number;
}

/** Options of one HTTP call to a node. */
export interface NodeCallOptions {
  /** Sent as `Authorization: Bearer <key>`. */
  key?: string;
  /** Sent as JSON. */
  body?: unknown;
  /** Aborts the call after this many milliseconds (a hang shows as a failed call, not a stuck test). */
  timeoutMs?: number;
  /** More request headers (`Idempotency-Key`, say). */
  headers?: Record<string, string>;
}

/** One running `parley serve`. */
export interface ParleyNode {
  readonly name: string;
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  readonly pid: number;
  /** Everything it wrote to stdout and stderr so far (JSON log lines, the first-start box). */
  readonly output: string;
  /** The admin API key it printed, when this start created the admin (the first start on empty storage). */
  readonly bootstrapKey: string | undefined;
  /** An HTTP call to this node. */
  call(method: string, path: string, options?: NodeCallOptions): Promise<NodeCallResult>;
  /** Sends `signal` (default SIGKILL: a crash) and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** True once the process exited. */
  readonly exited: boolean;
  /** The exit code once it exited by itself (null when a signal killed it, or still running). */
  readonly exitCode: number | null;
}

/** Options of `startNode`. */
export interface StartNodeOptions {
  /** A label for error messages. */
  name: string;
  /** `CHAT_*` variables (and others) on top of the base ones; the parent's `CHAT_*` variables are dropped. */
  env: Record<string, string>;
}

const running = new Set<ChildProcessWithoutNullStreams>();
const dataDirectories = new Set<string>();
// A test worker that dies without its afterAll must not leave servers behind.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Starts `parley serve` and resolves once it listens; rejects with its output when it fails to. */
export async function startNode(options: StartNodeOptions): Promise<ParleyNode> {
  const dataDir = await mkdtemp(join(tmpdir(), `parley-node-${options.name}-`));
  dataDirectories.add(dataDir);
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !name.startsWith('CHAT_')) env[name] = value;
  }
  Object.assign(env, {
    NODE_ENV: 'test',
    // The "listening" line is an info line; the test environment logs warnings only by default.
    CHAT_LOGGING__LEVEL: 'info',
    CHAT_SERVER__HOST: '127.0.0.1',
    CHAT_SERVER__PORT: '0',
    CHAT_DATA_DIR: dataDir,
    ...options.env,
  });
  const child = spawn(process.execPath, [MAIN, 'serve'], { cwd: REPO_ROOT, env, stdio: 'pipe' });
  running.add(child);
  let output = '';
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      running.delete(child);
      resolve();
    });
  });
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => {
    output += text;
  });

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`node ${options.name} did not start within ${START_TIMEOUT_MS} ms:\n${output}`));
    }, START_TIMEOUT_MS);
    child.stdout.on('data', (text: string) => {
      output += text;
      const match = /parley is listening on (http:\/\/[^"\s]+)/.exec(output);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    void exit.then(() => {
      clearTimeout(timer);
      reject(new Error(`node ${options.name} exited before listening:\n${output}`));
    });
  });
  const bootstrapKey = /(pk_[A-Za-z0-9_-]{43})/.exec(output)?.[1];

  return {
    name: options.name,
    url,
    pid: child.pid ?? -1,
    get output() {
      return output;
    },
    bootstrapKey,
    call: (method, path, callOptions) => callNode(url, method, path, callOptions),
    async kill(signal = 'SIGKILL') {
      if (!exited) child.kill(signal);
      await exit;
    },
    get exited() {
      return exited;
    },
    get exitCode() {
      return child.exitCode;
    },
  };
}

/** Kills (SIGKILL) every node still running and removes their data folders; for afterAll. */
export async function killAllNodes(): Promise<void> {
  const exits = [...running].map(
    (child) =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
  );
  await Promise.all(exits);
  await Promise.all([...dataDirectories].map((directory) => rm(directory, { recursive: true, force: true })));
  dataDirectories.clear();
}

/** One HTTP call to `baseUrl`; a network failure (the node is down) rejects. */
export async function callNode(
  baseUrl: string,
  method: string,
  path: string,
  options: NodeCallOptions = {},
): Promise<NodeCallResult> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] = 'application/json';
  }
  const started = performance.now();
  const response = await fetch(baseUrl + path, {
    method,
    headers,
    ...(body === undefined ? {} : { body }),
    ...(options.timeoutMs === undefined ? {} : { signal: AbortSignal.timeout(options.timeoutMs) }),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    // not JSON: the text is the body
  }
  return {
    status: response.status,
    headers: response.headers,
    body: parsed,
    milliseconds: performance.now() - started,
  };
}

/** Polls `condition` every 50 ms until it holds; throws after `timeoutMs`. */
export async function waitFor(
  condition: () => Promise<boolean> | boolean,
  what: string,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
