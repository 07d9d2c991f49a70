/**
 * Test support (not loaded by the platform: only *.test.ts import it). Assembles a real platform the way
 * src/platform/create-platform.ts does — config files in a temp dir, flatfile storage, the in-process bus,
 * the access policy of config/default.json — except that `ctx.llm` is a registry whose models are an AI SDK
 * mock the test scripts.
 */

import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LanguageModelV3CallOptions, LanguageModelV3StreamPart } from '@ai-sdk/provider';
import { MockLanguageModelV3 } from 'ai/test';
import { createLocalTransport, type LocalNetwork } from '../../bus/local.ts';
import { createBus } from '../../core/bus.ts';
import type { Bus } from '../../core/bus-types.ts';
import { getModuleConfig, loadConfig, type ModuleConfig, type PlatformConfig } from '../../core/config.ts';
import type { EventEnvelope } from '../../core/events.ts';
import type { ModuleDefinition } from '../../core/module.ts';
import { loadModules, type ModuleRegistry } from '../../core/module-loader.ts';
import { matchesPattern } from '../../core/pattern.ts';
import { createModelRegistry } from '../../llm/registry.ts';
import { createLogger } from '../../observability/logger.ts';
import { createAccessPolicy } from '../../security/access-control.ts';
import { createStorage } from '../../storage/create-storage.ts';
import { scopeStorage } from '../../storage/scoped.ts';
import type { Storage } from '../../storage/types.ts';

/** What the scripted model does on its next calls. */
export type ModelScript =
  | { kind: 'reply'; chunks: string[] }
  /** The provider fails before answering. */
  | { kind: 'fail'; error: Error }
  /** Sends `chunks`, then waits until the call is aborted. */
  | { kind: 'hang'; chunks: string[] };

export interface Harness {
  config: Readonly<PlatformConfig>;
  bus: Bus;
  storage: Storage;
  modules: ModuleRegistry;
  /** The flatfile root (`data_dir`). */
  dataDir: string;
  /** Every call the model received, oldest first. */
  calls: LanguageModelV3CallOptions[];
  script(next: ModelScript): void;
  /** Every event whose type matches `pattern`, as seen by a local listener. */
  events(pattern: string): EventEnvelope[];
  readDataFile(path: string): Promise<string>;
  /** What the platform logged at warn level and above, one object a line. */
  logged(): Promise<Array<{ level: string; msg: string }>>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** Module config files (`{ "<name>": {...} }` is written for each entry). */
  modules?: Record<string, Record<string, unknown>>;
  definitions: ReadonlyMap<string, ModuleDefinition<never, unknown>>;
  /** Another in-process node: its bus joins this network (work events go to one node of it). */
  network?: LocalNetwork;
  /** Storage shared with another harness (which closes it); default the harness's own flatfile. */
  storage?: Storage;
}

function parts(chunks: string[], finish: boolean): LanguageModelV3StreamPart[] {
  const list: LanguageModelV3StreamPart[] = [
    { type: 'stream-start', warnings: [] },
    { type: 'text-start', id: 't' },
    ...chunks.map((delta): LanguageModelV3StreamPart => ({ type: 'text-delta', id: 't', delta })),
  ];
  if (finish) {
    list.push(
      { type: 'text-end', id: 't' },
      {
        type: 'finish',
        finishReason: { unified: 'stop', raw: 'stop' },
        usage: {
          inputTokens: { total: 11, noCache: 11, cacheRead: 0, cacheWrite: 0 },
          outputTokens: { total: chunks.length, text: chunks.length, reasoning: 0 },
        },
      },
    );
  }
  return list;
}

/** Starts the harness: call `close()` when done. */
export async function startHarness(options: HarnessOptions): Promise<Harness> {
  const directory = await mkdtemp(join(tmpdir(), 'parley-text-chat-'));
  const configDir = join(directory, 'config');
  const dataDir = join(directory, 'data');
  await mkdir(join(configDir, 'modules'), { recursive: true });
  // The repository's own defaults (capability grants and event capabilities included), data in the temp dir.
  const defaults = JSON.parse(
    await readFile(new URL('../../../config/default.json', import.meta.url), 'utf8'),
  );
  await writeFile(join(configDir, 'default.json'), JSON.stringify({ ...defaults, data_dir: dataDir }));
  for (const [name, slice] of Object.entries(options.modules ?? {})) {
    await writeFile(join(configDir, 'modules', `${name}.json`), JSON.stringify({ [name]: slice }));
  }
  const config = loadConfig({
    configDir,
    env: {},
    nodeEnv: 'test',
    modules: [...options.definitions.values()].map((definition) => ({
      name: definition.info.name,
      ...(definition.defaults === undefined ? {} : { defaults: definition.defaults }),
      schema: definition.configSchema,
    })),
  });
  const moduleConfig = (name: string) => getModuleConfig(config, name) as Readonly<ModuleConfig> | undefined;
  const log = createLogger({ level: 'warn', destination: join(directory, 'log.jsonl') });
  const storage = options.storage ?? (await createStorage(config.storage));
  const bus = createBus({
    transport: createLocalTransport(options.network === undefined ? {} : { network: options.network }),
    requestTimeoutMs: config.bus.request_timeout_ms,
    log,
  });
  const policy = createAccessPolicy({
    grants: config.security.capabilities,
    eventCapabilities: config.security.event_capabilities,
    declared: new Map(
      [...options.definitions].map(([name, definition]) => [name, definition.info.capabilities]),
    ),
    moduleGrants: (name) => moduleConfig(name)?.capabilities ?? [],
    matches: matchesPattern,
  });

  let script: ModelScript = { kind: 'reply', chunks: ['Hello', ' there'] };
  const calls: LanguageModelV3CallOptions[] = [];
  const model = new MockLanguageModelV3({
    doStream: async (call) => {
      calls.push(call);
      const current = script;
      if (current.kind === 'fail') throw current.error;
      const chunks = parts(current.chunks, current.kind === 'reply');
      const stream = new ReadableStream<LanguageModelV3StreamPart>({
        start(controller) {
          for (const chunk of chunks) controller.enqueue(chunk);
          if (current.kind === 'reply') {
            controller.close();
            return;
          }
          const signal = call.abortSignal;
          const stop = () => controller.error(signal?.reason ?? new DOMException('aborted', 'AbortError'));
          if (signal?.aborted) stop();
          else signal?.addEventListener('abort', stop, { once: true });
        },
      });
      return { stream };
    },
  });
  // `mock:*` is the scripted model; other names go to the configured providers (so unknown ones fail as
  // they would).
  const llm = createModelRegistry(
    { default_model: 'mock:default', max_retries: 0, request_timeout_ms: 30_000 },
    { models: { mock: () => model } },
  );

  const modules = await loadModules({
    definitions: options.definitions,
    moduleConfig,
    bus,
    storageFor: (name) => scopeStorage(storage, moduleConfig(name)?.storage_root ?? name),
    log,
    policy,
    services: { llm, cluster: { multiNode: options.network !== undefined } },
  });

  const seen: EventEnvelope[] = [];
  bus.on('>', (event) => void seen.push(event), { mode: 'local' });

  return {
    config,
    bus,
    storage,
    modules,
    dataDir,
    calls,
    script(next) {
      script = next;
    },
    events: (pattern) => seen.filter((event) => matchesPattern(pattern, event.type)),
    readDataFile: (path) => readFile(join(dataDir, path), 'utf8'),
    async logged() {
      const text = await readFile(join(directory, 'log.jsonl'), 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as { level: string; msg: string });
    },
    async close() {
      await bus.close();
      await modules.dispose();
      if (options.storage === undefined) await storage.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
