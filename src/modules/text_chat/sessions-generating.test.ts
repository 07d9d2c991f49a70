import { describe, expect, it } from 'vitest';
import { createSessionsGenerating } from './sessions-generating.ts';

const busy = { code: 'CHAT_ERR_TURN_IN_PROGRESS', status: 409 };

function setup() {
  let clock = 1_000_000;
  const generating = createSessionsGenerating({ lostAfterMs: 5000, now: () => clock });
  return {
    generating,
    advance: (ms: number) => {
      clock += ms;
    },
    time: () => clock,
  };
}

describe('sessions generating, on this node', () => {
  it('refuses a regeneration beside a turn, and a turn beside a regeneration, per user and session', () => {
    const { generating } = setup();
    const leaveTurn = generating.enterTurn('u1', 's1');
    // Turns beside each other stay allowed.
    generating.enterTurn('u1', 's1')();
    expect(() => generating.enterRegeneration('u1', 's1')).toThrow(expect.objectContaining(busy));
    generating.enterRegeneration('u2', 's1')();
    leaveTurn();
    const leaveRegeneration = generating.enterRegeneration('u1', 's1');
    expect(() => generating.enterTurn('u1', 's1')).toThrow(expect.objectContaining(busy));
    leaveRegeneration();
    generating.enterTurn('u1', 's1')();
  });
});

describe('sessions generating, on other nodes', () => {
  it('refuses a regeneration while another node generates a turn of the session, until its end', () => {
    const { generating, time } = setup();
    generating.startedElsewhere('t1', 'u1', 's1', false, time());
    expect(() => generating.enterRegeneration('u1', 's1')).toThrow(expect.objectContaining(busy));
    // A turn beside it is fine; another user's session of the same id is not busy.
    generating.enterTurn('u1', 's1')();
    generating.enterRegeneration('u2', 's1')();
    generating.ended('t1', time());
    generating.enterRegeneration('u1', 's1')();
  });

  it('refuses a message while another node regenerates a reply of the session', () => {
    const { generating, time } = setup();
    generating.startedElsewhere('r1', 'u1', 's1', true, time());
    expect(() => generating.enterTurn('u1', 's1')).toThrow(expect.objectContaining(busy));
    expect(() => generating.enterRegeneration('u1', 's1')).toThrow(expect.objectContaining(busy));
    generating.ended('r1', time());
    generating.enterTurn('u1', 's1')();
  });

  it('takes a turn not heard of for lost_after_ms as lost with its node; heartbeats keep it', () => {
    const { generating, advance, time } = setup();
    generating.startedElsewhere('t1', 'u1', 's1', true, time());
    advance(4000);
    generating.alive(['t1', 'unknown']);
    advance(4000);
    expect(() => generating.enterTurn('u1', 's1')).toThrow(expect.objectContaining(busy));
    advance(1000);
    // 5 s since the last heartbeat: its node is taken as gone.
    generating.enterTurn('u1', 's1')();
  });

  it('does not take a start that its end overtook for a new generation; a later start is one', () => {
    const { generating, advance, time } = setup();
    const startedAt = time();
    advance(10);
    generating.ended('t1', time());
    generating.startedElsewhere('t1', 'u1', 's1', false, startedAt);
    generating.enterRegeneration('u1', 's1')();
    // The same turn generated again later (asked again under its id): busy again.
    advance(10);
    generating.startedElsewhere('t1', 'u1', 's1', false, time());
    expect(() => generating.enterRegeneration('u1', 's1')).toThrow(expect.objectContaining(busy));
  });
});
