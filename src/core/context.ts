import type { Bus, EventHandler, SubscribeOptions } from './bus-types.ts';
import { AccessDeniedError } from './errors.ts';
import type { ModuleContext, ModuleLogger, ModuleStorage, PlatformServices } from './module.ts';
import type { Capability } from './types.ts';

/**
 * Decides what a module may do. The implementation lives in src/security (it reads the grant table from
 * config); core only asks it.
 */
export interface AccessPolicy {
  /** The capability needed to emit, request or handle `eventType`, if any. */
  capabilityFor(eventType: string): Capability | undefined;
  /** Whether `moduleName` declared and was granted `capability`. */
  isGranted(moduleName: string, capability: Capability): boolean;
  /** Called on every denial, so it can be audited. */
  onDenied?(moduleName: string, capability: Capability, action: string): void;
}

/** Grants everything: for tests and tools that run no untrusted module. */
export const allowAllPolicy: AccessPolicy = {
  capabilityFor: () => undefined,
  isGranted: () => true,
};

export interface CreateContextOptions<Config> {
  name: string;
  config: Readonly<Config>;
  bus: Bus;
  storage: ModuleStorage;
  log: ModuleLogger;
  policy: AccessPolicy;
  missingOptionalDependencies: readonly string[];
  getModule<Api>(name: string): Promise<Api | undefined>;
  services: PlatformServices;
}

/** Builds the context one module sees: its name as event source, its scoped storage, checked calls. */
export function createContext<Config>(options: CreateContextOptions<Config>): ModuleContext<Config> {
  const { name, bus, policy } = options;

  function requireCapability(capability: Capability, action: string): void {
    if (policy.isGranted(name, capability)) return;
    policy.onDenied?.(name, capability, action);
    throw new AccessDeniedError(
      `module "${name}" may not ${action}: it lacks the "${capability}" capability`,
      {
        details: { module: name, capability, action },
      },
    );
  }

  function checkEvent(eventType: string, verb: string): void {
    const capability = policy.capabilityFor(eventType);
    if (capability !== undefined) requireCapability(capability, `${verb} "${eventType}"`);
  }

  return {
    ...options.services,
    name,
    config: options.config,
    storage: options.storage,
    log: options.log,
    missingOptionalDependencies: options.missingOptionalDependencies,
    emit(type, data, envelope) {
      checkEvent(type, 'emit');
      return bus.emit(type, data, { source: name, ...envelope });
    },
    on<K extends string>(pattern: K, handler: EventHandler<never>, subscribe?: SubscribeOptions) {
      checkEvent(pattern, 'handle');
      return bus.on(pattern, handler as EventHandler, subscribe);
    },
    request(type, data, requestOptions) {
      checkEvent(type, 'request');
      return bus.request(type, data, { source: name, ...requestOptions });
    },
    gather(type, data, gatherOptions) {
      checkEvent(type, 'gather');
      return bus.gather(type, data, { source: name, ...gatherOptions });
    },
    pipeline(stages, data, pipelineOptions) {
      return bus.pipeline(stages, data, { source: name, ...pipelineOptions });
    },
    getModule: options.getModule,
    requireCapability,
  };
}
