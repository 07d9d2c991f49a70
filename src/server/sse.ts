/**
 * Server-sent events over a Fastify reply. The stream starts lazily — headers go out with the first
 * event — so a turn that fails before producing anything (a 404 session, a 429, a message over the
 * limit) still answers with its real HTTP status and the JSON error body instead of a 200 stream
 * holding an error. A heartbeat comment starts the stream anyway when the model is slow to begin, so
 * proxies do not cut an idle connection.
 */

import type { FastifyReply } from 'fastify';

/** One SSE response. */
export interface SseStream {
  /** Whether headers were sent (after that, failures must travel as events). */
  readonly started: boolean;
  /** True once the client went away or `end` was called. */
  readonly closed: boolean;
  /** Writes `event: <name>` (omitted when undefined) and `data: <json or text>`. */
  send(name: string | undefined, data: unknown): void;
  /** Ends the response. */
  end(): void;
  /** Fires once, when the client disconnects before `end`. */
  onDisconnect(listener: () => void): void;
}

export interface SseOptions {
  /** Comment-line interval while nothing else is sent (server.sse_heartbeat_ms). */
  heartbeatMs: number;
}

/** Wraps `reply` as an SSE stream; nothing is written until the first event or heartbeat. */
export function createSseStream(reply: FastifyReply, options: SseOptions): SseStream {
  const raw = reply.raw;
  let lastWrite = Date.now();
  const disconnectListeners: Array<() => void> = [];

  function start(): void {
    if (stream.started || stream.closed) return;
    stream.started = true;
    reply.hijack();
    raw.writeHead(200, {
      ...(reply.getHeaders() as Record<string, string>),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // nginx buffers responses unless told not to.
      'x-accel-buffering': 'no',
    });
  }

  function write(text: string): void {
    start();
    if (stream.closed) return;
    lastWrite = Date.now();
    raw.write(text);
  }

  const heartbeat = setInterval(() => {
    if (Date.now() - lastWrite >= options.heartbeatMs) write(': keep-alive\n\n');
  }, options.heartbeatMs);
  heartbeat.unref();

  raw.once('close', () => {
    clearInterval(heartbeat);
    if (stream.closed) return;
    stream.closed = true;
    // 'close' before the response finished means the client hung up (not a JSON error sent instead).
    if (!raw.writableFinished) for (const listener of disconnectListeners) listener();
  });

  // `started` and `closed` are properties kept up to date, not getters
  // (lint/no-object-literal-accessor.grit).
  const stream: { -readonly [Key in keyof SseStream]: SseStream[Key] } = {
    started: false,
    closed: false,
    send(name, data) {
      const payload = typeof data === 'string' ? data : JSON.stringify(data);
      write(name === undefined ? `data: ${payload}\n\n` : `event: ${name}\ndata: ${payload}\n\n`);
    },
    end() {
      clearInterval(heartbeat);
      if (stream.closed) return;
      start();
      stream.closed = true;
      raw.end();
    },
    onDisconnect(listener) {
      disconnectListeners.push(listener);
    },
  };
  return stream;
}
