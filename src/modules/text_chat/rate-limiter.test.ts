import { describe, expect, it } from 'vitest';
import { createRateLimiter } from './rate-limiter.ts';

describe('createRateLimiter', () => {
  it('allows `limit` events per sliding window and says when the next one is allowed', () => {
    let time = 0;
    const limiter = createRateLimiter({ limit: 3, windowMs: 60_000, now: () => time });
    for (const at of [0, 10_000, 20_000]) {
      time = at;
      expect(limiter.take('u1')).toEqual({ allowed: true });
    }
    time = 30_000;
    expect(limiter.take('u1')).toEqual({ allowed: false, retryAfterMs: 30_000 });
    // The first event leaves the window at 60 s: one slot frees up, not three (a sliding window, not a reset).
    time = 60_001;
    expect(limiter.take('u1')).toEqual({ allowed: true });
    expect(limiter.take('u1')).toEqual({ allowed: false, retryAfterMs: 9_999 });
  });

  it('counts events allowed elsewhere, in time order, and ignores those already out of the window', () => {
    let time = 100_000;
    const limiter = createRateLimiter({ limit: 3, windowMs: 60_000, now: () => time });
    limiter.note('u1', 90_000);
    limiter.note('u1', 50_000); // Left the window at 110 s… not yet: counts until then.
    limiter.note('u1', 30_000); // Already out of the window.
    expect(limiter.take('u1')).toEqual({ allowed: true });
    // Three in the window (50 s, 90 s, 100 s): the next is allowed when the 50 s one leaves it.
    expect(limiter.take('u1')).toEqual({ allowed: false, retryAfterMs: 10_000 });
    // Arriving late and out of order, another node's event still counts where it belongs.
    time = 110_001;
    limiter.note('u1', 95_000);
    expect(limiter.take('u1')).toEqual({ allowed: false, retryAfterMs: 39_999 });
    expect(limiter.take('u2')).toEqual({ allowed: true });
  });

  it('counts each user separately', () => {
    const limiter = createRateLimiter({ limit: 1, windowMs: 1000, now: () => 0 });
    expect(limiter.take('u1').allowed).toBe(true);
    expect(limiter.take('u1').allowed).toBe(false);
    expect(limiter.take('u2').allowed).toBe(true);
  });

  it('does not count rejected attempts', () => {
    let time = 0;
    const limiter = createRateLimiter({ limit: 1, windowMs: 1000, now: () => time });
    limiter.take('u1');
    time = 500;
    limiter.take('u1');
    time = 1001;
    expect(limiter.take('u1').allowed).toBe(true);
  });

  it('forgets idle users', () => {
    let time = 0;
    const limiter = createRateLimiter({ limit: 5, windowMs: 1000, now: () => time });
    for (let user = 0; user < 100; user++) limiter.take(`user-${user}`);
    expect(limiter.size()).toBe(100);
    time = 5000;
    limiter.take('active');
    expect(limiter.size()).toBe(1);
  });
});
