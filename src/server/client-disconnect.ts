import type { FastifyReply } from 'fastify';

/**
 * Calls `listener` when the client goes away before the response finished (a closed tab, an aborted
 * fetch), so the work done for it can be cancelled. Returns an AbortSignal that fires at the same time.
 */
export function abortOnDisconnect(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort(new DOMException('the client went away', 'AbortError'));
  });
  return controller.signal;
}
