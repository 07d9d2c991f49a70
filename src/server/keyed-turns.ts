/**
 * The turns with an Idempotency-Key that this node's chat gateway is waiting for, by turn id, so that a
 * repeat of the key while its turn still runs waits for that turn's outcome instead of asking text_chat a
 * second time (which, with the user message not yet stored or the reply not yet written, would store and
 * generate a second time). A repeat after the turn ended is not here: text_chat answers it from the log.
 */

import { PlatformError } from '../core/errors.ts';
import type { Message } from '../core/types.ts';

export interface KeyedTurns {
  /**
   * The outcome of the keyed turn `turnId` under way on this node, or undefined when there is none. A
   * repeat whose content differs from the running turn's is rejected (CHAT_ERR_IDEMPOTENCY_KEY_REUSED).
   */
  join(turnId: string, content: string): Promise<Message> | undefined;
  /** Remembers a keyed turn until `done` settles. */
  track(turnId: string, content: string, done: Promise<Message>): void;
}

export function createKeyedTurns(): KeyedTurns {
  const running = new Map<string, { content: string; done: Promise<Message> }>();
  return {
    join(turnId, content) {
      const turn = running.get(turnId);
      if (turn === undefined) return undefined;
      if (turn.content !== content) {
        return Promise.reject(
          new PlatformError(
            'CHAT_ERR_IDEMPOTENCY_KEY_REUSED',
            'this Idempotency-Key belongs to a different message of this session, still being answered: send a new message with a new key',
            { details: { turnId } },
          ),
        );
      }
      return turn.done;
    },
    track(turnId, content, done) {
      running.set(turnId, { content, done });
      const forget = () => {
        if (running.get(turnId)?.done === done) running.delete(turnId);
      };
      done.then(forget, forget);
    },
  };
}
