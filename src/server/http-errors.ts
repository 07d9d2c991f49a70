/**
 * Every failure an HTTP client sees has one shape, `{ "error": { "code", "message" } }`, and the status of
 * its PlatformError code. Fastify's own 4xx errors (bad JSON, a body over the limit, a schema mismatch)
 * are translated here, so a client never gets a 500 for its own mistake.
 */

import type { FastifySchemaValidationError } from 'fastify';
import { isPlatformError, PlatformError, toPlatformError } from '../core/errors.ts';

/** The error body of every failed request. */
export interface ErrorBody {
  error: { code: string; message: string };
}

/** A failure ready to send: status, body and the headers it needs (Retry-After, WWW-Authenticate). */
export interface HttpError {
  status: number;
  body: ErrorBody;
  headers: Record<string, string>;
  /** The error as a PlatformError (for logging 5xx and for streams that carry it in a frame). */
  error: PlatformError;
}

/** What the translation needs to explain a rejected body. */
export interface HttpErrorContext {
  bodyLimitBytes: number;
}

interface FastifyLikeError {
  code?: unknown;
  statusCode?: unknown;
  message?: unknown;
}

function fastifyError(error: unknown, context: HttpErrorContext): PlatformError | undefined {
  if (typeof error !== 'object' || error === null || isPlatformError(error)) return undefined;
  const { code, statusCode, message } = error as FastifyLikeError;
  if (typeof statusCode !== 'number' || statusCode >= 500) return undefined;
  const text = typeof message === 'string' ? message : 'the request is not valid';
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new PlatformError(
      'CHAT_ERR_PAYLOAD_TOO_LARGE',
      `the request body is larger than the limit of ${context.bodyLimitBytes} bytes (server.body_limit_bytes)`,
      { details: { limit: context.bodyLimitBytes } },
    );
  }
  if (statusCode === 404) return new PlatformError('CHAT_ERR_NOT_FOUND', text);
  if (code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return new PlatformError('CHAT_ERR_VALIDATION_INVALID', 'the body is not valid JSON', { status: 400 });
  }
  // Schema mismatches already read "body/content must be string" (formatSchemaErrors below).
  return new PlatformError('CHAT_ERR_VALIDATION_INVALID', text, { status: statusCode });
}

/** Translates anything thrown while serving a request into what the client gets. */
export function toHttpError(error: unknown, context: HttpErrorContext): HttpError {
  const platformError = fastifyError(error, context) ?? toPlatformError(error);
  const headers: Record<string, string> = {};
  const retryAfter = platformError.details?.retryAfterSeconds;
  if (platformError.status === 429 || platformError.status === 503) {
    headers['retry-after'] = String(typeof retryAfter === 'number' ? Math.max(1, Math.ceil(retryAfter)) : 1);
  }
  if (platformError.status === 401) headers['www-authenticate'] = 'Bearer realm="parley"';
  return {
    status: platformError.status,
    body: { error: { code: platformError.code, message: platformError.message } },
    headers,
    error: platformError,
  };
}

/**
 * Turns schema errors into one readable sentence naming the field: `body/content must be string`,
 * `body has an unknown property "colour"`.
 */
export function formatSchemaErrors(errors: FastifySchemaValidationError[], dataVar: string): Error {
  const sentences = errors.map((error) => {
    const where = `${dataVar}${error.instancePath}`;
    const params = error.params as Record<string, unknown>;
    if (error.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') {
      return `${where} has an unknown property "${params.additionalProperty}"`;
    }
    return `${where} ${error.message ?? 'is not valid'}`;
  });
  const error = new Error(sentences.join('; ')) as Error & { statusCode: number; validation: unknown };
  error.statusCode = 400;
  error.validation = errors;
  return error;
}
