/**
 * The module context inside an isolated module's worker. Every part of it is a proxy over the worker's
 * channel to the module's real context on the main thread: the storage scope, the capability checks and
 * the audit of refusals stay there, out of the module's reach.
 */

import type { EventHandler, SubscribeOptions } from './bus-types.ts';
import { PlatformError } from './errors.ts';
import type { ModuleContext, ModuleLogger, ModuleStorage, PlatformServices } from './module.ts';
import { chargedUser } from './storage-charge.ts';
import type { WorkerChannel } from './worker-channel.ts';
import type { WorkerServiceMethods } from './worker-protocol.ts';

export interface CreateWorkerContextOptions {
  name: string;
  config: Readonly<Record<string, unknown>>;
  missingOptionalDependencies: readonly string[];
  services: Record<string, WorkerServiceMethods>;
  channel: WorkerChannel;
  /** Keeps a handler the module subscribed with `ctx.on` under the id the main thread delivers to. */
  addSubscription(handler: EventHandler): number;
  removeSubscription(id: number): void;
}

/** Builds the context an isolated module's setup receives. */
export function createWorkerContext(options: CreateWorkerContextOptions): ModuleContext {
  const { name, channel } = options;
  const call = channel.call as <T>(target: string, args: unknown[], signalArg?: number) => Promise<T>;

  // A change carries the user the module charges it to (chargeStorageTo, in this thread) to the main
  // thread, where the storage quota counts it.
  const storage: ModuleStorage = {
    read: (key) => call('storage.read', [key]),
    write: (key, data, options) => call('storage.write', [key, data, options, chargedUser()]),
    delete: (key) => call('storage.delete', [key, chargedUser()]),
    list: (prefix) => call('storage.list', [prefix]),
    exists: (key) => call('storage.exists', [key]),
    append: (key, data) => call('storage.append', [key, data, chargedUser()]),
  };

  function logger(bindings: Record<string, unknown>): ModuleLogger {
    return {
      debug: (object, message) => channel.log('debug', bindings, object, message),
      info: (object, message) => channel.log('info', bindings, object, message),
      warn: (object, message) => channel.log('warn', bindings, object, message),
      error: (object, message) => channel.log('error', bindings, object, message),
      child: (more) => logger({ ...bindings, ...more }),
    };
  }

  const services: Record<string, Record<string, unknown>> = {};
  for (const [service, methods] of Object.entries(options.services)) {
    const proxy: Record<string, unknown> = {};
    // Service requests carry their options (and so their AbortSignal) first, as LlmRequest does.
    for (const method of methods.call ?? [])
      proxy[method] = (...args: unknown[]) => call(`${service}.${method}`, args, 0);
    for (const method of methods.stream ?? [])
      proxy[method] = (...args: unknown[]) => channel.stream(`${service}.${method}`, args, 0);
    for (const [method, streamMethod] of Object.entries(methods.streamTo ?? {})) {
      proxy[method] = async (request: unknown, onPart: (part: unknown) => PromiseLike<void> | undefined) => {
        for await (const part of channel.stream(`${service}.${streamMethod}`, [request], 0))
          await onPart(part);
      };
    }
    for (const method of methods.sync ?? [])
      proxy[method] = (...args: unknown[]) => channel.callSync(`${service}.${method}`, args);
    services[service] = proxy;
  }

  const context: Omit<ModuleContext, keyof PlatformServices> = {
    name,
    config: options.config,
    storage,
    log: logger({}),
    missingOptionalDependencies: options.missingOptionalDependencies,
    emit: (type, data, envelope) => call('emit', [type, data, envelope]),
    request: (type, data, requestOptions) => call('request', [type, data, requestOptions], 2),
    gather: (type, data, gatherOptions) => call('gather', [type, data, gatherOptions], 2),
    pipeline: (stages, data, pipelineOptions) => call('pipeline', [stages, data, pipelineOptions], 2),
    on<K extends string>(pattern: K, handler: EventHandler<never>, subscribe?: SubscribeOptions) {
      const { signal, ...rest } = subscribe ?? {};
      const id = options.addSubscription(handler as EventHandler);
      try {
        // Synchronous, as `on` is: a pattern the module may not handle throws AccessDeniedError here.
        channel.callSync('on', [id, pattern, rest]);
      } catch (error) {
        options.removeSubscription(id);
        throw error;
      }
      let subscribed = true;
      const unsubscribe = () => {
        if (!subscribed) return;
        subscribed = false;
        options.removeSubscription(id);
        channel.callSync('off', [id]);
      };
      signal?.addEventListener('abort', unsubscribe, { once: true });
      return unsubscribe;
    },
    getModule() {
      return Promise.reject(
        new PlatformError(
          'CHAT_ERR_MODULE_ISOLATION',
          `isolated module "${name}" cannot use getModule: another module's api does not cross a worker boundary; use ctx.request instead`,
          { details: { module: name } },
        ),
      );
    },
    requireCapability(capability, action) {
      channel.callSync('requireCapability', [capability, action]);
    },
  };
  // The services present are proxies of the methods that cross (WorkerServiceMethods); others are absent.
  return { ...(services as unknown as PlatformServices), ...context };
}
