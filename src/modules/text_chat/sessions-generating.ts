import { PlatformError } from '../../core/errors.ts';

/**
 * The sessions in which this node is generating a reply, so that a regeneration does not run beside
 * another reply of the same session: it answers the session's last user message and replaces its newest
 * reply, which a turn under way is about to change. A regeneration waits for nothing: it is refused
 * (409 CHAT_ERR_TURN_IN_PROGRESS) while a turn or another regeneration of the session runs, and a new
 * message is refused while a regeneration runs (its reply would land between the regenerated one and the
 * message it answers). Turns of a session beside each other stay allowed, as they always were.
 *
 * Keyed by user and session, so another user's session id never answers 409 instead of 404.
 *
 * Only this node's own work is known: on several nodes, a turn generating on another node is not seen
 * (text_chat README, "Regenerate").
 */
export interface SessionsGenerating {
  /** A turn of a new message starts; refused while a regeneration of the session runs. Returns its end. */
  enterTurn(userId: string, sessionId: string): () => void;
  /** A regeneration starts; refused while anything generates in the session. Returns its end. */
  enterRegeneration(userId: string, sessionId: string): () => void;
}

interface Activity {
  turns: number;
  regenerating: boolean;
}

export function createSessionsGenerating(): SessionsGenerating {
  const active = new Map<string, Activity>();

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

  return {
    enterTurn(userId, sessionId) {
      const key = `${userId}\n${sessionId}`;
      let activity = active.get(key);
      if (activity?.regenerating) {
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
      const key = `${userId}\n${sessionId}`;
      if (active.has(key)) {
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
  };
}
