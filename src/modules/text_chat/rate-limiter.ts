/**
 * A sliding-window rate limiter kept in memory: at most `limit` events per key in any `windowMs`. Exact
 * (it keeps each event's time, at most `limit` per key), which for a few dozen messages a minute costs
 * little. State is per process: with several nodes each node counts the messages it handles.
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

  return {
    take(key) {
      const time = now();
      sweep(time);
      let times = events.get(key);
      if (times === undefined) {
        times = [];
        events.set(key, times);
      }
      // Drop the events that left the window; the array is in time order.
      let expired = 0;
      while (expired < times.length && times[expired]! <= time - windowMs) expired++;
      if (expired > 0) times.splice(0, expired);
      if (times.length >= limit) {
        return { allowed: false, retryAfterMs: times[0]! + windowMs - time };
      }
      times.push(time);
      return { allowed: true };
    },
    size: () => events.size,
  };
}
