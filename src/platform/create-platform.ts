import { createTransport } from '../bus/index.ts';
import { createBus } from '../core/bus.ts';
import type { Bus } from '../core/bus-types.ts';
import {
  getModuleConfig,
  type ModuleConfig,
  type PlatformConfig,
  parseByteSize,
  resolveConfig,
} from '../core/config.ts';
import type { ModuleDefinition } from '../core/module.ts';
import { loadModules, type ModuleRegistry } from '../core/module-loader.ts';
import { type LlmCallObserver, tellEachLlm, tellEachStorage } from '../core/observers.ts';
import { matchesPattern } from '../core/pattern.ts';
import { createModelRegistry, type ModelRegistry } from '../llm/registry.ts';
import { createLogger, type Logger } from '../observability/logger.ts';
import { createMetrics, type PlatformMetrics } from '../observability/metrics.ts';
import type { PlatformTracing } from '../observability/tracing.ts';
import { createAccessPolicy } from '../security/access-control.ts';
import { AUDIT_STORAGE_ROOT, type AuditLog, createAuditLog } from '../security/audit-log.ts';
import type { EncryptionAtRest } from '../security/encryption-at-rest.ts';
import type { QuotaStorage } from '../storage/quota.ts';
import { scopeStorage } from '../storage/scoped.ts';
import type { Storage } from '../storage/types.ts';
import { discoverConfiguredModules } from './discover-modules.ts';
import { createPlatformStorage } from './platform-storage.ts';

export interface CreatePlatformOptions {
  /** Where config/ lives. Default `./config`. */
  configDir?: string;
  env?: NodeJS.ProcessEnv;
  nodeEnv?: string;
  /** The modules to offer; default: every folder under src/modules and under the config's `module_dirs`. */
  definitions?: ReadonlyMap<string, ModuleDefinition<never, unknown>>;
  /** The file each of `definitions` comes from; needed for a module configured `isolation: "worker"`. */
  moduleFiles?: ReadonlyMap<string, string>;
  /** Where logs go (a stream or path); default stdout. */
  logDestination?: NodeJS.WritableStream | string;
  /**
   * A model registry to use instead of the one built from the `llm` config (tests and benchmarks); as a
   * function, it is given the observer that feeds the metrics and traces (undefined when both are off).
   */
  llm?: ModelRegistry | ((observer: LlmCallObserver | undefined) => ModelRegistry);
}

/** A running platform: config, storage, bus and the loaded modules, and the way to stop them. */
export interface Platform {
  config: Readonly<PlatformConfig>;
  log: Logger;
  storage: Storage;
  bus: Bus;
  llm: ModelRegistry;
  modules: ModuleRegistry;
  /** The Prometheus metrics (`/metrics`); undefined when `observability.metrics.enabled` is false. */
  metrics: PlatformMetrics | undefined;
  /** OpenTelemetry tracing; undefined unless `observability.tracing.enabled`. */
  tracing: PlatformTracing | undefined;
  /** The audit log; undefined when `security.audit.enabled` is false. */
  audit: AuditLog | undefined;
  /** Encryption at rest (its data keys: shredding, rotation); undefined while no master key is set. */
  encryption: EncryptionAtRest | undefined;
  /** The per-user storage quota (a user's usage; forgetting an erased user); undefined when it is off. */
  storageQuota: QuotaStorage | undefined;
  /**
   * Stops in the safe order: the bus stops taking events and waits for in-flight handlers, then modules are
   * disposed (reverse load order), then storage is flushed and closed.
   */
  close(): Promise<void>;
}

/** Builds the platform from config: the one composition root that the server and the CLI share. */
export async function createPlatform(options: CreatePlatformOptions = {}): Promise<Platform> {
  const configOptions = {
    ...(options.configDir === undefined ? {} : { configDir: options.configDir }),
    ...(options.env === undefined ? {} : { env: options.env }),
    ...(options.nodeEnv === undefined ? {} : { nodeEnv: options.nodeEnv }),
  };
  const discovered =
    options.definitions === undefined ? await discoverConfiguredModules(configOptions) : undefined;
  const definitions = options.definitions ?? discovered!.definitions;
  const moduleFiles = options.moduleFiles ?? discovered?.files;
  const { config, warnings } = resolveConfig({
    ...configOptions,
    modules: [...definitions.values()].map((definition) => ({
      name: definition.info.name,
      ...(definition.defaults === undefined ? {} : { defaults: definition.defaults }),
      schema: definition.configSchema,
    })),
  });
  const log = createLogger({
    level: config.logging.level,
    name: 'parley',
    ...(options.logDestination === undefined ? {} : { destination: options.logDestination }),
  });
  for (const warning of warnings) log.warn(warning);
  const moduleConfig = (name: string) => getModuleConfig(config, name) as Readonly<ModuleConfig> | undefined;

  const metrics = config.observability.metrics.enabled
    ? createMetrics({ processMetrics: config.observability.metrics.process_metrics })
    : undefined;
  // Loaded only when on: the OpenTelemetry SDK and exporter are megabytes of modules a node without
  // tracing never needs (as the redis and s3 drivers are loaded only when named).
  const tracing = config.observability.tracing.enabled
    ? (await import('../observability/tracing.ts')).createTracing(config.observability.tracing)
    : undefined;
  const storageObserver = (backend: string) =>
    tellEachStorage([metrics?.storage(backend), tracing?.storage(backend)]);
  const { storage, encryption, quota } = await createPlatformStorage(config, storageObserver);
  const llmObserver = tellEachLlm([metrics?.llm, tracing?.llm]);
  let transport: Awaited<ReturnType<typeof createTransport>>;
  try {
    transport = await createTransport(config.bus, { log: log.child({ component: 'bus' }) });
  } catch (error) {
    await storage.close();
    await tracing?.shutdown();
    throw error;
  }
  const bus = createBus({
    transport,
    source: 'parley',
    requestTimeoutMs: config.bus.request_timeout_ms,
    gatherTimeoutMs: config.bus.gather_timeout_ms,
    log,
    ...(metrics === undefined ? {} : { metrics: metrics.bus }),
    ...(tracing === undefined ? {} : { tracing: tracing.bus }),
  });
  const auditLog = config.security.audit.enabled
    ? createAuditLog(scopeStorage(storage, AUDIT_STORAGE_ROOT))
    : undefined;
  const audit = log.child({ audit: true });
  const policy = createAccessPolicy({
    grants: config.security.capabilities,
    eventCapabilities: config.security.event_capabilities,
    declared: new Map([...definitions].map(([name, definition]) => [name, definition.info.capabilities])),
    moduleGrants: (name) => moduleConfig(name)?.capabilities ?? [],
    matches: matchesPattern,
    onDenied: (module, capability, action) => {
      audit.warn({ module, capability, action }, 'access denied');
      auditLog
        ?.record({
          actor: { type: 'module', id: module },
          action: 'access.denied',
          details: { capability, action },
        })
        .catch((error: unknown) => audit.error({ err: error }, 'the audit log could not record a refusal'));
    },
  });

  const llm =
    typeof options.llm === 'function'
      ? options.llm(llmObserver)
      : (options.llm ??
        createModelRegistry(config.llm, {
          ...(options.env === undefined ? {} : { env: options.env }),
          ...(llmObserver === undefined ? {} : { observer: llmObserver }),
        }));

  let modules: ModuleRegistry;
  try {
    modules = await loadModules({
      definitions,
      moduleConfig,
      bus,
      storageFor: (name) => scopeStorage(storage, moduleConfig(name)?.storage_root ?? name),
      log,
      policy,
      services: { llm, cluster: { multiNode: config.bus.transport !== 'local' } },
      ...(moduleFiles === undefined ? {} : { moduleFiles }),
      isolation: {
        maxMemoryBytes: parseByteSize(config.resource_limits.max_memory_per_module),
        restartDelayMs: config.resource_limits.worker_restart_delay_ms,
        maxRestarts: config.resource_limits.worker_max_restarts,
        // What of ctx.llm an isolated module can use: calls whose arguments and results clone.
        services: {
          llm: {
            call: ['generate'],
            stream: ['stream'],
            streamTo: { streamTo: 'stream' },
            sync: ['defaultModelName', 'isConfigured', 'list', 'providerNames'],
          },
        },
      },
    });
  } catch (error) {
    await bus.close();
    await llm.dispose();
    await storage.close();
    await tracing?.shutdown();
    throw error;
  }
  log.info(
    { modules: modules.list().map((m) => `${m.name}@${m.version}${m.lazy ? ' (lazy)' : ''}`) },
    'modules loaded',
  );

  return {
    config,
    log,
    storage,
    bus,
    llm,
    modules,
    metrics,
    tracing,
    audit: auditLog,
    encryption,
    storageQuota: quota,
    async close() {
      await bus.close();
      await modules.dispose();
      await llm.dispose();
      await storage.close();
      // Last: the spans of everything above are sent before the process goes.
      await tracing?.shutdown();
    },
  };
}
