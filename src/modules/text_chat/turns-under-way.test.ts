import { describe, expect, it } from 'vitest';
import { createTurnsUnderWay } from './turns-under-way.ts';

const busy = { code: 'CHAT_ERR_TURN_IN_PROGRESS', status: 409 };

function setup() {
  let clock = 1_000_000;
  const generating = createTurnsUnderWay({ lostAfterMs: 5000, now: () => clock });
  return {
    generating,
    advance: (ms: number) => {
      clock += ms;
    },
    time: () => clock,
  };
}

describe('turns under way, on this node', () => {
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

describe('turns under way, on other nodes', () => {
  it('refuses a regeneration while another node generates a turn of the session, until its end', () => {
    const { generating, time } = setup();
    generating.startedElsewhere({ turnId: 't1', userId: 'u1', sessionId: 's1', regeneration: false }, time());
    expect(() => generating.enterRegeneration('u1', 's1')).toThrow(expect.objectContaining(busy));
    // A turn beside it is fine; another user's session of the same id is not busy.
    generating.enterTurn('u1', 's1')();
    generating.enterRegeneration('u2', 's1')();
    generating.ended('t1', time());
    generating.enterRegeneration('u1', 's1')();
  });

  it('refuses a message while another node regenerates a reply of the session', () => {
    const { generating, time } = setup();
    generating.startedElsewhere({ turnId: 'r1', userId: 'u1', sessionId: 's1', regeneration: true }, time());
    expect(() => generating.enterTurn('u1', 's1')).toThrow(expect.objectContaining(busy));
    expect(() => generating.enterRegeneration('u1', 's1')).toThrow(expect.objectContaining(busy));
    generating.ended('r1', time());
    generating.enterTurn('u1', 's1')();
  });

  it('takes a turn not heard of for lost_after_ms as lost with its node; heartbeats keep it', () => {
    const { generating, advance, time } = setup();
    generating.startedElsewhere({ turnId: 't1', userId: 'u1', sessionId: 's1', regeneration: true }, time());
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
    generating.startedElsewhere(
      { turnId: 't1', userId: 'u1', sessionId: 's1', regeneration: false },
      startedAt,
    );
    generating.enterRegeneration('u1', 's1')();
    // The same turn generated again later (asked again under its id): busy again.
    advance(10);
    generating.startedElsewhere({ turnId: 't1', userId: 'u1', sessionId: 's1', regeneration: false }, time());
    expect(() => generating.enterRegeneration('u1', 's1')).toThrow(expect.objectContaining(busy));
  });
});

describe('keyed turns under way', () => {
  /** Whether `promise` settled within a few event-loop turns. */
  async function settledSoon(promise: Promise<void>): Promise<boolean> {
    let done = false;
    void promise.then(() => {
      done = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 5));
    return done;
  }

  it('holds a repeat while the keyed turn generates here, until its end is heard or the turn is over', async () => {
    const underWay = createTurnsUnderWay({ lostAfterMs: 60_000 });
    underWay.generatingKeyed('k1');
    const repeat = underWay.settled('k1');
    expect(await settledSoon(repeat)).toBe(false);
    expect(await settledSoon(underWay.settled('k2'))).toBe(true);
    underWay.ended('k1', Date.now());
    expect(await settledSoon(repeat)).toBe(true);

    // Its end never told (the bus was down): the turn being over is enough.
    const silent = underWay.generatingKeyed('k3');
    const waiting = underWay.settled('k3');
    silent();
    expect(await settledSoon(waiting)).toBe(true);
  });

  it('holds a repeat while another node generates the keyed turn, until its end or its silence', async () => {
    const underWay = createTurnsUnderWay({ lostAfterMs: 100 });
    const turn = { userId: 'u1', sessionId: 's1', regeneration: false };
    underWay.startedElsewhere({ ...turn, turnId: 'k1' }, Date.now());
    const repeat = underWay.settled('k1');
    expect(await settledSoon(repeat)).toBe(false);
    underWay.ended('k1', Date.now());
    expect(await settledSoon(repeat)).toBe(true);

    // Its node died without a word: the repeat goes on after lost_after_ms.
    underWay.startedElsewhere({ ...turn, turnId: 'k2' }, Date.now());
    const startedAt = Date.now();
    await underWay.settled('k2');
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(90);
  });
});
