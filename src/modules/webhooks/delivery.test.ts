import { describe, expect, it } from 'vitest';
import { backoffMs } from './delivery.ts';

const retry = { max_attempts: 6, initial_delay_ms: 1000, max_delay_ms: 10_000 };

describe('backoffMs', () => {
  it('doubles from the initial delay within ±20 %, up to the cap', () => {
    for (const [attempt, base] of [
      [1, 1000],
      [2, 2000],
      [3, 4000],
      [5, 10_000],
      [9, 10_000],
    ] as const) {
      const ms = backoffMs(attempt, retry);
      expect(ms).toBeGreaterThanOrEqual(base * 0.8);
      expect(ms).toBeLessThanOrEqual(base * 1.2);
    }
  });

  it('waits what the receiver’s Retry-After says, capped', () => {
    expect(backoffMs(1, retry, 3)).toBe(3000);
    expect(backoffMs(1, retry, 3600)).toBe(10_000);
  });
});
