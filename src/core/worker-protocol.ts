/**
 * The messages between an isolated module's worker and its host on the main thread (worker-host.ts,
 * worker-entry.ts). Everything here crosses a MessagePort, so it is structured-cloned: functions, class
 * identity and AbortSignals do not cross, which is why errors travel as JSON and signals as `abort`.
 */

import type { MessagePort } from 'node:worker_threads';
import { errorFromJSON, isPlatformError, PlatformError, type PlatformErrorJSON } from './errors.ts';

/** Methods of a shared service (`ctx.llm`, …) a worker may call, by how they return. */
export interface WorkerServiceMethods {
  /** Methods returning a promise (`generate`). */
  call?: string[];
  /** Methods returning an async iterable (`stream`): its parts cross one message each. */
  stream?: string[];
  /**
   * Methods handing each part of a stream to a callback (`streamTo(request, onPart)`), by the stream method
   * the worker reads for them: the callback cannot cross, so it is called in the worker.
   */
  streamTo?: Record<string, string>;
  /** Methods returning a value at once (`defaultModelName`): the worker blocks until the answer comes. */
  sync?: string[];
}

/** What a worker is started with (its `workerData`). */
export interface WorkerStartData {
  name: string;
  /** The module's index file, imported by the worker. */
  file: string;
  config: Readonly<Record<string, unknown>>;
  missingOptionalDependencies: readonly string[];
  services: Record<string, WorkerServiceMethods>;
  /** The port synchronous calls are answered on, and the flag the main thread raises when it did. */
  syncPort: MessagePort;
  syncSignal: Int32Array;
  /** How long a synchronous call may block the worker before it fails. */
  syncTimeoutMs: number;
}

/** An error as it crosses the boundary. */
export type SerializedError =
  | { platform: PlatformErrorJSON }
  | { name: string; message: string; stack?: string | undefined };

/** A reply to a call (either direction) or the final message of a stream. */
export type ReplyMessage =
  | { kind: 'reply'; id: number; ok: true; value: unknown }
  | { kind: 'reply'; id: number; ok: false; error: SerializedError };

/** One handler of the module's setup, as the worker reports it. */
export interface DeclaredHandler {
  pattern: string;
  mode: 'work' | 'local';
}

/** Worker → main. */
export type WorkerMessage =
  | { kind: 'ready'; handlers: DeclaredHandler[]; hasApi: boolean; hasHealth: boolean; hasDispose: boolean }
  | { kind: 'setup-failed'; error: SerializedError }
  | {
      kind: 'call' | 'stream';
      id: number;
      target: string;
      args: unknown[];
      /** Index of the argument whose `signal` the worker removed; the host gives it a signal of its own. */
      signalArg?: number;
    }
  | { kind: 'abort'; id: number }
  | { kind: 'sync'; target: string; args: unknown[] }
  | { kind: 'log'; level: LogLevel; bindings: Record<string, unknown>; object: unknown; message?: string }
  | ReplyMessage;

/** Main → worker. */
export type HostMessage =
  | { kind: 'deliver'; id: number; handler: string; event: unknown }
  | { kind: 'health'; id: number }
  | { kind: 'dispose'; id: number }
  | { kind: 'stream-part'; id: number; part: unknown }
  | ReplyMessage;

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** The key under which a handler of the module's setup is delivered to. */
export function setupHandlerKey(pattern: string): string {
  return `setup:${pattern}`;
}

/** The key under which a subscription the module made with `ctx.on` is delivered to. */
export function subscriptionKey(id: number): string {
  return `on:${id}`;
}

/** An error ready to cross: PlatformErrors keep their code, others their name and message. */
export function serializeError(error: unknown): SerializedError {
  if (isPlatformError(error)) return { platform: error.toJSON() };
  if (error instanceof Error) return { name: error.name, message: error.message, stack: error.stack };
  return { name: 'Error', message: String(error) };
}

/** The error a SerializedError stands for (a PlatformError of the same class where it was one). */
export function reviveError(serialized: SerializedError): Error {
  if ('platform' in serialized) return errorFromJSON(serialized.platform);
  const error = new Error(serialized.message);
  error.name = serialized.name;
  if (serialized.stack !== undefined) error.stack = serialized.stack;
  return error;
}

/**
 * Posts `message`, turning a value that cannot be structured-cloned (a function, a class instance with
 * private state, a socket) into a CHAT_ERR_MODULE_ISOLATION error that names what was being sent.
 */
export function postCloned(
  port: { postMessage(message: unknown): void },
  message: unknown,
  moduleName: string,
  what: string,
): void {
  try {
    port.postMessage(message);
  } catch (error) {
    if ((error as Error).name !== 'DataCloneError') throw error;
    throw new PlatformError(
      'CHAT_ERR_MODULE_ISOLATION',
      `${what} of isolated module "${moduleName}" cannot cross its worker boundary: only structured-clone-able values can (${(error as Error).message})`,
      { details: { module: moduleName, what } },
    );
  }
}
