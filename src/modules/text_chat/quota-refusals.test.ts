import { describe, expect, it } from 'vitest';
import { createQuotaRefusals, QUOTA_REFUSAL_MEMORY_MS } from './quota-refusals.ts';

describe('quota refusals', () => {
  it('remembers a refused user until a message of theirs is stored, or for a while', () => {
    let now = 0;
    const refusals = createQuotaRefusals({ now: () => now });
    expect(refusals.refusedLately('u1')).toBe(false);
    refusals.refused('u1');
    expect(refusals.refusedLately('u1')).toBe(true);
    expect(refusals.refusedLately('u2')).toBe(false);
    refusals.stored('u1');
    expect(refusals.refusedLately('u1')).toBe(false);

    refusals.refused('u1');
    now += QUOTA_REFUSAL_MEMORY_MS - 1;
    expect(refusals.refusedLately('u1')).toBe(true);
    now += 1;
    expect(refusals.refusedLately('u1')).toBe(false);
  });
});
