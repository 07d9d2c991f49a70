/**
 * The `parley` commands of the HTTP layer: `parley chat` against a running server (`--url`, `--key`) and
 * in-process with the local config, lines piped in as a user would type them; `parley users create` and
 * `parley keys create|list|revoke` against real flatfile storage, the printed keys checked to work (and
 * to stop working once revoked) by the platform on the same data folder.
 */

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpHarness, startHttpHarness } from './http-harness.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

let harness: HttpHarness;

beforeAll(async () => {
  harness = await startHttpHarness({ env: { CHAT_TEXT_CHAT__STREAMING__CHUNK_SIZE: '1' } });
});

afterAll(async () => {
  await harness?.close();
});

/** Runs `parley <args>` with `input` on stdin; resolves with its exit code and output. */
function parley(
  args: string[],
  options: { input?: string; env?: Record<string, string> } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      env: { ...process.env, NODE_ENV: 'test', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      stdout += text;
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      stderr += text;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`parley ${args.join(' ')} did not finish:\n${stdout}\n${stderr}`));
    }, 25_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** The env that points a parley process at `dataDir` and at the harness's model provider. */
function localEnv(dataDir: string): Record<string, string> {
  const llm = {
    default_model: 'fake:test-model',
    max_retries: 0,
    providers: { fake: { type: 'openai-compatible', base_url: harness.model.baseUrl } },
  };
  return { CHAT_DATA_DIR: dataDir, CHAT_LLM: JSON.stringify(llm), CHAT_LOGGING__LEVEL: 'warn' };
}

describe('parley chat', () => {
  it('against a running server: streams each reply, /new starts a new session', async () => {
    harness.model.respond({ kind: 'stream', chunks: ['Hello', ' from', ' parley'] });
    const result = await parley(['chat', '--url', harness.baseUrl, '--key', harness.alice.key], {
      input: 'hi there\n/new\nand again\n',
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`parley chat — ${harness.baseUrl} as alice`);
    expect(result.stdout.match(/Hello from parley\n/g)).toHaveLength(2);
    expect(result.stdout).toMatch(/new session [0-9a-f-]{36}/);
    const sessions = await harness.call('GET', '/v1/sessions', { key: harness.alice.key });
    const ids = sessions.body.sessions.map((s: { id: string }) => s.id);
    const announced = [...result.stdout.matchAll(/session ([0-9a-f-]{36})/g)].map((match) => match[1]);
    expect(ids).toEqual(expect.arrayContaining(announced));
  });

  it('against a running server: a bad key is a clear error and exit 1', async () => {
    const result = await parley(['chat', '--url', harness.baseUrl, '--key', `pk_${'D'.repeat(43)}`]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('CHAT_ERR_AUTH_UNAUTHENTICATED');
  });

  it('in-process: creates the admin on an empty data folder and chats with the local config', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'parley-chat-'));
    try {
      harness.model.respond({ kind: 'stream', chunks: ['local', ' reply'] });
      const result = await parley(['chat'], { input: 'hello\n', env: localEnv(dataDir) });
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/pk_[A-Za-z0-9_-]{43}/); // the first-start key, once
      expect(result.stdout).toContain('in-process');
      expect(result.stdout).toContain('local reply\n');
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('parley users and keys', () => {
  it('create a user and keys that work, list them without the keys, and revoke one', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'parley-keys-'));
    const env = localEnv(dataDir);
    try {
      // Through the real command line once (argument parsing, dispatch, exit code)…
      const created = await parley(['users', 'create', 'dora', '--role', 'admin'], { env });
      expect(created.code).toBe(0);
      expect(created.stdout).toContain('created user dora (admin)');
      const firstKey = /(pk_[A-Za-z0-9_-]{43})/.exec(created.stdout)?.[1] as string;

      // …then the same commands called in this process (a process start costs a second or two).
      Object.assign(process.env, env, { NODE_ENV: 'test' });
      const commands = await import('../../src/cli/auth-commands.ts');
      const run = async (
        command: (output: { out(t: string): void; error(t: string): void }) => Promise<number>,
      ) => {
        let out = '';
        let error = '';
        const code = await command({ out: (text) => (out += text), error: (text) => (error += text) });
        return { code, out, error };
      };

      const another = await run((output) => commands.keysCreate(undefined, 'dora', 'laptop', output));
      expect(another.code).toBe(0);
      const laptopKey = /(pk_[A-Za-z0-9_-]{43})/.exec(another.out)?.[1] as string;
      const laptopId = /created key ([0-9a-f-]{36})/.exec(another.out)?.[1] as string;

      const listed = await run((output) => commands.keysList(undefined, 'dora', output));
      expect(listed.out).toContain('laptop');
      expect(listed.out).toContain(laptopId);
      expect(listed.out).not.toContain(laptopKey);
      expect(listed.out).not.toContain(firstKey);

      await expect(
        run((output) => commands.usersCreate(undefined, 'dora', undefined, output)),
      ).rejects.toThrow(/already exists/);
      const nobody = await run((output) => commands.keysCreate(undefined, 'nobody', undefined, output));
      expect(nobody.code).toBe(1);
      expect(nobody.error).toContain('no user named "nobody"');

      expect((await run((output) => commands.keysRevoke(undefined, laptopId, output))).code).toBe(0);
      expect((await run((output) => commands.keysList(undefined, undefined, output))).out).toMatch(
        /laptop .* revoked/,
      );
      const users = await run((output) => commands.usersList(undefined, output));
      expect(users.out).toMatch(/dora\s+admin/);

      // The platform on the same data folder accepts the first key and refuses the revoked one.
      const { createPlatform } = await import('../../src/platform/create-platform.ts');
      const { createAuth } = await import('../../src/security/auth.ts');
      const platform = await createPlatform({
        env: { NODE_ENV: 'test', ...env, CHAT_LOGGING__LEVEL: 'silent' },
      });
      try {
        const auth = createAuth(platform.storage);
        await expect(auth.authenticate(firstKey)).resolves.toMatchObject({ userName: 'dora', role: 'admin' });
        await expect(auth.authenticate(laptopKey)).rejects.toMatchObject({
          code: 'CHAT_ERR_AUTH_UNAUTHENTICATED',
        });
      } finally {
        await platform.close();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
