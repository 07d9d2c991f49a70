/**
 * Runs an isolated module (`isolation: "worker"`) in a worker thread, under the heap limit of
 * `resource_limits.max_memory_per_module`. The module's context calls come here and run on its real
 * context (scoped storage, capability checks, audit); its handlers are proxies that deliver each event to
 * the worker. A worker that runs out of memory, throws or exits fails its calls in flight at once, is
 * reported unhealthy and is restarted with a doubling delay, a bounded number of times.
 */

import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import { PlatformError } from './errors.ts';
import type { HealthStatus, ModuleContext, ModuleHandler, ModuleInstance, ModuleLogger } from './module.ts';
import { chargeStorageTo } from './storage-charge.ts';
import {
  type DeclaredHandler,
  type HostMessage,
  postCloned,
  reviveError,
  serializeError,
  setupHandlerKey,
  subscriptionKey,
  type WorkerMessage,
  type WorkerServiceMethods,
  type WorkerStartData,
} from './worker-protocol.ts';

/** Runs a storage change charged to `userId` when the worker named one (core/storage-charge.ts). */
function chargedTo<T>(userId: string | undefined, change: () => T): T {
  return typeof userId === 'string' ? chargeStorageTo(userId, change) : change();
}

const MEBIBYTE = 1024 * 1024;

/** The platform-wide rules of module workers (from `resource_limits`). */
export interface WorkerIsolationOptions {
  /** JavaScript heap limit of each worker, in bytes (`max_memory_per_module`). */
  maxMemoryBytes: number;
  /** Wait before the first restart; doubles with each consecutive crash (`worker_restart_delay_ms`). */
  restartDelayMs: number;
  /** Consecutive crashes after which the worker is left down (`worker_max_restarts`). */
  maxRestarts: number;
  /** Methods of shared services (`llm`) an isolated module may call; others are absent in the worker. */
  services?: Record<string, WorkerServiceMethods>;
}

export interface WorkerHostOptions {
  name: string;
  /** The module's index file, imported inside the worker. */
  file: string;
  /** The module's real context, on this thread. */
  context: ModuleContext;
  isolation: WorkerIsolationOptions;
  /** How long setup, dispose and a synchronous call may take. */
  timeoutMs: number;
  log: ModuleLogger;
}

/** An isolated module's worker, as the loader holds it. */
export interface WorkerHost {
  /** Starts the worker and runs the module's setup there; the instance's handlers deliver to it. */
  start(): Promise<ModuleInstance>;
  /** Runs the module's dispose (if the worker is up) and terminates the worker. */
  stop(): Promise<void>;
}

interface PendingReply {
  what: string;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

type State = 'starting' | 'up' | 'down' | 'stopped';

/** Creates the host of one isolated module; nothing runs until `start()`. */
export function createWorkerHost(options: WorkerHostOptions): WorkerHost {
  const { name, context, isolation, log } = options;
  const limitMb = Math.max(1, Math.floor(isolation.maxMemoryBytes / MEBIBYTE));
  // A worker that outlived the longest wait between restarts is not in a crash loop: its count restarts.
  const crashLoopWindowMs = isolation.restartDelayMs * 2 ** isolation.maxRestarts;

  let state: State = 'starting';
  let worker: Worker | undefined;
  let startedAt = 0;
  let crashes = 0;
  let restarts = 0;
  let lastFailure: string | undefined;
  let restartTimer: NodeJS.Timeout | undefined;
  let restartDueAt = 0;
  let declared: DeclaredHandler[] = [];
  let hasHealth = false;
  let hasDispose = false;
  let nextId = 1;
  const pending = new Map<number, PendingReply>();
  /** Calls the worker made that are still running here, so its abort (or its death) stops them. */
  const inFlight = new Map<number, AbortController>();
  /** What the worker subscribed with `ctx.on`, by its subscription id. */
  const subscriptions = new Map<number, () => void>();

  const targets = new Map<string, (...args: never[]) => unknown>([
    // The source is the module's name whatever the worker asks: an isolated module cannot pose as another.
    [
      'emit',
      (type: string, data: unknown, envelope?: object) =>
        context.emit(type, data as never, { ...envelope, source: name }),
    ],
    [
      'request',
      (type: string, data: unknown, opts?: object) =>
        context.request(type, data as never, { ...opts, source: name }),
    ],
    [
      'gather',
      (type: string, data: unknown, opts?: object) =>
        context.gather(type, data as never, { ...opts, source: name }),
    ],
    [
      'pipeline',
      (stages: string[], data: unknown, opts?: object) =>
        context.pipeline(stages, data, { ...opts, source: name }),
    ],
    ['storage.read', (key: string) => context.storage.read(key)],
    // A change the worker charged to a user (chargeStorageTo there) is charged to them here.
    [
      'storage.write',
      (key: string, data: Uint8Array, options: { durable?: boolean } | undefined, chargeTo?: string) =>
        chargedTo(chargeTo, () => context.storage.write(key, data, options)),
    ],
    [
      'storage.delete',
      (key: string, chargeTo?: string) => chargedTo(chargeTo, () => context.storage.delete(key)),
    ],
    ['storage.list', (prefix: string) => context.storage.list(prefix)],
    ['storage.exists', (key: string) => context.storage.exists(key)],
    [
      'storage.append',
      (key: string, data: Uint8Array, chargeTo?: string) =>
        chargedTo(chargeTo, () => context.storage.append(key, data)),
    ],
    [
      'requireCapability',
      (capability: string, action: string) => context.requireCapability(capability, action),
    ],
    [
      'on',
      (id: number, pattern: string, subscribe?: object) => {
        const deliverToWorker = (event: unknown) => deliver(subscriptionKey(id), event, `"${pattern}"`);
        subscriptions.set(id, context.on(pattern, deliverToWorker, subscribe));
      },
    ],
    [
      'off',
      (id: number) => {
        subscriptions.get(id)?.();
        subscriptions.delete(id);
      },
    ],
  ]);
  for (const [service, methods] of Object.entries(isolation.services ?? {})) {
    const target = (context as unknown as Record<string, Record<string, (...args: unknown[]) => unknown>>)[
      service
    ];
    if (target === undefined) continue;
    for (const method of [...(methods.call ?? []), ...(methods.stream ?? []), ...(methods.sync ?? [])]) {
      targets.set(`${service}.${method}`, (...args: never[]) => target[method]!(...args));
    }
  }

  function workerFailure(reason: string, what: string): PlatformError {
    return new PlatformError(
      'CHAT_ERR_MODULE_WORKER_FAILED',
      `isolated module "${name}" stopped while handling ${what}: ${reason}`,
      { details: { module: name, reason } },
    );
  }

  /** Sends `message` to the worker and waits for its reply. */
  function ask(message: (id: number) => HostMessage, what: string): Promise<unknown> {
    const current = worker;
    if (state !== 'up' || current === undefined) return Promise.reject(notRunning(what));
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { what, resolve, reject });
      try {
        postCloned(current, message(id), name, what);
      } catch (error) {
        pending.delete(id);
        reject(error);
      }
    });
  }

  function deliver(handler: string, event: unknown, what: string): Promise<unknown> {
    return ask((id) => ({ kind: 'deliver', id, handler, event }), `the event ${what}`);
  }

  /** Why the worker is not running and what happens next, as `/readyz` and refused calls say it. */
  function downReport(): string {
    const reason = lastFailure ?? 'not started';
    const next =
      state === 'down' && restartTimer !== undefined
        ? `restarting in ${Math.max(0, restartDueAt - Date.now())} ms`
        : state === 'starting'
          ? 'restarting now'
          : state === 'stopped'
            ? 'disposed'
            : `left down after ${crashes} consecutive crashes (worker_max_restarts)`;
    return `worker not running: ${reason}; ${next}`;
  }

  function notRunning(what: string): PlatformError {
    return new PlatformError(
      'CHAT_ERR_MODULE_WORKER_FAILED',
      `isolated module "${name}" cannot take ${what}: ${downReport()}`,
      { details: { module: name, reason: lastFailure } },
    );
  }

  /** Fails everything in flight with the worker that just stopped: nothing waits for a dead thread. */
  function failInFlight(reason: string): void {
    for (const [id, call] of pending) {
      pending.delete(id);
      call.reject(workerFailure(reason, call.what));
    }
    for (const controller of inFlight.values()) controller.abort(workerFailure(reason, 'a call'));
    inFlight.clear();
    for (const unsubscribe of subscriptions.values()) unsubscribe();
    subscriptions.clear();
  }

  function reply(target: { postMessage(message: unknown): void }, id: number, run: () => unknown): void {
    const send = (message: object, what: string) => {
      try {
        postCloned(target, message, name, what);
      } catch (error) {
        target.postMessage({ kind: 'reply', id, ok: false, error: serializeError(error) });
      }
    };
    Promise.resolve()
      .then(run)
      .then(
        (value) => send({ kind: 'reply', id, ok: true, value }, 'the result of a call'),
        (error: unknown) => send({ kind: 'reply', id, ok: false, error: serializeError(error) }, 'an error'),
      )
      .finally(() => inFlight.delete(id));
  }

  function targetFor(target: string): (...args: unknown[]) => unknown {
    const found = targets.get(target);
    if (found === undefined) {
      throw new PlatformError(
        'CHAT_ERR_MODULE_ISOLATION',
        `isolated module "${name}" called ${target}, which does not cross a worker boundary`,
        { details: { module: name, target } },
      );
    }
    return found as (...args: unknown[]) => unknown;
  }

  /** Gives the call its own AbortSignal where the worker's had one (signals do not cross). */
  function withSignal(id: number, args: unknown[], signalArg: number | undefined): unknown[] {
    const controller = new AbortController();
    inFlight.set(id, controller);
    if (signalArg === undefined) return args;
    const copy = [...args];
    copy[signalArg] = { ...(copy[signalArg] as object), signal: controller.signal };
    return copy;
  }

  function handleMessage(
    from: Worker,
    syncPort: MessagePort,
    syncSignal: Int32Array,
    message: WorkerMessage,
  ) {
    switch (message.kind) {
      case 'call': {
        const args = withSignal(message.id, message.args, message.signalArg);
        reply(from, message.id, () => targetFor(message.target)(...args));
        break;
      }
      case 'stream': {
        const args = withSignal(message.id, message.args, message.signalArg);
        const signal = inFlight.get(message.id)!.signal;
        reply(from, message.id, async () => {
          const parts = targetFor(message.target)(...args) as AsyncIterable<unknown>;
          for await (const part of parts) {
            if (signal.aborted) break; // the worker stopped reading: `break` ends the source too
            postCloned(
              from,
              { kind: 'stream-part', id: message.id, part },
              name,
              `a part of ${message.target}`,
            );
          }
        });
        break;
      }
      case 'abort':
        inFlight.get(message.id)?.abort();
        break;
      case 'sync': {
        let answer: object;
        try {
          answer = { kind: 'reply', id: 0, ok: true, value: targetFor(message.target)(...message.args) };
        } catch (error) {
          answer = { kind: 'reply', id: 0, ok: false, error: serializeError(error) };
        }
        try {
          postCloned(syncPort, answer, name, `the result of ${message.target}`);
        } catch (error) {
          syncPort.postMessage({ kind: 'reply', id: 0, ok: false, error: serializeError(error) });
        }
        Atomics.store(syncSignal, 0, 1);
        Atomics.notify(syncSignal, 0);
        break;
      }
      case 'log': {
        const logger = Object.keys(message.bindings).length > 0 ? log.child(message.bindings) : log;
        logger[message.level](message.object as object, message.message);
        break;
      }
      case 'reply': {
        const call = pending.get(message.id);
        if (call === undefined) break;
        pending.delete(message.id);
        if (message.ok) call.resolve(message.value);
        else call.reject(reviveError(message.error));
        break;
      }
    }
  }

  /** Starts one worker and resolves once the module's setup in it finished. */
  function launch(): Promise<void> {
    const syncChannel = new MessageChannel();
    const syncSignal = new Int32Array(new SharedArrayBuffer(4));
    const start: WorkerStartData = {
      name,
      file: options.file,
      config: context.config,
      missingOptionalDependencies: context.missingOptionalDependencies,
      services: isolation.services ?? {},
      syncPort: syncChannel.port2,
      syncSignal,
      syncTimeoutMs: options.timeoutMs,
    };
    const launched = new Worker(new URL('./worker-entry.ts', import.meta.url), {
      workerData: start,
      transferList: [syncChannel.port2],
      resourceLimits: { maxOldGenerationSizeMb: limitMb },
      name: `parley module ${name}`,
    });
    worker = launched;
    return new Promise((resolve, reject) => {
      let ready = false;
      let failure: string | undefined;
      launched.on('message', (message: WorkerMessage) => {
        if (message.kind === 'ready') {
          ready = true;
          declared = message.handlers;
          hasHealth = message.hasHealth;
          hasDispose = message.hasDispose;
          if (message.hasApi) {
            log.warn("an isolated module's api is not reachable: getModule does not cross a worker boundary");
          }
          startedAt = Date.now();
          state = 'up';
          resolve();
        } else if (message.kind === 'setup-failed') {
          failure = 'setup failed';
          reject(reviveError(message.error));
          void launched.terminate();
        } else {
          handleMessage(launched, syncChannel.port1, syncSignal, message);
        }
      });
      launched.on('error', (error: Error & { code?: string }) => {
        failure =
          error.code === 'ERR_WORKER_OUT_OF_MEMORY'
            ? `ran out of memory (limit ${limitMb} MB, resource_limits.max_memory_per_module)`
            : `threw: ${error.message}`;
      });
      launched.on('exit', (code) => {
        syncChannel.port1.close();
        if (worker !== launched) return; // stopped on purpose
        worker = undefined;
        const reason = failure ?? `exited with code ${code}`;
        if (!ready) {
          reject(
            new PlatformError(
              'CHAT_ERR_MODULE_WORKER_FAILED',
              `isolated module "${name}" stopped during setup: ${reason}`,
              {
                details: { module: name, reason },
              },
            ),
          );
          return;
        }
        crashed(reason, true);
      });
    });
  }

  /** `wasUp`: the worker had finished setup (a restart whose setup failed is part of the same loop). */
  function crashed(reason: string, wasUp: boolean): void {
    state = 'down';
    lastFailure = reason;
    failInFlight(reason);
    if (wasUp && Date.now() - startedAt > crashLoopWindowMs) crashes = 0;
    if (crashes >= isolation.maxRestarts) {
      log.error(
        { reason, crashes },
        'isolated module worker stopped; left down (worker_max_restarts reached)',
      );
      return;
    }
    const delayMs = isolation.restartDelayMs * 2 ** crashes;
    crashes++;
    log.error(
      { reason, restartInMs: delayMs, attempt: crashes },
      'isolated module worker stopped; restarting',
    );
    restartDueAt = Date.now() + delayMs;
    restartTimer = setTimeout(restart, delayMs);
    restartTimer.unref();
  }

  function restart(): void {
    restartTimer = undefined;
    if (state === 'stopped') return;
    state = 'starting';
    const before = declared.map((handler) => handler.pattern).join(',');
    launch().then(
      () => {
        restarts++;
        if (declared.map((handler) => handler.pattern).join(',') !== before) {
          log.warn(
            'the restarted module declared other handlers than at startup; the startup ones stay routed',
          );
        }
        log.info({ restarts }, 'isolated module worker restarted');
      },
      (error: unknown) => {
        if (state !== 'stopped') crashed((error as Error).message, false);
      },
    );
  }

  function handlerProxies(): Record<string, ModuleHandler<never>> {
    const handlers: Record<string, ModuleHandler<never>> = {};
    for (const { pattern, mode } of declared) {
      const key = setupHandlerKey(pattern);
      handlers[pattern] = { mode, handler: (event) => deliver(key, event, `"${event.type}"`) };
    }
    return handlers;
  }

  async function health(): Promise<HealthStatus> {
    if (state !== 'up') return { healthy: false, detail: downReport() };
    // Bounded: a worker stuck in a loop must not hold /readyz with it.
    const reported = hasHealth
      ? ((await withTimeout(
          ask((id) => ({ kind: 'health', id }), 'a health check'),
          options.timeoutMs,
        )) as HealthStatus)
      : { healthy: true };
    if (restarts === 0 || reported.detail !== undefined) return reported;
    return { ...reported, detail: `worker restarted ${restarts} time(s); last stop: ${lastFailure}` };
  }

  async function stop(): Promise<void> {
    clearTimeout(restartTimer);
    restartTimer = undefined;
    const current = worker;
    if (state === 'up' && hasDispose) {
      await withTimeout(
        ask((id) => ({ kind: 'dispose', id }), 'dispose'),
        options.timeoutMs,
      ).catch((error: unknown) => log.error({ err: error }, 'isolated module dispose failed'));
    }
    state = 'stopped';
    worker = undefined;
    failInFlight('the module was disposed');
    await current?.terminate();
  }

  return {
    async start() {
      await launch();
      return { handlers: handlerProxies(), health, dispose: stop };
    },
    stop,
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the worker did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
