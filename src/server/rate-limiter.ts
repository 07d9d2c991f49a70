/**
 * A token bucket per key (per user): `perMinute` calls in a burst, refilled continuously at
 * `perMinute` a minute. Calls allowed by other nodes are taken out with `note`, so the limit can hold
 * across nodes (routes/openai.ts tells them).
 */

/** The verdict on one call. */
export type RateVerdict = { allowed: true } | { allowed: false; retryAfterSeconds: number };

/** Counts calls per key. */
export interface RateLimiter {
  /** Takes one call's token for `key`, or says how long until one is free. */
  take(key: string): RateVerdict;
  /** Takes a token for a call another node allowed (the bucket may go below zero: later calls wait). */
  note(key: string): void;
}

export interface RateLimiterOptions {
  /** Calls a minute per key; 0 means no limit. */
  perMinute: number;
  /** The clock in milliseconds (tests inject one). */
  now?: () => number;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

// Full buckets carry no information; they are dropped once this many keys are held.
const SWEEP_ABOVE = 10_000;

/** Builds the limiter. */
export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const { perMinute } = options;
  const now = options.now ?? Date.now;
  const perMillisecond = perMinute / 60_000;
  const buckets = new Map<string, Bucket>();

  function refill(bucket: Bucket, at: number): void {
    bucket.tokens = Math.min(perMinute, bucket.tokens + (at - bucket.updatedAt) * perMillisecond);
    bucket.updatedAt = at;
  }

  function sweep(at: number): void {
    for (const [key, bucket] of buckets) {
      refill(bucket, at);
      if (bucket.tokens >= perMinute) buckets.delete(key);
    }
  }

  /** The key's bucket, refilled up to now. */
  function bucketOf(key: string, at: number): Bucket {
    let bucket = buckets.get(key);
    if (bucket === undefined) {
      if (buckets.size >= SWEEP_ABOVE) sweep(at);
      bucket = { tokens: perMinute, updatedAt: at };
      buckets.set(key, bucket);
    } else {
      refill(bucket, at);
    }
    return bucket;
  }

  return {
    note(key) {
      if (perMinute <= 0) return;
      const bucket = bucketOf(key, now());
      // Never owe more than a minute's worth, whatever the other nodes let through.
      bucket.tokens = Math.max(bucket.tokens - 1, -perMinute);
    },
    take(key) {
      if (perMinute <= 0) return { allowed: true };
      const bucket = bucketOf(key, now());
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return { allowed: true };
      }
      return {
        allowed: false,
        retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / perMillisecond / 1000)),
      };
    },
  };
}
