/**
 * Timeouts of many pending operations on one timer. A `setTimeout` per request (create, insert, clear)
 * cost about a third of an in-process request → reply; here adding and removing a deadline is a Set
 * operation, and the one timer is re-armed only when an earlier deadline arrives or the timer fires. The
 * bus's requests use it, and so does a chat turn for its own three (its deadline, the window its user
 * message waits for the reply, the model call's idle deadline): three timers a turn were 3–7 % of its CPU.
 */

/** One pending operation's deadline. */
export interface Deadline {
  readonly at: number;
}

/** A set of deadlines sharing one timer. */
export interface Deadlines {
  /** Calls `expire` once `timeoutMs` have passed, unless `cancel` was called first. */
  add(timeoutMs: number, expire: () => void): Deadline;
  /** Forgets a deadline (its operation finished); harmless when it already expired. */
  cancel(deadline: Deadline): void;
}

interface Entry extends Deadline {
  expire: () => void;
}

const EXPIRED_OR_CANCELLED = () => {};

/** Creates a deadline set. The timer keeps the process alive only while some deadline is pending. */
export function createDeadlines(): Deadlines {
  const pending = new Set<Entry>();
  let timer: NodeJS.Timeout | undefined;
  let armedAt = Number.POSITIVE_INFINITY;

  function arm(at: number): void {
    if (timer !== undefined) clearTimeout(timer);
    armedAt = at;
    timer = setTimeout(fire, Math.max(0, at - Date.now()));
  }

  function fire(): void {
    timer = undefined;
    armedAt = Number.POSITIVE_INFINITY;
    // Timers run on the event loop's cached clock and may wake a hair before Date.now() reaches `at`.
    const now = Date.now() + 1;
    let next = Number.POSITIVE_INFINITY;
    const expired: Entry[] = [];
    for (const entry of pending) {
      if (entry.at <= now) expired.push(entry);
      else if (entry.at < next) next = entry.at;
    }
    for (const entry of expired) pending.delete(entry);
    if (next !== Number.POSITIVE_INFINITY) arm(next);
    for (const entry of expired) {
      const { expire } = entry;
      entry.expire = EXPIRED_OR_CANCELLED;
      expire();
    }
  }

  return {
    add(timeoutMs, expire) {
      const entry: Entry = { at: Date.now() + timeoutMs, expire };
      pending.add(entry);
      if (entry.at < armedAt) arm(entry.at);
      else if (pending.size === 1) timer?.ref();
      return entry;
    },
    cancel(deadline) {
      const entry = deadline as Entry;
      // The entry lets go of its operation: a Set keeps the entries of the tables it outgrew until a full
      // collection, and this one's operation (a chat turn, all its closure reaches) must not live on with it.
      entry.expire = EXPIRED_OR_CANCELLED;
      if (pending.delete(entry) && pending.size === 0) timer?.unref();
    },
  };
}
