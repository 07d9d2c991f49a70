/**
 * A sliding-window rate limiter kept in memory: at most `limit` events per key in any `windowMs`. Exact
 * (it keeps each event's time, at most `limit` per key), which for a few dozen messages a minute costs
 * little. State is per process; events counted elsewhere (other nodes) are added with `note`.
 */

/** The verdict of `take`. */
export type RateDecision = { allowed: true } | { allowed: false; retryAfterMs: number };

export interface RateLimiterOptions {
  limit: number;
  windowMs: number;
  now?: () => number;
}

export interface RateLimiter {
  /** Counts one event for `key` when allowed; otherwise says how long until one would be. */
  take(key: string): RateDecision;
  /** Counts an event for `key` that was allowed elsewhere at `time` (ms), limit or not. */
  note(key: string, time: number): void;
  /** Keys currently tracked (for tests and metrics). */
  size(): number;
}

/** Creates a sliding-window limiter. */
export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const { limit, windowMs } = options;
  const now = options.now ?? Date.now;
  const events = new Map<string, number[]>();
  let lastSweep = now();

  /** Forgets keys whose events all left the window, so idle users cost nothing. */
  function sweep(time: number): void {
    if (time - lastSweep < windowMs) return;
    lastSweep = time;
    for (const [key, times] of events) {
      if (times[times.length - 1]! <= time - windowMs) events.delete(key);
    }
  }

  /** The key's event times still in the window at `time`, oldest first. */
  function timesOf(key: string, time: number): number[] {
    let times = events.get(key);
    if (times === undefined) {
      times = [];
      events.set(key, times);
    }
    let expired = 0;
    while (expired < times.length && times[expired]! <= time - windowMs) expired++;
    if (expired > 0) times.splice(0, expired);
    return times;
  }

  return {
    take(key) {
      const time = now();
      sweep(time);
      const times = timesOf(key, time);
      if (times.length >= limit) {
        return { allowed: false, retryAfterMs: times[0]! + windowMs - time };
      }
      times.push(time);
      return { allowed: true };
    },
    note(key, time) {
      const current = now();
      if (time <= current - windowMs) return;
      sweep(current);
      const times = timesOf(key, current);
      // In time order (events from several nodes may arrive out of it); only the newest `limit` matter.
      let position = times.length;
      while (position > 0 && times[position - 1]! > time) position--;
      times.splice(position, 0, time);
      if (times.length > limit) times.splice(0, times.length - limit);
    },
    size: () => events.size,
  };
}
