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

/**
 * Events only the platform sends (the server, the CLI): a module may handle them but never emit, request or
 * gather them — `platform.user.erase` asks every module to delete a user's data, and no module may ask that.
 */
export const PLATFORM_EVENT_PREFIX = 'platform.';

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

  /** Runs a bus call after the access check; a denial rejects the returned promise like any bus failure. */
  function checked<T>(eventType: string, verb: string, call: () => Promise<T>): Promise<T> {
    try {
      if (eventType.startsWith(PLATFORM_EVENT_PREFIX)) {
        throw new AccessDeniedError(
          `module "${name}" may not ${verb} "${eventType}": only the platform sends it`,
          {
            details: { module: name, action: `${verb} "${eventType}"` },
          },
        );
      }
      checkEvent(eventType, verb);
    } catch (error) {
      return Promise.reject(error);
    }
    return call();
  }

  return {
    ...options.services,
    name,
    config: options.config,
    storage: options.storage,
    log: options.log,
    missingOptionalDependencies: options.missingOptionalDependencies,
    emit(type, data, envelope) {
      return checked(type, 'emit', () => bus.emit(type, data, { source: name, ...envelope }));
    },
    on<K extends string>(pattern: K, handler: EventHandler<never>, subscribe?: SubscribeOptions) {
      checkEvent(pattern, 'handle');
      // A module's work subscriptions belong to its own group unless it names another.
      return bus.on(pattern, handler as EventHandler, { group: name, ...subscribe });
    },
    request(type, data, requestOptions) {
      return checked(type, 'request', () => bus.request(type, data, { source: name, ...requestOptions }));
    },
    gather(type, data, gatherOptions) {
      return checked(type, 'gather', () => bus.gather(type, data, { source: name, ...gatherOptions }));
    },
    pipeline(stages, data, pipelineOptions) {
      return bus.pipeline(stages, data, { source: name, ...pipelineOptions });
    },
    getModule: options.getModule,
    requireCapability,
  };
}
