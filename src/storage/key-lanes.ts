/**
 * Per-key lanes, shared by the drivers that need them (flatfile, S3): operations on one key run one at a
 * time in call order, and appends that arrive while the key is busy go out together as one batch (group
 * commit). The driver supplies how a batch is stored and how an error is reported; this file only queues.
 */

import type { PlatformError } from '../core/errors.ts';
import { promiseOf } from './promise-of.ts';

export interface KeyLanesOptions {
  /** Stores `chunks` (in order) at the end of `key`: one call per batch of queued appends. */
  appendBatch: (key: string, chunks: Uint8Array[]) => Promise<void>;
  /** Turns an error of `operation` on `key` into what the caller sees (each driver's own wording). */
  failure: (operation: string, key: string, error: unknown) => PlatformError;
}

/** The lanes of one storage. */
export interface KeyLanes {
  /** Queues an append of `data` (not copied: pass a private copy); resolves once its batch is stored. */
  append(key: string, data: Uint8Array): Promise<void>;
  /** Runs `run` alone on `key`, after everything queued before it; errors pass through `failure`. */
  exclusive<T>(key: string, operation: string, run: () => Promise<T>): Promise<T>;
  /** Resolves once no lane has queued or running work. */
  whenIdle(): Promise<void>;
}

type Task =
  | { kind: 'append'; data: Uint8Array; resolve: () => void; reject: (error: unknown) => void }
  | {
      kind: 'exclusive';
      run: () => Promise<unknown>;
      resolve: (value: unknown) => void;
      reject: (error: unknown) => void;
    };

/** A key's queue: the tasks waiting, the head of which (or its batch) may be running. */
interface Lane {
  tasks: Task[];
}

/** Creates the lanes of one storage around its driver's batch writer and error wrapper. */
export function createKeyLanes(options: KeyLanesOptions): KeyLanes {
  const { appendBatch, failure } = options;
  const lanes = new Map<string, Lane>();
  // Waiting for every lane to end (whenIdle): told when the last one does.
  let idleWaiters: (() => void)[] = [];

  function forget(key: string): void {
    lanes.delete(key);
    if (lanes.size > 0 || idleWaiters.length === 0) return;
    const waiters = idleWaiters;
    idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /**
   * Runs the lane's head: an exclusive task alone, or every append queued before the next exclusive one
   * as one batch; then the next, from the settled promise's callback. Callbacks rather than an async loop:
   * each append of a chat turn went through this, and an async function's promises add up.
   */
  function runNext(key: string, lane: Lane): void {
    const head = lane.tasks[0];
    if (head === undefined) {
      forget(key);
      return;
    }
    const next = () => runNext(key, lane);
    if (head.kind === 'exclusive') {
      lane.tasks.shift();
      promiseOf(head.run).then(
        (value) => {
          head.resolve(value);
          next();
        },
        (error: unknown) => {
          head.reject(error);
          next();
        },
      );
      return;
    }
    let count = 0;
    while (count < lane.tasks.length && lane.tasks[count]!.kind === 'append') count += 1;
    const batch = lane.tasks.splice(0, count) as Extract<Task, { kind: 'append' }>[];
    const chunks = batch.map((task) => task.data);
    promiseOf(() => appendBatch(key, chunks)).then(
      () => {
        for (const task of batch) task.resolve();
        next();
      },
      (error: unknown) => {
        const wrapped = failure('append', key, error);
        for (const task of batch) task.reject(wrapped);
        next();
      },
    );
  }

  function enqueue(key: string, task: Task): void {
    const existing = lanes.get(key);
    if (existing !== undefined) {
      existing.tasks.push(task);
      return;
    }
    const lane: Lane = { tasks: [task] };
    lanes.set(key, lane);
    // On the next microtask, so appends issued in the same tick join the first batch.
    queueMicrotask(() => runNext(key, lane));
  }

  return {
    append(key, data) {
      return new Promise<void>((resolve, reject) => {
        enqueue(key, { kind: 'append', data, resolve, reject });
      });
    },
    exclusive<T>(key: string, operation: string, run: () => Promise<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        enqueue(key, {
          kind: 'exclusive',
          run,
          resolve: resolve as (value: unknown) => void,
          reject: (error) => reject(failure(operation, key, error)),
        });
      });
    },
    async whenIdle() {
      // Loop: work queued while we waited (a lane opened by a finishing task) must finish too.
      while (lanes.size > 0) await new Promise<void>((resolve) => idleWaiters.push(resolve));
    },
  };
}
