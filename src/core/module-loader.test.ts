import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createLocalTransport } from '../bus/local.ts';
import { createAccessPolicy } from '../security/access-control.ts';
import { createMemoryStorage } from '../storage/drivers/memory.ts';
import { scopeStorage } from '../storage/scoped.ts';
import { createBus } from './bus.ts';
import { type AccessPolicy, allowAllPolicy } from './context.ts';
import { isAccessDenied, isPlatformError } from './errors.ts';
import { defineModule, type ModuleDefinition, type ModuleLogger } from './module.ts';
import { loadModules } from './module-loader.ts';
import { matchesPattern } from './pattern.ts';
import { USER_ERASE } from './user-erasure.ts';

const warnings: unknown[] = [];
const silentLog: ModuleLogger = {
  debug() {},
  info() {},
  warn(object) {
    warnings.push(object);
  },
  error() {},
  child: () => silentLog,
};

function testModule(
  name: string,
  parts: Partial<ModuleDefinition<never, unknown>> & { dependencies?: string[]; optional?: string[] } = {},
): ModuleDefinition<never, unknown> {
  return defineModule<never, unknown>({
    info: {
      name,
      version: '1.0.0',
      capabilities: parts.info?.capabilities ?? [],
      dependencies: parts.dependencies ?? [],
      optionalDependencies: parts.optional ?? [],
    },
    configSchema: {},
    ...(parts.handles === undefined ? {} : { handles: parts.handles }),
    setup: parts.setup ?? (() => ({})),
  });
}

function setUpPlatform(
  modules: ModuleDefinition<never, unknown>[],
  config: Record<string, Record<string, unknown>> = {},
  policy: AccessPolicy = allowAllPolicy,
) {
  const bus = createBus({ transport: createLocalTransport() });
  const storage = createMemoryStorage();
  const load = (moduleFiles?: ReadonlyMap<string, string>) =>
    loadModules({
      ...(moduleFiles === undefined ? {} : { moduleFiles }),
      definitions: new Map(modules.map((definition) => [definition.info.name, definition])),
      moduleConfig: (name) => config[name],
      bus,
      storageFor: (name) => scopeStorage(storage, name),
      log: silentLog,
      policy,
    });
  return { bus, storage, load };
}

describe('module loader', () => {
  it('sets modules up in dependency order and disposes them in reverse', async () => {
    const events: string[] = [];
    const make = (name: string, dependencies: string[] = []) =>
      testModule(name, {
        dependencies,
        setup: () => {
          events.push(`setup ${name}`);
          return { dispose: () => void events.push(`dispose ${name}`) };
        },
      });
    const { load } = setUpPlatform([make('c', ['b']), make('a'), make('b', ['a'])]);
    const registry = await load();
    expect(registry.list().map((m) => m.name)).toEqual(['a', 'b', 'c']);
    await registry.dispose();
    expect(events).toEqual(['setup a', 'setup b', 'setup c', 'dispose c', 'dispose b', 'dispose a']);
  });

  it('stops startup with a clear error naming a missing required dependency', async () => {
    const { load } = setUpPlatform([testModule('chat', { dependencies: ['memory'] })]);
    const error = await load().catch((e: unknown) => e);
    expect(isPlatformError(error, 'CHAT_ERR_MODULE_MISSING_DEPENDENCY')).toBe(true);
    expect(String((error as Error).message)).toContain('"chat" requires "memory"');
  });

  it('treats a disabled dependency as missing', async () => {
    const { load } = setUpPlatform([testModule('chat', { dependencies: ['memory'] }), testModule('memory')], {
      memory: { enabled: false },
    });
    await expect(load()).rejects.toThrow(/"chat" requires "memory"/);
  });

  it('stops startup on a dependency cycle, naming the modules in it', async () => {
    const { load } = setUpPlatform([
      testModule('a', { dependencies: ['b'] }),
      testModule('b', { dependencies: ['c'] }),
      testModule('c', { dependencies: ['a'] }),
    ]);
    const error = await load().catch((e: unknown) => e);
    expect(isPlatformError(error, 'CHAT_ERR_MODULE_DEPENDENCY_CYCLE')).toBe(true);
    expect((error as Error).message).toMatch(/a → b → c → a/);
  });

  it('tells a module which optional dependencies are missing, and it still loads', async () => {
    let told: readonly string[] = [];
    const { load } = setUpPlatform([
      testModule('chat', {
        optional: ['memory'],
        setup: (ctx) => {
          told = ctx.missingOptionalDependencies;
          return {};
        },
      }),
    ]);
    const registry = await load();
    expect(told).toEqual(['memory']);
    expect(registry.list()[0]?.missingOptionalDependencies).toEqual(['memory']);
  });

  it('fails startup when a setup exceeds its timeout', async () => {
    const { load } = setUpPlatform([testModule('slow', { setup: () => new Promise(() => {}) })], {
      slow: { setup_timeout_ms: 50 },
    });
    const error = await load().catch((e: unknown) => e);
    expect(isPlatformError(error, 'CHAT_ERR_MODULE_SETUP_TIMEOUT')).toBe(true);
    expect((error as Error).message).toContain('"slow" did not finish setup within 50 ms');
  });

  it('reports a throwing setup as a setup failure naming the module', async () => {
    const { load } = setUpPlatform([
      testModule('broken', {
        setup: () => {
          throw new Error('no database');
        },
      }),
    ]);
    await expect(load()).rejects.toThrow(/module "broken" failed during setup: no database/);
  });

  it('sets a lazy module up on its first event, then delivers that event', async () => {
    let setups = 0;
    const received: unknown[] = [];
    const { bus, load } = setUpPlatform(
      [
        testModule('lazy_one', {
          handles: ['job.created'],
          setup: () => {
            setups++;
            return { handlers: { 'job.created': (event) => void received.push(event.data) } };
          },
        }),
      ],
      { lazy_one: { lazy: true } },
    );
    const registry = await load();
    expect(setups).toBe(0);
    expect(registry.list()[0]).toMatchObject({ lazy: true, ready: false });
    await bus.emit('job.created', { n: 1 });
    await bus.emit('job.created', { n: 2 });
    expect(setups).toBe(1);
    expect(received).toEqual([{ n: 1 }, { n: 2 }]);
    expect(registry.list()[0]?.ready).toBe(true);
  });

  it('gives getModule only the declared api, and nothing for a module that is not loaded', async () => {
    const secret = { hidden: true };
    let seen: unknown;
    const { load } = setUpPlatform([
      testModule('store', {
        setup: () => ({
          api: { count: () => 3 },
          handlers: {},
          health: () => ({ healthy: true, detail: JSON.stringify(secret) }),
        }),
      }),
      testModule('reader', {
        dependencies: ['store'],
        setup: async (ctx) => {
          seen = await ctx.getModule('store');
          return {};
        },
      }),
    ]);
    const registry = await load();
    expect(Object.keys(seen as object)).toEqual(['count']);
    expect(await registry.getModule('absent')).toBeUndefined();
  });

  it('scopes storage: a module reads only its own root', async () => {
    let otherRead: unknown = 'unset';
    const { storage, load } = setUpPlatform([
      testModule('writer', {
        setup: async (ctx) => {
          await ctx.storage.write('note.txt', new TextEncoder().encode('mine'));
          return {};
        },
      }),
      testModule('reader', {
        dependencies: ['writer'],
        setup: async (ctx) => {
          otherRead = await ctx.storage.read('note.txt');
          return {};
        },
      }),
    ]);
    await load();
    expect(await storage.exists('writer/note.txt')).toBe(true);
    expect(otherRead).toBeUndefined();
  });

  it('denies emitting an event that needs a capability the module was not granted', async () => {
    const denied: string[] = [];
    const policy = createAccessPolicy({
      grants: { access_user_data: ['presence'] },
      eventCapabilities: { 'user.status_changed': 'access_user_data' },
      declared: new Map([
        ['presence', ['access_user_data']],
        ['intruder', ['access_user_data']],
      ]),
      matches: matchesPattern,
      onDenied: (module, capability) => void denied.push(`${module}:${capability}`),
    });
    let emitError: unknown;
    const { load } = setUpPlatform(
      [
        testModule('intruder', {
          setup: async (ctx) => {
            emitError = await ctx
              .emit('user.status_changed', { userId: 'u', status: 'online' })
              .catch((e) => e);
            return {};
          },
        }),
      ],
      {},
      policy,
    );
    await load();
    expect(isAccessDenied(emitError)).toBe(true);
    expect(denied).toEqual(['intruder:access_user_data']);
  });

  it('lets a module handle platform.* events but never send them, whatever it was granted', async () => {
    const tries: unknown[] = [];
    const { bus, load } = setUpPlatform([
      testModule('eraser', {
        setup: async (ctx) => {
          tries.push(await ctx.emit(USER_ERASE, { userId: 'u' }).catch((e) => e));
          tries.push(await ctx.request(USER_ERASE, { userId: 'u' }).catch((e) => e));
          tries.push(await ctx.gather(USER_ERASE, { userId: 'u' }).catch((e) => e));
          return { handlers: { [USER_ERASE]: () => ({ erased: 0 }) } };
        },
      }),
    ]);
    await load();
    expect(tries.map((error) => isAccessDenied(error) && (error as Error).message)).toEqual([
      'module "eraser" may not emit "platform.user.erase": only the platform sends it',
      'module "eraser" may not request "platform.user.erase": only the platform sends it',
      'module "eraser" may not gather "platform.user.erase": only the platform sends it',
    ]);
    const gathered = await bus.gather(USER_ERASE, { userId: 'u' }, { timeout: 1000 });
    expect(gathered.replies).toEqual([{ responder: 'eraser', data: { erased: 0 } }]);
  });

  it('refuses at startup a handler for an event the module may not handle', async () => {
    const policy = createAccessPolicy({
      grants: {},
      eventCapabilities: { 'user.>': 'access_user_data' },
      declared: new Map([['spy', []]]),
      matches: matchesPattern,
    });
    const { load } = setUpPlatform(
      [testModule('spy', { setup: () => ({ handlers: { 'user.status_changed': () => {} } }) })],
      {},
      policy,
    );
    const error = await load().catch((e: unknown) => e);
    expect(isAccessDenied(error)).toBe(true);
  });

  it('aggregates module health, reporting a throwing health check as unhealthy', async () => {
    const { load } = setUpPlatform([
      testModule('fine', { setup: () => ({ health: () => ({ healthy: true }) }) }),
      testModule('sick', {
        setup: () => ({
          health: () => {
            throw new Error('disk full');
          },
        }),
      }),
    ]);
    const registry = await load();
    expect(await registry.health()).toEqual({
      fine: { healthy: true },
      sick: { healthy: false, detail: 'disk full' },
    });
    expect(warnings).toBeDefined();
  });

  it('sets an isolated lazy module up in a worker on its first event', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'parley-loader-'));
    try {
      const file = join(directory, 'index.mjs');
      await writeFile(
        file,
        `import { isMainThread } from 'node:worker_threads';
        export default {
          info: { name: 'sealed', version: '1.0.0', capabilities: [], dependencies: [] },
          configSchema: {},
          handles: ['sealed.where'],
          setup: () => ({ handlers: { 'sealed.where': () => ({ isMainThread }) } }),
        };`,
      );
      const definition = (await import(pathToFileURL(file).href)).default as ModuleDefinition<never, unknown>;
      const { bus, load } = setUpPlatform([definition], { sealed: { lazy: true, isolation: 'worker' } });
      const registry = await load(new Map([['sealed', file]]));
      expect(registry.list()[0]).toMatchObject({ lazy: true, ready: false });
      expect(await bus.request('sealed.where', {})).toEqual({ isMainThread: false });
      expect(registry.list()[0]?.ready).toBe(true);
      await registry.dispose();
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  it('refuses to isolate a module whose file it does not know', async () => {
    const { load } = setUpPlatform([testModule('sealed')], { sealed: { isolation: 'worker' } });
    const error = await load().catch((e: unknown) => e);
    expect(isPlatformError(error, 'CHAT_ERR_MODULE_SETUP_FAILED')).toBe(true);
    expect((error as Error).message).toContain('"sealed" is configured isolation: "worker", but the file');
  });
});
