import type { Bus, EventHandler } from './bus-types.ts';
import type { EventMap } from './events.ts';
import type { Capability, ModuleInfo } from './types.ts';

/** A JSON Schema document (draft 2020-12 or 07), as ajv takes it. */
export type JsonSchema = Record<string, unknown>;

/** What a module's `health()` reports; `/readyz` aggregates these. */
export interface HealthStatus {
  healthy: boolean;
  /** Free text shown in `/readyz` when unhealthy. */
  detail?: string;
  /** Health of what the module depends on, e.g. `{ storage: 'healthy' }`. */
  dependencies?: Record<string, string>;
}

/** The logging interface modules see (pino's, narrowed so core does not depend on pino). */
export interface ModuleLogger {
  debug(object: object | string, message?: string): void;
  info(object: object | string, message?: string): void;
  warn(object: object | string, message?: string): void;
  error(object: object | string, message?: string): void;
  child(bindings: Record<string, unknown>): ModuleLogger;
}

/** The storage a module sees: the contract of src/storage, scoped to the module's own root. */
export interface ModuleStorage {
  read(key: string): Promise<Uint8Array | undefined>;
  /** `durable: false`: the write need not survive a crash (src/storage/types.ts, WriteOptions). */
  write(key: string, data: Uint8Array, options?: { durable?: boolean }): Promise<boolean>;
  delete(key: string): Promise<boolean>;
  list(prefix: string): Promise<string[]>;
  exists(key: string): Promise<boolean>;
  append(key: string, data: Uint8Array): Promise<void>;
}

/**
 * Shared services the platform hands every module (`ctx.llm`, …). Empty in core, which must not import the
 * layers above it: each layer adds its service by declaration merging, e.g. src/llm adds
 * `llm: ModelRegistry`, and the platform passes the instances to the loader.
 */
// biome-ignore lint/suspicious/noEmptyInterface: extended by declaration merging
export interface PlatformServices {}

/**
 * The only door a module has to the platform (DESIGN.md §4). Bus calls carry the module's name as the
 * event `source` and pass the access-control check of its granted capabilities.
 */
export interface ModuleContext<Config = Record<string, unknown>> extends PlatformServices {
  /** The module's name (also its config key, event namespace and storage root). */
  readonly name: string;
  /** The module's own validated, frozen config slice. */
  readonly config: Readonly<Config>;
  /** Storage scoped to the module's root: the module cannot name another module's keys. */
  readonly storage: ModuleStorage;
  readonly log: ModuleLogger;
  /** Optional dependencies that are not loaded: the module should degrade without them. */
  readonly missingOptionalDependencies: readonly string[];
  emit: Bus['emit'];
  on: Bus['on'];
  request: Bus['request'];
  gather: Bus['gather'];
  pipeline: Bus['pipeline'];
  /** Another module's declared `api` (loading it first if it is lazy), or `undefined` when not loaded. */
  getModule<Api = unknown>(name: string): Promise<Api | undefined>;
  /** Throws AccessDeniedError (and audits the attempt) unless the module holds `capability`. */
  requireCapability(capability: Capability, action: string): void;
}

/** A handler as a module declares it: a function, or one with delivery options. */
export type ModuleHandler<T = never> =
  | EventHandler<T>
  | { handler: EventHandler<T>; mode?: 'work' | 'local' };

/**
 * Event type (or wildcard pattern) → handler. Handlers of event types declared in `EventMap` get their
 * payload type from it; patterns and undeclared types get an untyped payload.
 */
export type ModuleHandlers = { [K in keyof EventMap]?: ModuleHandler<EventMap[K]> } & {
  [pattern: string]: ModuleHandler<never> | undefined;
};

/** What a module's `setup` returns. */
export interface ModuleInstance<Api = unknown> {
  /** Event type (or wildcard pattern) → handler; registered as work subscriptions of the module's group. */
  handlers?: ModuleHandlers;
  /** What other modules get from `ctx.getModule(name)`; nothing else of the module is reachable. */
  api?: Api;
  health?: () => HealthStatus | Promise<HealthStatus>;
  /** Called on shutdown, in reverse load order, after the module's handlers were unsubscribed. */
  dispose?: () => void | Promise<void>;
}

/** A module's definition: what `index.ts` default-exports. */
export interface ModuleDefinition<Config = Record<string, unknown>, Api = unknown> {
  info: ModuleInfo;
  /** JSON Schema of the module's config slice (module-specific keys; the common ones are checked too). */
  configSchema: JsonSchema;
  /** The module's own config defaults (lowest priority layer). */
  defaults?: Record<string, unknown>;
  /**
   * Event types a lazy module handles before its setup ran: its first such event loads it. Required
   * for a module configured `lazy: true`.
   */
  handles?: string[];
  setup(context: ModuleContext<Config>): ModuleInstance<Api> | Promise<ModuleInstance<Api>>;
}

/** Declares a module (the seed's `register(context)` with a typed result). */
export function defineModule<Config = Record<string, unknown>, Api = unknown>(
  definition: ModuleDefinition<Config, Api>,
): ModuleDefinition<Config, Api> {
  return definition;
}
