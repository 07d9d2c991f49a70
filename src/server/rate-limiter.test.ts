import { describe, expect, it } from 'vitest';
import { createRateLimiter } from './rate-limiter.ts';

describe('createRateLimiter', () => {
  it('allows a burst of perMinute calls per key, then says when the next one is free', () => {
    let now = 0;
    const limiter = createRateLimiter({ perMinute: 3, now: () => now });
    for (let call = 0; call < 3; call++) expect(limiter.take('alice')).toEqual({ allowed: true });
    // One token comes back every 20 s.
    expect(limiter.take('alice')).toEqual({ allowed: false, retryAfterSeconds: 20 });
    expect(limiter.take('bob')).toEqual({ allowed: true });
    now = 15_000;
    expect(limiter.take('alice')).toEqual({ allowed: false, retryAfterSeconds: 5 });
    now = 20_000;
    expect(limiter.take('alice')).toEqual({ allowed: true });
    expect(limiter.take('alice').allowed).toBe(false);
  });

  it('never refills beyond the burst, and 0 means no limit', () => {
    let now = 0;
    const limiter = createRateLimiter({ perMinute: 2, now: () => now });
    now = 10 * 60_000;
    expect(limiter.take('alice').allowed).toBe(true);
    expect(limiter.take('alice').allowed).toBe(true);
    expect(limiter.take('alice').allowed).toBe(false);
    const unlimited = createRateLimiter({ perMinute: 0 });
    for (let call = 0; call < 1000; call++) expect(unlimited.take('alice').allowed).toBe(true);
  });

  it('takes out the calls other nodes allowed, owing at most a minute of them', () => {
    let now = 0;
    const limiter = createRateLimiter({ perMinute: 3, now: () => now });
    limiter.note('alice');
    limiter.note('alice');
    expect(limiter.take('alice')).toEqual({ allowed: true });
    expect(limiter.take('alice')).toEqual({ allowed: false, retryAfterSeconds: 20 });
    // Far more let through elsewhere than allowed: the debt stops at a minute's worth (-3 tokens).
    for (let call = 0; call < 100; call++) limiter.note('alice');
    expect(limiter.take('alice')).toEqual({ allowed: false, retryAfterSeconds: 80 });
    now = 80_000;
    expect(limiter.take('alice')).toEqual({ allowed: true });
    expect(limiter.take('bob')).toEqual({ allowed: true });
  });
});
