import type { Bus, EventHandler } from './bus-types.ts';
import { type AccessPolicy, createContext } from './context.ts';
import { PlatformError, toPlatformError } from './errors.ts';
import type {
  HealthStatus,
  ModuleDefinition,
  ModuleHandler,
  ModuleInstance,
  ModuleLogger,
  ModuleStorage,
  PlatformServices,
} from './module.ts';
import { createWorkerHost, type WorkerIsolationOptions } from './worker-host.ts';

/** The common config keys every module slice has (config/schemas/module.schema.json). */
export interface CommonModuleConfig {
  enabled?: boolean;
  lazy?: boolean;
  setup_timeout_ms?: number;
  isolation?: 'none' | 'worker';
}

export interface LoadModulesOptions {
  /** Every module the platform knows, by name. */
  definitions: ReadonlyMap<string, ModuleDefinition<never, unknown>>;
  /** The module config slices by module name (validated and frozen by core/config). */
  moduleConfig: (name: string) => Readonly<Record<string, unknown>> | undefined;
  bus: Bus;
  /** The storage a module sees, already scoped to its root. */
  storageFor: (name: string) => ModuleStorage;
  log: ModuleLogger;
  policy: AccessPolicy;
  /** Shared services every context carries (`llm`, …). */
  services?: PlatformServices;
  /** Used when a module's config does not set `setup_timeout_ms`. */
  defaultSetupTimeoutMs?: number;
  /** Each module's index file: a module configured `isolation: "worker"` is imported from it in a worker. */
  moduleFiles?: ReadonlyMap<string, string>;
  /** Memory limit and restart rules of module workers; defaults as in config/default.json. */
  isolation?: WorkerIsolationOptions;
}

const DEFAULT_ISOLATION: WorkerIsolationOptions = {
  maxMemoryBytes: 512 * 1024 * 1024,
  restartDelayMs: 500,
  maxRestarts: 5,
};

/** A module as the registry tracks it. */
export interface LoadedModule {
  name: string;
  version: string;
  lazy: boolean;
  /** False for a lazy module whose first event has not come yet. */
  ready: boolean;
  missingOptionalDependencies: string[];
}

/** The loaded modules: the seed's ModuleRegistry. */
export interface ModuleRegistry {
  /** Modules in load (dependency) order. */
  list(): LoadedModule[];
  /** A module's declared `api`, loading it first when it is lazy; `undefined` when not enabled. */
  getModule<Api = unknown>(name: string): Promise<Api | undefined>;
  /** Each module's health; a lazy module not yet loaded reports healthy. */
  health(): Promise<Record<string, HealthStatus>>;
  /** Unsubscribes handlers and disposes modules in reverse load order. */
  dispose(): Promise<void>;
}

interface ModuleSlot {
  definition: ModuleDefinition<never, unknown>;
  config: Readonly<Record<string, unknown>>;
  lazy: boolean;
  missingOptional: string[];
  instance: ModuleInstance | undefined;
  loading: Promise<ModuleInstance> | undefined;
  unsubscribers: Array<() => void>;
}

/**
 * Loads the enabled modules in dependency order (DESIGN.md §4): a missing required dependency or a cycle
 * is a startup error naming the modules; a missing optional one is reported to the module; `lazy` modules
 * are set up on their first event; every setup runs under a timeout.
 */
export async function loadModules(options: LoadModulesOptions): Promise<ModuleRegistry> {
  const { definitions, bus, log } = options;
  const slots = new Map<string, ModuleSlot>();

  for (const [name, definition] of definitions) {
    const config = options.moduleConfig(name) ?? {};
    if ((config as CommonModuleConfig).enabled === false) continue;
    slots.set(name, {
      definition,
      config,
      lazy: (config as CommonModuleConfig).lazy === true,
      missingOptional: [],
      instance: undefined,
      loading: undefined,
      unsubscribers: [],
    });
  }

  for (const [name, slot] of slots) {
    const missing = slot.definition.info.dependencies.filter((dependency) => !slots.has(dependency));
    if (missing.length > 0) {
      throw new PlatformError(
        'CHAT_ERR_MODULE_MISSING_DEPENDENCY',
        `module "${name}" requires ${missing.map((m) => `"${m}"`).join(', ')}, which ${missing.length === 1 ? 'is' : 'are'} not enabled`,
        { details: { module: name, missing } },
      );
    }
    slot.missingOptional = (slot.definition.info.optionalDependencies ?? []).filter((d) => !slots.has(d));
    if (slot.lazy && (slot.definition.handles ?? []).length === 0) {
      throw new PlatformError(
        'CHAT_ERR_CONFIG_INVALID',
        `module "${name}" is configured lazy but declares no "handles" events that could load it`,
        { details: { module: name } },
      );
    }
  }

  const order = dependencyOrder(slots);
  const loadedOrder: string[] = [];

  function moduleLog(name: string): ModuleLogger {
    return log.child({ module: name });
  }

  async function setUp(name: string, slot: ModuleSlot): Promise<ModuleInstance> {
    const context = createContext({
      name,
      config: slot.config as never,
      bus,
      storage: options.storageFor(name),
      log: moduleLog(name),
      policy: options.policy,
      missingOptionalDependencies: slot.missingOptional,
      getModule: registry.getModule,
      services: options.services ?? ({} as PlatformServices),
    });
    const timeoutMs =
      (slot.config as CommonModuleConfig).setup_timeout_ms ?? options.defaultSetupTimeoutMs ?? 10_000;
    const instance =
      (slot.config as CommonModuleConfig).isolation === 'worker'
        ? await setUpInWorker(name, context, timeoutMs)
        : await withSetupTimeout(name, timeoutMs, async () => slot.definition.setup(context as never));
    slot.instance = instance;
    loadedOrder.push(name);
    for (const [pattern, declared] of Object.entries(instance.handlers ?? {})) {
      if (declared === undefined) continue;
      if (slot.lazy && slot.definition.handles?.includes(pattern)) continue; // already routed by the trigger
      subscribe(name, slot, pattern, declared);
    }
    if (slot.missingOptional.length > 0) {
      moduleLog(name).warn(
        { missing: slot.missingOptional },
        'optional dependencies missing; module degrades',
      );
    }
    moduleLog(name).info(
      {
        version: slot.definition.info.version,
        lazy: slot.lazy,
        isolation: (slot.config as CommonModuleConfig).isolation ?? 'none',
      },
      'module loaded',
    );
    return instance;
  }

  /** Runs the module's setup (and later its handlers) in a worker thread of its own. */
  async function setUpInWorker(
    name: string,
    context: ReturnType<typeof createContext>,
    timeoutMs: number,
  ): Promise<ModuleInstance> {
    const file = options.moduleFiles?.get(name);
    if (file === undefined) {
      throw new PlatformError(
        'CHAT_ERR_MODULE_SETUP_FAILED',
        `module "${name}" is configured isolation: "worker", but the file it was loaded from is not known, so a worker cannot import it`,
        { details: { module: name } },
      );
    }
    const host = createWorkerHost({
      name,
      file,
      context,
      isolation: options.isolation ?? DEFAULT_ISOLATION,
      timeoutMs,
      log: moduleLog(name),
    });
    try {
      return await withSetupTimeout(name, timeoutMs, () => host.start());
    } catch (error) {
      await host.stop();
      throw error;
    }
  }

  function subscribe(name: string, slot: ModuleSlot, pattern: string, declared: ModuleHandler<never>): void {
    const { handler, mode } =
      typeof declared === 'function' ? { handler: declared, mode: 'work' as const } : declared;
    assertHandleAllowed(name, pattern);
    slot.unsubscribers.push(bus.on(pattern, handler as EventHandler, { mode: mode ?? 'work', group: name }));
  }

  function assertHandleAllowed(name: string, pattern: string): void {
    const capability = options.policy.capabilityFor(pattern);
    if (capability !== undefined && !options.policy.isGranted(name, capability)) {
      options.policy.onDenied?.(name, capability, `handle "${pattern}"`);
      throw new PlatformError(
        'CHAT_ERR_SECURITY_ACCESS_DENIED',
        `module "${name}" may not handle "${pattern}": it lacks the "${capability}" capability`,
        { details: { module: name, capability, pattern } },
      );
    }
  }

  function ensureLoaded(name: string, slot: ModuleSlot): Promise<ModuleInstance> {
    if (slot.instance !== undefined) return Promise.resolve(slot.instance);
    if (slot.loading === undefined) {
      slot.loading = setUp(name, slot).catch((error: unknown) => {
        slot.loading = undefined; // a later event may try again
        throw error;
      });
    }
    return slot.loading;
  }

  /** Routes a lazy module's declared events: the first one runs its setup, then every one is delivered. */
  function subscribeLazyTrigger(name: string, slot: ModuleSlot, pattern: string): void {
    assertHandleAllowed(name, pattern);
    const trigger: EventHandler = async (event) => {
      const instance = await ensureLoaded(name, slot);
      const declared = instance.handlers?.[pattern];
      if (declared === undefined) return undefined;
      const handler = (typeof declared === 'function' ? declared : declared.handler) as EventHandler;
      return handler(event);
    };
    slot.unsubscribers.push(bus.on(pattern, trigger, { mode: 'work', group: name }));
  }

  const registry: ModuleRegistry = {
    list() {
      return order.map((name) => {
        const slot = slots.get(name)!;
        return {
          name,
          version: slot.definition.info.version,
          lazy: slot.lazy,
          ready: slot.instance !== undefined,
          missingOptionalDependencies: slot.missingOptional,
        };
      });
    },
    async getModule<Api>(name: string): Promise<Api | undefined> {
      const slot = slots.get(name);
      if (slot === undefined) return undefined;
      const instance = await ensureLoaded(name, slot);
      return instance.api as Api | undefined;
    },
    async health() {
      const result: Record<string, HealthStatus> = {};
      for (const name of order) {
        const instance = slots.get(name)?.instance;
        try {
          result[name] = (await instance?.health?.()) ?? { healthy: true };
        } catch (error) {
          result[name] = { healthy: false, detail: toPlatformError(error).message };
        }
      }
      return result;
    },
    async dispose() {
      for (const slot of slots.values())
        for (const unsubscribe of slot.unsubscribers.splice(0)) unsubscribe();
      for (const name of [...loadedOrder].reverse()) {
        const slot = slots.get(name)!;
        try {
          await slot.instance?.dispose?.();
        } catch (error) {
          moduleLog(name).error({ err: error }, 'module dispose failed');
        }
        slot.instance = undefined;
      }
      loadedOrder.length = 0;
    },
  };

  try {
    for (const name of order) {
      const slot = slots.get(name)!;
      if (slot.lazy) {
        for (const pattern of slot.definition.handles ?? []) subscribeLazyTrigger(name, slot, pattern);
        moduleLog(name).info({ handles: slot.definition.handles }, 'module registered lazily');
      } else {
        await ensureLoaded(name, slot);
      }
    }
  } catch (error) {
    await registry.dispose(); // don't leave half a platform subscribed
    throw error;
  }
  return registry;
}

/** Orders modules so each comes after its required and (present) optional dependencies. */
function dependencyOrder(slots: ReadonlyMap<string, ModuleSlot>): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();

  function visit(name: string, path: string[]): void {
    const seen = state.get(name);
    if (seen === 'done') return;
    if (seen === 'visiting') {
      const cycle = [...path.slice(path.indexOf(name)), name];
      throw new PlatformError(
        'CHAT_ERR_MODULE_DEPENDENCY_CYCLE',
        `module dependency cycle: ${cycle.join(' → ')}`,
        {
          details: { cycle },
        },
      );
    }
    state.set(name, 'visiting');
    const info = slots.get(name)!.definition.info;
    for (const dependency of [...info.dependencies, ...(info.optionalDependencies ?? [])]) {
      if (slots.has(dependency)) visit(dependency, [...path, name]);
    }
    state.set(name, 'done');
    order.push(name);
  }

  for (const name of [...slots.keys()].sort()) visit(name, []);
  return order;
}

async function withSetupTimeout(
  name: string,
  timeoutMs: number,
  setup: () => Promise<ModuleInstance>,
): Promise<ModuleInstance> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new PlatformError(
            'CHAT_ERR_MODULE_SETUP_TIMEOUT',
            `module "${name}" did not finish setup within ${timeoutMs} ms (setup_timeout_ms)`,
            { details: { module: name, timeoutMs } },
          ),
        ),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([
      setup().catch((error: unknown) => {
        if (error instanceof PlatformError) throw error;
        throw new PlatformError(
          'CHAT_ERR_MODULE_SETUP_FAILED',
          `module "${name}" failed during setup: ${String(error instanceof Error ? error.message : error)}`,
          { cause: error, details: { module: name } },
        );
      }),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
