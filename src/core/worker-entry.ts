/**
 * The program of an isolated module's worker thread (started by worker-host.ts): imports the module,
 * runs its setup with a proxied context, reports its handlers, then runs each event the main thread
 * delivers and sends the result back.
 */

import { pathToFileURL } from 'node:url';
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import type { EventHandler } from './bus-types.ts';
import type { ModuleDefinition, ModuleInstance } from './module.ts';
import { createWorkerChannel } from './worker-channel.ts';
import { createWorkerContext } from './worker-context.ts';
import {
  type HostMessage,
  serializeError,
  setupHandlerKey,
  subscriptionKey,
  type WorkerStartData,
} from './worker-protocol.ts';

const start = workerData as WorkerStartData;
const port = parentPort as MessagePort;
const channel = createWorkerChannel({
  moduleName: start.name,
  port,
  syncPort: start.syncPort,
  syncSignal: start.syncSignal,
  syncTimeoutMs: start.syncTimeoutMs,
});

const handlers = new Map<string, EventHandler>();
let nextSubscription = 1;
const context = createWorkerContext({
  name: start.name,
  config: start.config,
  missingOptionalDependencies: start.missingOptionalDependencies,
  services: start.services,
  channel,
  addSubscription(handler) {
    const id = nextSubscription++;
    handlers.set(subscriptionKey(id), handler);
    return id;
  },
  removeSubscription(id) {
    handlers.delete(subscriptionKey(id));
  },
});

let instance: ModuleInstance | undefined;

/** Runs `work` and sends what it returned (or threw) as the reply to `id`. */
async function answer(id: number, what: string, work: () => unknown): Promise<void> {
  let value: unknown;
  try {
    value = await work();
  } catch (error) {
    port.postMessage({ kind: 'reply', id, ok: false, error: serializeError(error) });
    return;
  }
  try {
    channel.send({ kind: 'reply', id, ok: true, value }, what);
  } catch (error) {
    port.postMessage({ kind: 'reply', id, ok: false, error: serializeError(error) });
  }
}

port.on('message', (message: HostMessage) => {
  if (channel.receive(message)) return;
  switch (message.kind) {
    case 'deliver': {
      const handler = handlers.get(message.handler);
      void answer(message.id, `the reply of its handler of "${message.handler}"`, () => {
        if (handler === undefined) return undefined; // unsubscribed while the event was on its way
        return handler(message.event as never);
      });
      break;
    }
    case 'health':
      void answer(message.id, 'the health report', () => instance?.health?.() ?? { healthy: true });
      break;
    case 'dispose':
      void answer(message.id, 'dispose', () => instance?.dispose?.());
      break;
  }
});

try {
  const imported = (await import(pathToFileURL(start.file).href)) as {
    default: ModuleDefinition<never, unknown>;
  };
  instance = await imported.default.setup(context as never);
  const declared = [];
  for (const [pattern, entry] of Object.entries(instance.handlers ?? {})) {
    if (entry === undefined) continue;
    const { handler, mode } = typeof entry === 'function' ? { handler: entry, mode: 'work' as const } : entry;
    handlers.set(setupHandlerKey(pattern), handler as EventHandler);
    declared.push({ pattern, mode: mode ?? 'work' });
  }
  port.postMessage({
    kind: 'ready',
    handlers: declared,
    hasApi: instance.api !== undefined,
    hasHealth: instance.health !== undefined,
    hasDispose: instance.dispose !== undefined,
  });
} catch (error) {
  port.postMessage({ kind: 'setup-failed', error: serializeError(error) });
}
