import { describe, expect, it } from 'vitest';
import { CANCELLED, createTurnRegistry } from './turn-registry.ts';

describe('createTurnRegistry', () => {
  it('aborts a running turn with the cancel reason, checking the user when the cancel names one', () => {
    const turns = createTurnRegistry({ rememberMs: 1000 });
    const controller = turns.start('t1', 'u1');
    expect(turns.cancel('t1', 'u2')).toBe(false);
    expect(controller.signal.aborted).toBe(false);
    expect(turns.cancel('t1', 'u1')).toBe(true);
    expect(controller.signal.reason).toBe(CANCELLED);
  });

  it('remembers a cancel that arrives before its turn, for a while', () => {
    let time = 0;
    const turns = createTurnRegistry({ rememberMs: 1000, now: () => time });
    turns.cancel('early');
    expect(turns.start('early', 'u1').signal.aborted).toBe(true);
    turns.cancel('late');
    time = 2000;
    expect(turns.start('late', 'u1').signal.aborted).toBe(false);
  });

  it('bounds the early cancels it remembers', () => {
    const turns = createTurnRegistry({ rememberMs: 60_000, maxRemembered: 10, now: () => 0 });
    for (let index = 0; index < 20; index++) turns.cancel(`t${index}`);
    expect(turns.start('t0', 'u1').signal.aborted).toBe(false);
    expect(turns.start('t19', 'u1').signal.aborted).toBe(true);
  });
});
