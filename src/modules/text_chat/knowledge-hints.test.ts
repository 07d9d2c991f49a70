import { describe, expect, it } from 'vitest';
import { createKnowledgeHints } from './knowledge-hints.ts';

describe('knowledge hints', () => {
  it('notes a user found without knowledge until a change for them is heard', () => {
    const hints = createKnowledgeHints();
    expect(hints.isEmpty('u1')).toBe(false);
    hints.noteEmpty('u1', hints.version());
    expect(hints.isEmpty('u1')).toBe(true);
    expect(hints.isEmpty('u2')).toBe(false);
    hints.changed('u1');
    expect(hints.isEmpty('u1')).toBe(false);
  });

  it('does not note a user from a gather that a change overtook', () => {
    const hints = createKnowledgeHints();
    const startedAt = hints.version();
    // A document came while the gather was under way: its empty answer may predate it.
    hints.changed('u1');
    hints.noteEmpty('u1', startedAt);
    expect(hints.isEmpty('u1')).toBe(false);
  });

  it('forgets a note after the time to live, in case a change was never heard', () => {
    let now = 1_000;
    const hints = createKnowledgeHints({ ttlMs: 60_000, now: () => now });
    hints.noteEmpty('u1', hints.version());
    now += 59_999;
    expect(hints.isEmpty('u1')).toBe(true);
    now += 1;
    expect(hints.isEmpty('u1')).toBe(false);
  });
});
