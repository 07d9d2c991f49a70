import type { ModuleContext } from '../../core/module.ts';
import type { TextChatConfig } from './types.ts';

/**
 * The keyed turns (sent with an Idempotency-Key) being generated anywhere in the cluster, as this node
 * heard of them, so that a repeat of one reaching any node waits for that generation instead of starting
 * a second one (which would store a second reply). A node about to generate a keyed turn tells every node
 * at once (`chat.response.alive` with `started`, not waiting for the next heartbeat); the heartbeats then
 * keep it fresh, and its `chat.response.end` or `.error` ends it. A turn not heard of for
 * `turn_recovery.lost_after_ms` is taken as lost with its node (as the chat gateway takes it): a repeat
 * then answers it itself. Only announced turns are tracked, so the heartbeats of others cost a lookup each.
 *
 * Two repeats reaching two nodes in the same moment, before either announced the turn, may still both
 * generate it (the log then holds two replies of the turn; later repeats get the first).
 */
export interface KeyedTurnsUnderWay {
  /** This node starts generating the keyed turn: every node (this one too) hears of it now. */
  announce(turnId: string): void;
  /**
   * `chat.response.alive` from any node, sent at `time` (ms): the turns it announces (`started`) begin
   * generating; of a heartbeat's, the announced ones are still generating.
   */
  heard(turnIds: readonly string[], started: boolean, time: number): void;
  /** `chat.response.end` or `.error` from any node, sent at `time` (ms): the turn stopped generating. */
  ended(turnId: string, time: number): void;
  /** Resolves once no generation of the turn is under way anywhere, as far as this node knows. */
  settled(turnId: string): Promise<void>;
}

export function createKeyedTurnsUnderWay(
  ctx: ModuleContext<TextChatConfig>,
  lostAfterMs: number,
): KeyedTurnsUnderWay {
  /** turnId → when it was last heard of (this node's clock), oldest first (re-inserted when heard). */
  const lastHeard = new Map<string, number>();
  /**
   * turnId → when its generation ended (the sender's clock), for `lostAfterMs`: an announcement sent
   * before that is a late echo of the ended generation (this node's own announcement comes back through
   * the bus after it was heard here). An end that overtakes its announcement on another node is not
   * recorded (ends of turns not heard of are not kept): the turn then looks under way there until
   * `lostAfterMs` passes, which delays a repeat, never answers it twice.
   */
  const endedAt = new Map<string, number>();
  /** turnId → the callers waiting for it to settle. */
  const waiting = new Map<string, Set<() => void>>();

  function isGenerating(turnId: string, now: number): boolean {
    const heardAt = lastHeard.get(turnId);
    return heardAt !== undefined && now - heardAt < lostAfterMs;
  }

  /** Drops what is older than `lostAfterMs` from a map kept oldest first. */
  function forgetOld(times: Map<string, number>, now: number): void {
    for (const [turnId, time] of times) {
      if (now - time < lostAfterMs) break;
      times.delete(turnId);
    }
  }

  function hear(turnId: string, now: number): void {
    lastHeard.delete(turnId);
    lastHeard.set(turnId, now);
  }

  function release(turnId: string): void {
    const waiters = waiting.get(turnId);
    if (waiters === undefined) return;
    waiting.delete(turnId);
    for (const resolve of waiters) resolve();
  }

  return {
    announce(turnId) {
      // Heard here at once (the event also comes back to this node, a moment later).
      hear(turnId, Date.now());
      ctx.emit('chat.response.alive', { turnIds: [turnId], started: true }).catch((error: unknown) => {
        // The bus is down: no other node could take a repeat either.
        ctx.log.debug({ err: error, turnId }, 'could not announce a keyed turn');
      });
    },
    heard(turnIds, started, time) {
      const now = Date.now();
      forgetOld(lastHeard, now);
      forgetOld(endedAt, now);
      for (const turnId of turnIds) {
        if (lastHeard.has(turnId)) hear(turnId, now);
        else if (started && !((endedAt.get(turnId) ?? Number.NEGATIVE_INFINITY) >= time)) hear(turnId, now);
      }
    },
    ended(turnId, time) {
      if (!lastHeard.delete(turnId)) return;
      endedAt.delete(turnId);
      endedAt.set(turnId, time);
      release(turnId);
    },
    settled(turnId) {
      if (!isGenerating(turnId, Date.now())) return Promise.resolve();
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
          if (isGenerating(turnId, Date.now())) return;
          waiters.delete(done);
          if (waiters.size === 0 && waiting.get(turnId) === waiters) waiting.delete(turnId);
          done();
        }, lostAfterMs);
        check.unref();
      });
    },
  };
}
