/**
 * What a client gets when its request never became one Fastify could route: it took longer than
 * `server.request_timeout_ms` to arrive (a slow-loris client holding a connection and a request slot), its
 * headers were too large, or it was not HTTP. Node reports these as `clientError` on the socket; Fastify's
 * own answer has another body shape, so this one answers with the API's `{ "error": { code, message } }`.
 */

import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { PlatformError } from '../core/errors.ts';

/** The error a socket-level failure is answered with. */
function clientFailure(error: NodeJS.ErrnoException, requestTimeoutMs: number): PlatformError {
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return new PlatformError(
      'CHAT_ERR_REQUEST_TIMEOUT',
      `the request was not received whole within ${requestTimeoutMs} ms (server.request_timeout_ms)`,
    );
  }
  if (error.code === 'HPE_HEADER_OVERFLOW') {
    return new PlatformError('CHAT_ERR_HEADERS_TOO_LARGE', 'the request headers are too large');
  }
  return new PlatformError('CHAT_ERR_VALIDATION_INVALID', 'the request is not valid HTTP/1.1');
}

/** A Fastify `clientErrorHandler` answering in the API's error shape, then closing the connection. */
export function createClientErrorHandler(requestTimeoutMs: number) {
  return (error: NodeJS.ErrnoException, socket: Socket): void => {
    // A reset connection, or one already closed: nobody is left to answer.
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    const failure = clientFailure(error, requestTimeoutMs);
    const body = JSON.stringify({ error: { code: failure.code, message: failure.message } });
    if (socket.writable) {
      socket.write(
        `HTTP/1.1 ${failure.status} ${STATUS_CODES[failure.status]}\r\n` +
          `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy();
  };
}
