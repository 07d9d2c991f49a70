/**
 * The turns generating on this node, so `chat.cancel` (a local listener on every node) can abort the one
 * it names. A cancel may overtake its turn (the client gives up before the work subscription picked the
 * turn up): such cancels are remembered for a while and the turn is aborted as it starts.
 */

export interface TurnRegistry {
  /** Registers a turn; its signal is already aborted when a cancel came first. */
  start(turnId: string, userId: string): AbortController;
  /** Forgets a finished turn. */
  finish(turnId: string): void;
  /**
   * Aborts the turn; `userId`, when the cancel carries one, must be the turn's user. Returns true when
   * a turn of this node was aborted; otherwise the cancel is remembered for a turn that has not started.
   */
  cancel(turnId: string, userId?: string): boolean;
  /** Aborts every running turn (shutdown). */
  abortAll(reason: unknown): void;
  /** Turns running now. */
  activeCount(): number;
  /** The ids of the turns running now. */
  activeIds(): string[];
}

export interface TurnRegistryOptions {
  /** How long an early cancel is remembered. */
  rememberMs: number;
  /** Most early cancels remembered; the oldest are forgotten first. */
  maxRemembered?: number;
  now?: () => number;
}

/** The reason a cancelled turn's signal carries, so the turn can tell a cancel from other aborts. */
export const CANCELLED = new DOMException('the client cancelled the turn', 'AbortError');

/** Creates the registry of this node's running turns. */
export function createTurnRegistry(options: TurnRegistryOptions): TurnRegistry {
  const now = options.now ?? Date.now;
  const maxRemembered = options.maxRemembered ?? 10_000;
  const running = new Map<string, { controller: AbortController; userId: string }>();
  /** turnId → when the early cancel expires, in insertion (so expiry) order. */
  const early = new Map<string, { expires: number; userId: string | undefined }>();

  function forgetExpired(time: number): void {
    for (const [turnId, entry] of early) {
      if (entry.expires > time && early.size <= maxRemembered) break;
      early.delete(turnId);
    }
  }

  return {
    start(turnId, userId) {
      const controller = new AbortController();
      running.set(turnId, { controller, userId });
      const cancelled = early.get(turnId);
      if (cancelled !== undefined) {
        early.delete(turnId);
        if (cancelled.expires > now() && (cancelled.userId === undefined || cancelled.userId === userId)) {
          controller.abort(CANCELLED);
        }
      }
      return controller;
    },
    finish(turnId) {
      running.delete(turnId);
    },
    cancel(turnId, userId) {
      const turn = running.get(turnId);
      if (turn === undefined) {
        const time = now();
        early.set(turnId, { expires: time + options.rememberMs, userId });
        forgetExpired(time);
        return false;
      }
      if (userId !== undefined && userId !== turn.userId) return false;
      turn.controller.abort(CANCELLED);
      return true;
    },
    abortAll(reason) {
      for (const { controller } of running.values()) controller.abort(reason);
    },
    activeCount: () => running.size,
    activeIds: () => [...running.keys()],
  };
}
