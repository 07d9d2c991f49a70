import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const repoRoot = resolve(import.meta.dirname, '../..');
const cli = join(repoRoot, 'src/cli/main.ts');

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [cli, ...args], { cwd: repoRoot, env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

/** Resolves with the first stdout line matching `pattern`. */
function waitForLine(child: ChildProcess, pattern: RegExp): Promise<string> {
  return new Promise((done, fail) => {
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk;
      const line = buffered.split('\n').find((l) => pattern.test(l));
      if (line !== undefined) {
        child.stdout?.off('data', onData);
        done(line);
      }
    };
    child.stdout?.on('data', onData);
    child.on('close', (code) => fail(new Error(`exited ${code} before printing ${pattern}: ${buffered}`)));
  });
}

describe('parley CLI', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-cli-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('config check passes on the shipped config', async () => {
    const result = await run(['config', 'check']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  it('config check names the file, JSON path, rule and value of a bad setting, and exits 1', async () => {
    const configDir = join(dir, 'config');
    await mkdir(configDir);
    await writeFile(join(configDir, 'default.json'), JSON.stringify({ server: { port: 'eighty' } }));
    const result = await run(['config', 'check', '--config', configDir]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('default.json');
    expect(result.stderr).toContain('/server/port');
    expect(result.stderr).toContain('integer');
    expect(result.stderr).toContain('eighty');
    expect(result.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
  });

  it('config print masks secrets', async () => {
    const result = await run(['config', 'print'], { CHAT_STORAGE__S3__SECRET_ACCESS_KEY: 'do-not-show' });
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain('do-not-show');
    expect(JSON.parse(result.stdout).storage.s3.secret_access_key).toMatch(/\*{4}/);
  });

  it('an unknown command prints usage and exits 2', async () => {
    const result = await run(['frobnicate']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('usage: parley');
  });

  it('serve loads modules, answers /healthz and /readyz, and exits 0 after a clean shutdown on SIGTERM', async () => {
    const child = spawn(process.execPath, [cli, 'serve'], {
      cwd: repoRoot,
      env: { ...process.env, CHAT_DATA_DIR: dir, CHAT_SERVER__PORT: '0', NODE_ENV: 'development' },
    });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const listening = await waitForLine(child, /parley is listening on/);
    const address = (JSON.parse(listening) as { address: string }).address;
    expect(output).toMatch(/"modules":\[[^\]]*"presence@1\.0\.0"/);
    expect(output).toMatch(/"modules":\[[^\]]*"notifications@1\.0\.0"/);
    const health = await fetch(`${address}/healthz`);
    expect(health.status).toBe(200);
    const ready = await fetch(`${address}/readyz`);
    expect((await ready.json()) as object).toMatchObject({ status: 'ready' });

    const exited = new Promise<number | null>((done) => child.on('close', done));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(output).toContain('shut down cleanly');
  });

  it('a broken config stops serve with a clear message and exit 1, no stack trace', async () => {
    const result = await run(['serve'], { CHAT_DATA_DIR: dir, CHAT_BUS__REQUEST_TIMEOUT_MS: '-5' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('/bus/request_timeout_ms');
    expect(result.stderr).not.toMatch(/\n\s+at /);
    await expect(readFile(join(dir, 'presence'))).rejects.toThrow();
  });
});
