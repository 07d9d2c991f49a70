import { PlatformError } from '../../core/errors.ts';

/**
 * The replies being generated anywhere in the cluster, as this node knows of them: its own work, and
 * what it heard of the other nodes'. Two rules rest on it.
 *
 * - **One regeneration at a time in a session.** A regeneration answers the session's last user message
 *   and replaces its newest reply, which a turn under way is about to change. So it is refused
 *   (409 CHAT_ERR_TURN_IN_PROGRESS) while a turn or another regeneration of the session runs, and a new
 *   message is refused while a regeneration runs (its reply would land between the regenerated one and
 *   the message it answers). Turns of a session beside each other stay allowed. Keyed by user and
 *   session, so another user's session id never answers 409 instead of 404.
 * - **A keyed turn generates once.** A turn sent with an Idempotency-Key may be asked again from any node;
 *   a repeat that comes while the turn is generating somewhere waits for that generation (`settled`)
 *   instead of starting a second one, which would store a second reply.
 *
 * Across nodes, a node about to generate tells every node at once (`chat.turn.started`: a keyed turn's
 * repeat knows it by its turn id); its heartbeats (`chat.response.alive`) keep the turn fresh, and its `chat.response.end` or
 * `.error` ends it. A turn not heard of for `turn_recovery.lost_after_ms` is taken as lost with its node:
 * a regeneration may then run, and a repeat then answers the turn itself. An end may overtake its start
 * across nodes: ends are remembered a while, and a start sent before the end is not taken as a new one.
 *
 * What another node does is known once its event arrived (milliseconds over NATS): a turn and a
 * regeneration of one session, or two repeats of a keyed turn, that start on two nodes in the same moment
 * may still both run (for a keyed turn: two replies in the log; later repeats get the first).
 */
export interface TurnsUnderWay {
  /** A turn of a new message starts here; refused while a regeneration of the session runs. Returns its end. */
  enterTurn(userId: string, sessionId: string): () => void;
  /** A regeneration starts here; refused while anything generates in the session. Returns its end. */
  enterRegeneration(userId: string, sessionId: string): () => void;
  /**
   * This node starts generating the keyed turn: a repeat on this node waits for it (`settled`) until its
   * end is heard, or the returned function is called (the turn is over, whether or not its end could be
   * told). The other nodes hear of it by the turn's `chat.turn.started`.
   */
  generatingKeyed(turnId: string): () => void;
  /**
   * `chat.turn.started` from another node, sent at `time` (ms): it generates `turnId` (a regeneration when
   * `regeneration`) in the user's session.
   */
  startedElsewhere(
    turn: { turnId: string; userId: string; sessionId: string; regeneration: boolean },
    time: number,
  ): void;
  /** `chat.response.alive` from any node: its turns `turnIds` are still generating. */
  alive(turnIds: readonly string[]): void;
  /** `chat.response.end` or `.error` from any node, sent at `time` (ms): the turn stopped generating. */
  ended(turnId: string, time: number): void;
  /** Resolves once no generation of the keyed turn is under way anywhere, as far as this node knows. */
  settled(turnId: string): Promise<void>;
}

export interface TurnsUnderWayOptions {
  /** A turn of another node not heard of for this long is taken as lost (`turn_recovery.lost_after_ms`). */
  lostAfterMs: number;
  now?: () => number;
}

/** This node's work in one session. */
interface Activity {
  turns: number;
  regenerating: boolean;
}

/** A turn another node generates, as this node heard of it. */
interface RemoteTurn {
  /** Its user and session (`sessionKey`). */
  key: string;
  regeneration: boolean;
  /** When it was last heard of (this node's clock). */
  heardAt: number;
}

/** Ends remembered at most (oldest forgotten first): enough for the turns of `lostAfterMs` on a busy cluster. */
const MAX_ENDED = 10_000;

const sessionKey = (userId: string, sessionId: string) => `${userId}\n${sessionId}`;

export function createTurnsUnderWay(options: TurnsUnderWayOptions): TurnsUnderWay {
  const { lostAfterMs } = options;
  const now = options.now ?? Date.now;
  // This node's own work, by session.
  const active = new Map<string, Activity>();
  // This node's keyed turns generating now.
  const keyedHere = new Set<string>();
  // Other nodes' turns: turnId → the turn, least recently heard of first (re-inserted when heard).
  const remote = new Map<string, RemoteTurn>();
  // Session → the ids of other nodes' turns in it.
  const remoteBySession = new Map<string, Set<string>>();
  /**
   * turnId → when its generation ended (the sender's clock), heard at (this node's), oldest first: an end
   * may overtake its start across nodes, and a start sent before the end is then not taken as a new one.
   */
  const endedAt = new Map<string, { time: number; heardAt: number }>();
  /** turnId → the repeats waiting for the keyed turn to settle. */
  const waiting = new Map<string, Set<() => void>>();

  function leave(key: string, activity: Activity, regeneration: boolean): () => void {
    let left = false;
    return () => {
      if (left) return;
      left = true;
      if (regeneration) activity.regenerating = false;
      else activity.turns--;
      if (activity.turns === 0 && !activity.regenerating) active.delete(key);
    };
  }

  function forgetRemote(turnId: string): void {
    const turn = remote.get(turnId);
    if (turn === undefined) return;
    remote.delete(turnId);
    const ids = remoteBySession.get(turn.key);
    ids?.delete(turnId);
    if (ids?.size === 0) remoteBySession.delete(turn.key);
  }

  function release(turnId: string): void {
    const waiters = waiting.get(turnId);
    if (waiters === undefined) return;
    waiting.delete(turnId);
    for (const resolve of waiters) resolve();
  }

  // The sweep below runs at most this often: called on every turn, it would walk the leading deleted
  // slots a Map keeps until it rehashes (2% of a busy node's CPU), to forget a turn some ms sooner.
  const sweepEveryMs = Math.max(1, Math.floor(lostAfterMs / 50));
  let nextSweep = Number.NEGATIVE_INFINITY;

  /** Drops the other nodes' turns not heard of for `lostAfterMs`, and old ends. */
  function forgetLost(time: number): void {
    if (time < nextSweep) return;
    nextSweep = time + sweepEveryMs;
    for (const [turnId, turn] of remote) {
      if (time - turn.heardAt < lostAfterMs) break;
      forgetRemote(turnId);
      release(turnId);
    }
    for (const [turnId, end] of endedAt) {
      if (time - end.heardAt < lostAfterMs) break;
      endedAt.delete(turnId);
    }
  }

  /** What other nodes generate in the session: turns, and whether one is a regeneration. */
  function elsewhere(key: string): { any: boolean; regenerating: boolean } {
    forgetLost(now());
    const ids = remoteBySession.get(key);
    if (ids === undefined) return { any: false, regenerating: false };
    let regenerating = false;
    for (const id of ids) if (remote.get(id)?.regeneration) regenerating = true;
    return { any: ids.size > 0, regenerating };
  }

  /** Whether a generation of the keyed turn is under way, here or (not lost) elsewhere. */
  function isGenerating(turnId: string): boolean {
    if (keyedHere.has(turnId)) return true;
    const turn = remote.get(turnId);
    return turn !== undefined && now() - turn.heardAt < lostAfterMs;
  }

  return {
    enterTurn(userId, sessionId) {
      const key = sessionKey(userId, sessionId);
      let activity = active.get(key);
      if (activity?.regenerating || elsewhere(key).regenerating) {
        throw new PlatformError(
          'CHAT_ERR_TURN_IN_PROGRESS',
          'a reply of this session is being regenerated: wait for it to end (or cancel it), then send your message',
          { details: { sessionId } },
        );
      }
      if (activity === undefined) {
        activity = { turns: 0, regenerating: false };
        active.set(key, activity);
      }
      activity.turns++;
      return leave(key, activity, false);
    },
    enterRegeneration(userId, sessionId) {
      const key = sessionKey(userId, sessionId);
      if (active.has(key) || elsewhere(key).any) {
        throw new PlatformError(
          'CHAT_ERR_TURN_IN_PROGRESS',
          'a reply is still being generated in this session: wait for it to end (or cancel it), then regenerate',
          { details: { sessionId } },
        );
      }
      const activity: Activity = { turns: 0, regenerating: true };
      active.set(key, activity);
      return leave(key, activity, true);
    },
    generatingKeyed(turnId) {
      keyedHere.add(turnId);
      return () => {
        if (keyedHere.delete(turnId)) release(turnId);
      };
    },
    startedElsewhere({ turnId, userId, sessionId, regeneration }, time) {
      const heardAt = now();
      forgetLost(heardAt);
      // Its end came first (events of two types may cross): this start is not a new generation.
      if ((endedAt.get(turnId)?.time ?? Number.NEGATIVE_INFINITY) >= time) return;
      forgetRemote(turnId);
      const key = sessionKey(userId, sessionId);
      remote.set(turnId, { key, regeneration, heardAt });
      let ids = remoteBySession.get(key);
      if (ids === undefined) {
        ids = new Set();
        remoteBySession.set(key, ids);
      }
      ids.add(turnId);
    },
    alive(turnIds) {
      if (remote.size === 0) return;
      const heardAt = now();
      for (const turnId of turnIds) {
        const turn = remote.get(turnId);
        if (turn === undefined) continue;
        remote.delete(turnId);
        turn.heardAt = heardAt;
        remote.set(turnId, turn);
      }
    },
    ended(turnId, time) {
      if (keyedHere.delete(turnId)) {
        release(turnId);
        return;
      }
      const heardAt = now();
      forgetLost(heardAt);
      if (remote.has(turnId)) {
        forgetRemote(turnId);
        release(turnId);
        return;
      }
      // Not heard of (this node's own turn, or an end that overtook its start): remembered a while.
      endedAt.delete(turnId);
      endedAt.set(turnId, { time, heardAt });
      if (endedAt.size > MAX_ENDED) endedAt.delete(endedAt.keys().next().value!);
    },
    settled(turnId) {
      if (!isGenerating(turnId)) return Promise.resolve();
      return new Promise<void>((resolve) => {
        let waiters = waiting.get(turnId);
        if (waiters === undefined) {
          waiters = new Set();
          waiting.set(turnId, waiters);
        }
        const done = () => {
          clearInterval(check);
          resolve();
        };
        waiters.add(done);
        // Its node may die without a word: look again as often as a turn may stay silent.
        const check = setInterval(() => {
          if (isGenerating(turnId)) return;
          waiters.delete(done);
          if (waiters.size === 0 && waiting.get(turnId) === waiters) waiting.delete(turnId);
          done();
        }, lostAfterMs);
        check.unref();
      });
    },
  };
}
