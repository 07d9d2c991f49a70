/**
 * A reply streamed as server-sent events, for every route that generates one (a message's turn, a
 * regeneration): `start` {turnId, sessionId}, `delta` {text}…, `tool` events, `restart` when another node
 * answers again, then `end` {message} or `error` {error}. A failure before the first event answers with its
 * HTTP status and the JSON error instead (sse.ts starts the stream lazily). A client that disconnects
 * aborts `signal`, which cancels the turn (the gateway emits `chat.cancel`).
 */

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Message } from '../core/types.ts';
import type { StreamedTurn, TurnHandlers } from './chat-gateway.ts';
import { toHttpError } from './http-errors.ts';
import type { ServerContext } from './server-context.ts';
import { createSseStream } from './sse.ts';

/** Starts the turn with the stream's handlers and the signal that fires when the client goes away. */
export type StartStreamedTurn = (handlers: TurnHandlers, signal: AbortSignal) => StreamedTurn;

/** Runs the turn `start` begins, writing it to `reply` as SSE; resolves with `reply` once it ended. */
export async function streamTurnAsSse(
  request: FastifyRequest,
  reply: FastifyReply,
  context: ServerContext,
  sessionId: string,
  start: StartStreamedTurn,
): Promise<FastifyReply> {
  const stream = createSseStream(reply, { heartbeatMs: context.sseHeartbeatMs });
  const controller = new AbortController();
  stream.onDisconnect(() => controller.abort());
  let turnId = '';
  const begin = () => {
    if (!stream.started) stream.send('start', { turnId, sessionId });
  };
  const turn = start(
    {
      onDelta: (text) => {
        begin();
        stream.send('delta', { text });
      },
      onTool: (event) => {
        begin();
        stream.send('tool', event);
      },
      // The node generating the reply died; another node answers again from the start.
      onRestart: () => {
        if (stream.started) stream.send('restart', { turnId });
      },
    },
    controller.signal,
  );
  turnId = turn.turnId;
  let message: Message;
  try {
    message = await turn.done;
  } catch (error) {
    // Nothing sent yet: the client gets the real status (404, 409, 429, 502…) and the JSON error.
    if (!stream.started) throw error;
    const failure = toHttpError(error, context);
    if (failure.status >= 500) request.log.error({ err: error, turnId }, 'streamed turn failed');
    stream.send('error', failure.body);
    stream.end();
    return reply;
  }
  begin();
  stream.send('end', { message });
  stream.end();
  return reply;
}
