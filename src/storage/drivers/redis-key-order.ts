/**
 * Call order per key for the Redis driver, which pipelines every command over one connection. Redis
 * applies commands in the order they are sent, so an operation is sent at once — a read on a quiet key
 * costs one Map lookup here — unless something before it on the same key has to come back first:
 *
 * - an append while an append batch of the key is in flight waits, with every append that arrives
 *   meanwhile, and they go out together as one batch once the batch in flight returns (group commit:
 *   32 concurrent appends to one key take two or three commands, not 32);
 * - anything after a write in flight waits for it: a write may have to send a second command (to create
 *   the key), which must reach Redis before what was called after the write;
 * - anything after an operation that waits, waits too, so the key's call order holds.
 *
 * Unlike key-lanes.ts (flatfile, S3: one operation per key at a time), operations that need not wait are
 * pipelined. Errors pass through unchanged; the driver maps them.
 */

type Send = () => Promise<unknown>;

const ignore = () => undefined;

interface Settle {
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

type Task = (Settle & { kind: 'plain' | 'write'; send: Send }) | (Settle & { kind: 'append'; data: Buffer });

interface KeyState {
  /** Operations not sent yet, in call order. */
  waiting: Task[];
  appendInFlight: boolean;
  writeInFlight: boolean;
  /** Writes not returned yet (sent or waiting), and the last of them (they return in call order). */
  writesPending: number;
  lastWrite: Promise<unknown> | undefined;
}

export interface RedisKeyOrder {
  /** Sends `send` (one command, e.g. a read) now, or once the key's earlier operations allow. */
  plain<T>(key: string, send: () => Promise<T>): Promise<T>;
  /** Like `plain`, and the key's later operations wait until `send` has returned (it may send twice). */
  write<T>(key: string, send: () => Promise<T>): Promise<T>;
  /** Appends `data`: sent now, or copied and batched with the appends waiting beside it. */
  append(key: string, data: Buffer): Promise<void>;
  /** Settles once every write issued so far on a key starting with `prefix` has returned; or undefined. */
  writesUnder(prefix: string): Promise<unknown> | undefined;
}

/** `appendBatch` sends the chunks (in order) to the end of `key` as one command. */
export function createRedisKeyOrder(
  appendBatch: (key: string, chunks: Buffer[]) => Promise<unknown>,
): RedisKeyOrder {
  const states = new Map<string, KeyState>();

  // On completion the key's next operations are sent before the caller hears back, so a caller that
  // issues its next operation at once finds the key free rather than queues (and copies) behind it. The
  // common case — nothing waiting — adds no promise of its own: the send's promise is passed on.
  function writeDone(key: string, state: KeyState): void {
    state.writeInFlight = false;
    state.writesPending -= 1;
    flush(key, state);
  }

  function sendWrite<T>(key: string, state: KeyState, send: () => Promise<T>): Promise<T> {
    state.writeInFlight = true;
    return send().then(
      (value) => {
        writeDone(key, state);
        return value;
      },
      (error: unknown) => {
        writeDone(key, state);
        throw error;
      },
    );
  }

  function appendDone(key: string, state: KeyState): void {
    state.appendInFlight = false;
    flush(key, state);
  }

  function sendAppends(key: string, state: KeyState, chunks: Buffer[]): Promise<void> {
    state.appendInFlight = true;
    return appendBatch(key, chunks).then(
      () => appendDone(key, state),
      (error: unknown) => {
        appendDone(key, state);
        throw error;
      },
    );
  }

  /** Sends what may go now, in order; forgets the key once nothing is waiting or in flight. */
  function flush(key: string, state: KeyState): void {
    const { waiting } = state;
    while (waiting.length > 0 && !state.writeInFlight) {
      const head = waiting[0]!;
      if (head.kind === 'plain') {
        waiting.shift();
        head.send().then(head.resolve, head.reject);
      } else if (head.kind === 'write') {
        waiting.shift();
        sendWrite(key, state, head.send).then(head.resolve, head.reject);
      } else {
        if (state.appendInFlight) break;
        let count = 1;
        while (count < waiting.length && waiting[count]!.kind === 'append') count += 1;
        const batch = waiting.splice(0, count) as (Settle & { data: Buffer })[];
        sendAppends(
          key,
          state,
          batch.map((task) => task.data),
        ).then(
          () => {
            for (const task of batch) task.resolve(undefined);
          },
          (error: unknown) => {
            for (const task of batch) task.reject(error);
          },
        );
      }
    }
    if (waiting.length === 0 && !state.appendInFlight && !state.writeInFlight) states.delete(key);
  }

  function stateOf(key: string): KeyState {
    let state = states.get(key);
    if (state === undefined) {
      state = {
        waiting: [],
        appendInFlight: false,
        writeInFlight: false,
        writesPending: 0,
        lastWrite: undefined,
      };
      states.set(key, state);
    }
    return state;
  }

  return {
    plain<T>(key: string, send: () => Promise<T>): Promise<T> {
      const state = states.get(key);
      if (state === undefined || (state.waiting.length === 0 && !state.writeInFlight)) return send();
      return new Promise<T>((resolve, reject) => {
        state.waiting.push({ kind: 'plain', send, resolve: resolve as (value: unknown) => void, reject });
      });
    },
    write<T>(key: string, send: () => Promise<T>): Promise<T> {
      const state = stateOf(key);
      const result =
        state.waiting.length === 0 && !state.writeInFlight
          ? sendWrite(key, state, send)
          : new Promise<T>((resolve, reject) => {
              state.waiting.push({
                kind: 'write',
                send,
                resolve: resolve as (value: unknown) => void,
                reject,
              });
            });
      state.writesPending += 1;
      state.lastWrite = result;
      return result;
    },
    append(key: string, data: Buffer): Promise<void> {
      const state = stateOf(key);
      if (state.waiting.length === 0 && !state.writeInFlight && !state.appendInFlight) {
        return sendAppends(key, state, [data]);
      }
      return new Promise<void>((resolve, reject) => {
        // It leaves later, after the caller has its array back: keep a copy of the bytes.
        const copy = Buffer.from(data);
        state.waiting.push({
          kind: 'append',
          data: copy,
          resolve: resolve as (value: unknown) => void,
          reject,
        });
      });
    },
    writesUnder(prefix: string): Promise<unknown> | undefined {
      const pending: Promise<unknown>[] = [];
      for (const [key, state] of states) {
        if (state.writesPending > 0 && key.startsWith(prefix) && state.lastWrite !== undefined) {
          pending.push(state.lastWrite.then(ignore, ignore));
        }
      }
      return pending.length === 0 ? undefined : Promise.all(pending);
    },
  };
}
