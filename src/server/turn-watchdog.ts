/**
 * Notices turns that went silent. A turn over a networked bus is a request answered by one node; while
 * that node works it streams deltas or `chat.response.alive` heartbeats. When a watched turn has been
 * silent for `lostAfterMs` (its node died: SIGKILL, a crash, a cut network), `onLost` is called once.
 * One timer serves every watched turn, and runs only while there are some.
 */

export interface TurnWatch {
  /** Something of the turn arrived: its node is alive. */
  heard(): void;
  /** Stops watching (the turn ended, or was given up). */
  stop(): void;
}

export interface TurnWatchdog {
  watch(onLost: () => void): TurnWatch;
}

export function createTurnWatchdog(options: { lostAfterMs: number; now?: () => number }): TurnWatchdog {
  const now = options.now ?? Date.now;
  const watched = new Set<{ lastHeard: number; onLost: () => void }>();
  let timer: NodeJS.Timeout | undefined;

  function check(): void {
    const time = now();
    for (const entry of watched) {
      if (time - entry.lastHeard < options.lostAfterMs) continue;
      watched.delete(entry);
      entry.onLost();
    }
    if (watched.size === 0) {
      clearInterval(timer);
      timer = undefined;
    }
  }

  return {
    watch(onLost) {
      const entry = { lastHeard: now(), onLost };
      watched.add(entry);
      if (timer === undefined) {
        // A quarter of the limit: a lost turn is noticed at most 25% late.
        timer = setInterval(check, Math.max(10, Math.floor(options.lostAfterMs / 4)));
        timer.unref();
      }
      return {
        heard: () => {
          entry.lastHeard = now();
        },
        stop: () => {
          watched.delete(entry);
        },
      };
    },
  };
}
