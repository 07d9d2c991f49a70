/**
 * A session's chat over one WebSocket: `GET /v1/sessions/:id/stream` (authenticated like every route,
 * the session checked before the upgrade, so a foreign or missing session answers 404 and no socket
 * opens). Client frames: `{ type: 'message', content, model?, temperature?, idempotencyKey? }`,
 * `{ type: 'regenerate', model?, temperature? }` (another reply to the last message, replacing the newest
 * reply: routes/messages.ts) and `{ type: 'cancel' }`. A message frame's `idempotencyKey` is the POST route's `Idempotency-Key`: a client
 * that reconnects after a dropped socket sends the message again with it and gets the same turn.
 * Server frames: `start` {turnId}, `delta` {turnId, text}, `end` {turnId, message}, `error` {turnId?, error}.
 * One turn at a time per socket; closing the socket cancels the turn under way.
 */

import { Ajv } from 'ajv';
import type { FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import { ValidationError } from '../../core/errors.ts';
import { principalOf } from '../auth-hook.ts';
import type { StreamedTurn, TurnHandlers } from '../chat-gateway.ts';
import { toHttpError } from '../http-errors.ts';
import { IDEMPOTENCY_KEY_PATTERN, MAX_IDEMPOTENCY_KEY_LENGTH } from '../idempotency-key.ts';
import { errorResponses } from '../schemas.ts';
import type { ServerContext } from '../server-context.ts';
import { checkSessionId } from './sessions.ts';

/** A frame the client sends. */
type ClientFrame =
  | { type: 'message'; content: string; model?: string; temperature?: number; idempotencyKey?: string }
  | { type: 'regenerate'; model?: string; temperature?: number }
  | { type: 'cancel' };

const clientFrameSchema = {
  oneOf: [
    {
      type: 'object',
      additionalProperties: false,
      required: ['type', 'content'],
      properties: {
        type: { const: 'message' },
        content: { type: 'string', minLength: 1 },
        model: { type: 'string', minLength: 1, maxLength: 200 },
        temperature: { type: 'number', minimum: 0, maximum: 2 },
        // As the Idempotency-Key header (idempotency-key.ts).
        idempotencyKey: {
          type: 'string',
          minLength: 1,
          maxLength: MAX_IDEMPOTENCY_KEY_LENGTH,
          pattern: IDEMPOTENCY_KEY_PATTERN,
        },
      },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['type'],
      properties: {
        type: { const: 'regenerate' },
        model: { type: 'string', minLength: 1, maxLength: 200 },
        temperature: { type: 'number', minimum: 0, maximum: 2 },
      },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['type'],
      properties: { type: { const: 'cancel' } },
    },
  ],
};

/** Starts a streamed turn with the socket's handlers and the signal that cancels it. */
type StartTurn = (handlers: TurnHandlers, signal: AbortSignal) => StreamedTurn;

const validateFrame = new Ajv({ allErrors: false }).compile<ClientFrame>(clientFrameSchema);

/** Registers the WebSocket route (the @fastify/websocket plugin must be registered first). */
export function registerWebSocketRoutes(app: FastifyInstance, context: ServerContext): void {
  const { chat } = context;

  app.get<{ Params: { id: string } }>(
    '/v1/sessions/:id/stream',
    {
      websocket: true,
      schema: {
        tags: ['messages'],
        summary: 'Chat over a WebSocket (see docs/api.md for the frames)',
        params: {
          type: 'object',
          required: ['id'],
          properties: { id: { type: 'string', minLength: 1, maxLength: 200 } },
        },
        response: errorResponses,
      },
      // Before the upgrade: a session that is not the caller's gets a plain 404, not a socket.
      preHandler: async (request) => {
        await chat.getSession(principalOf(request).userId, checkSessionId(request.params.id));
      },
    },
    (socket: WebSocket, request) => {
      const userId = principalOf(request).userId;
      const sessionId = request.params.id;
      let running: { turnId: string; controller: AbortController; keyed: boolean } | undefined;

      const send = (frame: Record<string, unknown>) => {
        if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(frame));
      };
      const sendError = (error: unknown, turnId?: string) => {
        const failure = toHttpError(error, context);
        if (failure.status >= 500) request.log.error({ err: error, turnId }, 'WebSocket turn failed');
        send({ type: 'error', ...(turnId === undefined ? {} : { turnId }), ...failure.body });
      };

      /** Streams a turn — a message's (`chat.stream`) or a regeneration — as frames. */
      function startTurn(start: StartTurn, keyed: boolean): void {
        const controller = new AbortController();
        const turn = start(
          {
            onDelta: (text) => send({ type: 'delta', turnId: turn.turnId, text }),
            onTool: (event) => send({ type: 'tool', turnId: turn.turnId, ...event }),
            // The node generating the reply died; another node answers again from the start.
            onRestart: () => send({ type: 'restart', turnId: turn.turnId }),
          },
          controller.signal,
        );
        running = { turnId: turn.turnId, controller, keyed };
        send({ type: 'start', turnId: turn.turnId, sessionId });
        turn.done.then(
          (message) => send({ type: 'end', turnId: turn.turnId, message }),
          (error: unknown) => sendError(error, turn.turnId),
        );
        void turn.done
          .catch(() => {})
          .finally(() => {
            if (running?.turnId === turn.turnId) running = undefined;
          });
      }

      socket.on('message', (data, isBinary) => {
        let frame: unknown;
        try {
          frame = JSON.parse(isBinary ? Buffer.from(data as Buffer).toString('utf8') : String(data));
        } catch {
          sendError(new ValidationError('a frame must be JSON: { "type": "message", "content": "…" }'));
          return;
        }
        if (!validateFrame(frame)) {
          sendError(
            new ValidationError(
              'a frame is { "type": "message", "content": string, "model"?, "temperature"?, "idempotencyKey"? (1 to 255 printable ASCII characters) }, { "type": "regenerate", "model"?, "temperature"? } or { "type": "cancel" }',
            ),
          );
          return;
        }
        if (frame.type === 'cancel') {
          running?.controller.abort();
          // A keyed turn outlives its caller's signal (a dropped socket must not cancel it): stop it by id.
          if (running?.keyed) void chat.cancel(running.turnId, userId).catch(() => {});
          return;
        }
        if (running !== undefined) {
          sendError(
            new ValidationError('a reply is still streaming: wait for its end, or send { "type": "cancel" }'),
          );
          return;
        }
        if (frame.type === 'regenerate') {
          const { type: _type, ...options } = frame;
          startTurn(
            (handlers, signal) =>
              chat.streamRegenerate({ userId, sessionId, ...options }, handlers, { signal }),
            false,
          );
          return;
        }
        const { type: _type, ...message } = frame;
        startTurn(
          (handlers, signal) => chat.stream({ userId, sessionId, ...message }, handlers, { signal }),
          message.idempotencyKey !== undefined,
        );
      });

      socket.on('close', () => running?.controller.abort());
    },
  );
}
