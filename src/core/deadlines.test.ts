import { describe, expect, it } from 'vitest';
import { createDeadlines } from './deadlines.ts';

const sleep = (milliseconds: number) => new Promise((resolve) => setTimeout(resolve, milliseconds));

describe('createDeadlines', () => {
  it('expires each deadline once its time passed, earliest first, and never a cancelled one', async () => {
    const deadlines = createDeadlines();
    const expired: string[] = [];
    deadlines.add(40, () => expired.push('late'));
    const cancelled = deadlines.add(10, () => expired.push('cancelled'));
    deadlines.add(5, () => expired.push('early')); // earlier than the armed timer: re-arms it
    deadlines.cancel(cancelled);
    await sleep(20);
    expect(expired).toEqual(['early']);
    await sleep(60);
    expect(expired).toEqual(['early', 'late']);
  });

  it('ignores cancelling a deadline that already expired', async () => {
    const deadlines = createDeadlines();
    let calls = 0;
    const deadline = deadlines.add(1, () => calls++);
    await sleep(20);
    deadlines.cancel(deadline);
    deadlines.add(1, () => calls++);
    await sleep(20);
    expect(calls).toBe(2);
  });
});
