/**
 * `isolation: "worker"`: a module's setup and handlers run in a real worker thread; what it does through
 * its context is checked on the main thread (storage scope, capabilities, audit), and a worker that runs
 * out of memory fails its requests at once, is reported in /readyz, and comes back — while the platform
 * and the other modules keep answering.
 */

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { isPlatformError } from '../../src/core/errors.ts';
import { createPlatform, type Platform } from '../../src/platform/create-platform.ts';
import { createServer } from '../../src/server/create-server.ts';
import { createModuleWorkspace, type ModuleWorkspace, workspaceEnv } from '../helpers/module-workspace.ts';

// `vault` runs in a worker. It declares two capabilities that the config does not grant it.
const VAULT = `
import { isMainThread, threadId } from 'node:worker_threads';
import { defineModule } from 'parley/module';

const text = (bytes: Uint8Array | undefined) => (bytes === undefined ? null : new TextDecoder().decode(bytes));
const failure = (error: any) => ({ name: error.name, code: error.code, message: error.message });

export default defineModule({
  info: {
    name: 'vault',
    version: '1.0.0',
    capabilities: ['access_user_data', 'external_api_calls'],
    dependencies: ['plain'],
  },
  configSchema: {},
  setup(ctx) {
    const hog: unknown[] = [];
    return {
      handlers: {
        'vault.where': () => ({ isMainThread, threadId }),
        'vault.put': async (event: any) => ctx.storage.write(event.data.key, new TextEncoder().encode(event.data.value)),
        'vault.get': async (event: any) => text(await ctx.storage.read(event.data.key)),
        'vault.snoop': async () => ({
          sameName: text(await ctx.storage.read('secret.txt')),
          escape: await ctx.storage.read('../plain/secret.txt').then(text, failure),
        }),
        'vault.announce': async (event: any) => {
          await ctx.emit('vault.announced', event.data);
          return 'announced';
        },
        'vault.ask_plain': (event: any) => ctx.request('plain.echo', event.data),
        'vault.touch_user_data': () =>
          ctx.emit('user.status_changed', { userId: 'u1', status: 'online' }).then(() => 'emitted', failure),
        'vault.call_out': () => {
          try {
            ctx.requireCapability('external_api_calls', 'call the weather service');
            return 'allowed';
          } catch (error) {
            return failure(error);
          }
        },
        'vault.get_module': () => ctx.getModule('plain').then(() => 'got it', failure),
        'vault.uncloneable': () => ({ callback: () => 1 }),
        'vault.ask_model': async () => {
          const request = { messages: [{ role: 'user' as const, content: 'hello' }] };
          const whole = await ctx.llm.generate(request);
          let streamed = '';
          for await (const part of ctx.llm.stream(request)) if (part.type === 'text-delta') streamed += part.text;
          // The handler cannot cross to the main thread: it is called here, in the worker.
          let handed = '';
          await ctx.llm.streamTo(request, (part) => {
            if (part.type === 'text-delta') handed += part.text;
          });
          return { model: ctx.llm.defaultModelName(), whole: whole.text, streamed, handed };
        },
        'vault.throw_later': () => {
          setTimeout(() => {
            throw new Error('boom outside any handler');
          }, 10);
          return 'scheduled';
        },
        'vault.hog': () => {
          for (;;) hog.push({ at: Date.now(), padding: 'x'.repeat(64) + hog.length });
        },
      },
    };
  },
});
`;

// \`plain\` is an ordinary in-process module the isolated one talks to.
const PLAIN = `
import { defineModule } from 'parley/module';

export default defineModule({
  info: { name: 'plain', version: '1.0.0', capabilities: [], dependencies: [] },
  configSchema: {},
  async setup(ctx) {
    await ctx.storage.write('secret.txt', new TextEncoder().encode('plain only'));
    const announced: unknown[] = [];
    return {
      handlers: {
        'plain.echo': (event: any) => ({ echoed: event.data }),
        'vault.announced': (event: any) => void announced.push({ data: event.data, source: event.source }),
        'plain.announced': () => announced,
      },
    };
  },
});
`;

describe('a module run in a worker (isolation: "worker")', () => {
  let workspace: ModuleWorkspace;
  let platform: Platform;
  let app: FastifyInstance;

  beforeAll(async () => {
    workspace = await createModuleWorkspace();
    await workspace.write('vault/index.ts', VAULT);
    await workspace.write('plain/index.ts', PLAIN);
    platform = await createPlatform({
      env: workspaceEnv(workspace, {
        CHAT_VAULT__ISOLATION: 'worker',
        CHAT_RESOURCE_LIMITS__MAX_MEMORY_PER_MODULE: '32MB',
        CHAT_RESOURCE_LIMITS__WORKER_RESTART_DELAY_MS: '300',
      }),
    });
    app = await createServer(platform);
  });
  afterAll(async () => {
    await app?.close();
    await platform?.close();
    await workspace?.remove();
  });

  it('handles its requests in a thread of its own', async () => {
    expect(await platform.bus.request('vault.where', {})).toMatchObject({ isMainThread: false });
  });

  it('reads and writes its own storage root, and only that', async () => {
    expect(await platform.bus.request('vault.put', { key: 'notes/a.txt', value: 'kept' })).toBe(true);
    expect(await platform.bus.request('vault.get', { key: 'notes/a.txt' })).toBe('kept');
    expect(await readFile(join(workspace.dataDir, 'vault', 'notes', 'a.txt'), 'utf8')).toBe('kept');

    const snoop = (await platform.bus.request('vault.snoop', {})) as Record<string, unknown>;
    expect(snoop.sameName).toBeNull(); // plain's secret.txt is not under vault/
    expect(snoop.escape).toMatchObject({ code: 'CHAT_ERR_STORAGE_INVALID_KEY' });
  });

  it('emits events other modules handle, under its own name as source', async () => {
    expect(await platform.bus.request('vault.announce', { n: 1 })).toBe('announced');
    expect(await platform.bus.request('plain.announced', {})).toEqual([{ data: { n: 1 }, source: 'vault' }]);
  });

  it('requests other modules through the bus', async () => {
    expect(await platform.bus.request('vault.ask_plain', { q: 'hi' })).toEqual({ echoed: { q: 'hi' } });
  });

  it('gets AccessDeniedError inside the worker for what it was not granted, and the refusal is audited', async () => {
    expect(await platform.bus.request('vault.touch_user_data', {})).toMatchObject({
      name: 'AccessDeniedError',
      code: 'CHAT_ERR_SECURITY_ACCESS_DENIED',
    });
    expect(await platform.bus.request('vault.call_out', {})).toMatchObject({
      name: 'AccessDeniedError',
      message: expect.stringContaining('may not call the weather service'),
    });
    await vi.waitFor(async () => {
      const refusals = (await platform.audit!.list()).filter(
        (entry) => entry.action === 'access.denied' && (entry.actor as { id?: string }).id === 'vault',
      );
      expect(refusals.map((entry) => (entry.details as { capability: string }).capability).sort()).toEqual([
        'access_user_data',
        'external_api_calls',
      ]);
    });
  });

  it("calls the platform's model through ctx.llm, whole and streamed", async () => {
    const answer = (await platform.bus.request('vault.ask_model', {})) as Record<string, string>;
    expect(answer.model).toBe(platform.llm.defaultModelName());
    expect(answer.whole?.length).toBeGreaterThan(0);
    expect(answer.streamed).toBe(answer.whole);
    expect(answer.handed).toBe(answer.whole);
  });

  it('says clearly what does not cross the boundary', async () => {
    expect(await platform.bus.request('vault.get_module', {})).toMatchObject({
      code: 'CHAT_ERR_MODULE_ISOLATION',
    });
    const error = await platform.bus.request('vault.uncloneable', {}).catch((e: unknown) => e);
    expect(isPlatformError(error, 'CHAT_ERR_MODULE_ISOLATION')).toBe(true);
    expect((error as Error).message).toMatch(/reply of its handler .* cannot cross its worker boundary/);
  });

  it('is stopped past its memory limit, fails the request at once, is reported, and comes back', async () => {
    const started = performance.now();
    const error = await platform.bus.request('vault.hog', {}, { timeout: 30_000 }).catch((e: unknown) => e);
    expect(isPlatformError(error, 'CHAT_ERR_MODULE_WORKER_FAILED')).toBe(true);
    expect((error as Error).message).toContain('ran out of memory (limit 32 MB');
    expect(performance.now() - started).toBeLessThan(15_000); // not the request timeout

    // Down: /readyz says why, a request fails at once, the rest of the platform answers.
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json().modules.vault).toMatchObject({
      healthy: false,
      detail: expect.stringMatching(/worker not running: ran out of memory .*; restarting/),
    });
    const refused = await platform.bus.request('vault.where', {}).catch((e: unknown) => e);
    expect(isPlatformError(refused, 'CHAT_ERR_MODULE_WORKER_FAILED')).toBe(true);
    expect(await platform.bus.request('plain.echo', { still: 'here' })).toEqual({
      echoed: { still: 'here' },
    });

    // Restarted after the backoff: healthy again, its storage where it was.
    await vi.waitFor(
      async () => {
        expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
      },
      { timeout: 10_000, interval: 100 },
    );
    expect(await platform.bus.request('vault.get', { key: 'notes/a.txt' })).toBe('kept');
    expect((await platform.modules.health()).vault?.detail).toContain('worker restarted 1 time(s)');
  });

  it('is restarted after a throw outside any handler', async () => {
    expect(await platform.bus.request('vault.throw_later', {})).toBe('scheduled');
    await vi.waitFor(async () => {
      expect((await platform.modules.health()).vault).toMatchObject({
        healthy: false,
        detail: expect.stringContaining('threw: boom outside any handler'),
      });
    });
    await vi.waitFor(async () => expect((await platform.modules.health()).vault?.healthy).toBe(true), {
      timeout: 10_000,
      interval: 100,
    });
    expect(await platform.bus.request('vault.where', {})).toMatchObject({ isMainThread: false });
  });
});

describe('a module worker that keeps crashing', () => {
  let workspace: ModuleWorkspace;
  let platform: Platform;

  beforeAll(async () => {
    workspace = await createModuleWorkspace();
    await workspace.write(
      'fragile/index.ts',
      `import { defineModule } from 'parley/module';
      export default defineModule({
        info: { name: 'fragile', version: '1.0.0', capabilities: [], dependencies: [] },
        configSchema: {},
        setup: () => ({ handlers: { 'fragile.exit': () => process.exit(7), 'fragile.ping': () => 'pong' } }),
      });`,
    );
    platform = await createPlatform({
      env: workspaceEnv(workspace, {
        CHAT_FRAGILE__ISOLATION: 'worker',
        CHAT_RESOURCE_LIMITS__WORKER_RESTART_DELAY_MS: '100',
        CHAT_RESOURCE_LIMITS__WORKER_MAX_RESTARTS: '1',
      }),
    });
  });
  afterAll(async () => {
    await platform?.close();
    await workspace?.remove();
  });

  it('is restarted at most worker_max_restarts times in a row, then left down and reported', async () => {
    const first = await platform.bus.request('fragile.exit', {}).catch((e: unknown) => e);
    expect((first as Error).message).toContain('exited with code 7');
    await vi.waitFor(() => expect(platform.bus.request('fragile.ping', {})).resolves.toBe('pong'), {
      timeout: 5000,
      interval: 50,
    });

    await platform.bus.request('fragile.exit', {}).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 500)); // longer than any restart delay would be
    expect((await platform.modules.health()).fragile).toEqual({
      healthy: false,
      detail:
        'worker not running: exited with code 7; left down after 1 consecutive crashes (worker_max_restarts)',
    });
    const refused = await platform.bus.request('fragile.ping', {}).catch((e: unknown) => e);
    expect(isPlatformError(refused, 'CHAT_ERR_MODULE_WORKER_FAILED')).toBe(true);
  });
});
