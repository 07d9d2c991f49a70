/**
 * The worker's end of an isolated module's link to the main thread: calls that answer later, calls that
 * stream, and calls that must answer at once (`requireCapability` and `on` are synchronous in the module
 * API, so the worker blocks on a shared flag until the main thread has answered on a port of their own).
 */

import { type MessagePort, receiveMessageOnPort } from 'node:worker_threads';
import { PlatformError } from './errors.ts';
import {
  type HostMessage,
  type LogLevel,
  postCloned,
  type ReplyMessage,
  reviveError,
  type WorkerMessage,
} from './worker-protocol.ts';

export interface WorkerChannelOptions {
  moduleName: string;
  port: MessagePort;
  syncPort: MessagePort;
  syncSignal: Int32Array;
  syncTimeoutMs: number;
}

/** The worker's side of the link to the main thread. */
export interface WorkerChannel {
  /** Calls `target` on the main thread; `signal` (of argument `signalArg`) aborts it there too. */
  call(target: string, args: unknown[], signalArg?: number): Promise<unknown>;
  /** Calls a streaming `target`; each part crosses as it comes. */
  stream(target: string, args: unknown[], signalArg?: number): AsyncGenerator<unknown, void, undefined>;
  /** Calls `target` and blocks until it answered (for the synchronous parts of the module API). */
  callSync(target: string, args: unknown[]): unknown;
  log(level: LogLevel, bindings: Record<string, unknown>, object: unknown, message?: string): void;
  send(message: WorkerMessage, what: string): void;
  /** Takes a reply or stream part the main thread sent; false when the message is not one. */
  receive(message: HostMessage): boolean;
}

interface PendingCall {
  resolve(value: unknown): void;
  reject(error: Error): void;
  /** Set for streams: each part as it comes. */
  onPart?(part: unknown): void;
}

/** Builds the worker's channel over its parent port. */
export function createWorkerChannel(options: WorkerChannelOptions): WorkerChannel {
  const { moduleName, port } = options;
  const pending = new Map<number, PendingCall>();
  let nextId = 1;

  function send(message: WorkerMessage, what: string): void {
    postCloned(port, message, moduleName, what);
  }

  /** Moves an AbortSignal out of the arguments (signals do not clone) and forwards its abort instead. */
  function detachSignal(id: number, args: unknown[], signalArg: number | undefined): unknown[] {
    if (signalArg === undefined) return args;
    const options = args[signalArg] as { signal?: AbortSignal } | undefined;
    if (options?.signal === undefined) return args;
    const { signal, ...rest } = options;
    signal.addEventListener('abort', () => port.postMessage({ kind: 'abort', id }), { once: true });
    const copy = [...args];
    copy[signalArg] = rest;
    return copy;
  }

  function start(kind: 'call' | 'stream', target: string, args: unknown[], signalArg?: number) {
    const id = nextId++;
    const sent = detachSignal(id, args, signalArg);
    const hasSignal = sent !== args;
    send(
      { kind, id, target, args: sent, ...(hasSignal ? { signalArg: signalArg as number } : {}) },
      `the arguments of ${target}`,
    );
    return id;
  }

  return {
    send,
    call(target, args, signalArg) {
      return new Promise((resolve, reject) => {
        const id = start('call', target, args, signalArg);
        pending.set(id, { resolve, reject });
      });
    },
    async *stream(target, args, signalArg) {
      const parts: unknown[] = [];
      let wake: (() => void) | undefined;
      let finished = false;
      let failure: Error | undefined;
      const id = start('stream', target, args, signalArg);
      pending.set(id, {
        onPart(part) {
          parts.push(part);
          wake?.();
        },
        resolve() {
          finished = true;
          wake?.();
        },
        reject(error) {
          failure = error;
          finished = true;
          wake?.();
        },
      });
      try {
        while (true) {
          if (parts.length > 0) {
            yield parts.shift();
            continue;
          }
          if (failure !== undefined) throw failure;
          if (finished) return;
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
      } finally {
        // The consumer stopped early: the main thread stops the stream it is reading.
        if (!finished) port.postMessage({ kind: 'abort', id });
        pending.delete(id);
      }
    },
    callSync(target, args) {
      send({ kind: 'sync', target, args }, `the arguments of ${target}`);
      const outcome = Atomics.wait(options.syncSignal, 0, 0, options.syncTimeoutMs);
      Atomics.store(options.syncSignal, 0, 0);
      const received = receiveMessageOnPort(options.syncPort);
      if (outcome === 'timed-out' || received === undefined) {
        throw new PlatformError(
          'CHAT_ERR_MODULE_WORKER_FAILED',
          `isolated module "${moduleName}": the main thread did not answer ${target} within ${options.syncTimeoutMs} ms`,
          { details: { module: moduleName, target } },
        );
      }
      const reply = received.message as ReplyMessage;
      if (!reply.ok) throw reviveError(reply.error);
      return reply.value;
    },
    log(level, bindings, object, message) {
      const entry: WorkerMessage = {
        kind: 'log',
        level,
        bindings,
        object,
        ...(message === undefined ? {} : { message }),
      };
      try {
        port.postMessage(entry);
      } catch {
        // A log line with something uncloneable in it still says what it meant to.
        port.postMessage({ ...entry, object: String(object) });
      }
    },
    receive(message) {
      if (message.kind === 'stream-part') {
        pending.get(message.id)?.onPart?.(message.part);
        return true;
      }
      if (message.kind !== 'reply') return false;
      const call = pending.get(message.id);
      if (call === undefined) return true;
      if (call.onPart === undefined) pending.delete(message.id);
      if (message.ok) call.resolve(message.value);
      else call.reject(reviveError(message.error));
      return true;
    },
  };
}
