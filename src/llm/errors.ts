/**
 * Turns whatever a model call threw (the AI SDK's APICallError and RetryError, fetch's network errors,
 * abort and timeout DOMExceptions) into a PlatformError that says which provider failed, what happened and
 * what to do. Retries themselves are the AI SDK's (`maxRetries`); this only reports how many were made.
 */

import { APICallError, LoadAPIKeyError, NoSuchModelError } from '@ai-sdk/provider';
import { RetryError } from 'ai';
import { type ErrorCode, isPlatformError, PlatformError } from '../core/errors.ts';

/** What the caller knows about the failed call, to make the message actionable. */
export interface LlmErrorContext {
  /** The full "provider:model" name. */
  model: string;
  /** The provider's config name (`openai`, `ollama` …). */
  provider: string;
  /** Where the API key comes from, e.g. "OPENAI_API_KEY or llm.providers.openai.api_key". */
  keyHint?: string;
  /** The provider's base URL, when it has one. */
  baseUrl?: string;
  /** The idle timeout in force (`llm.request_timeout_ms`). */
  timeoutMs?: number;
  /** True when our own deadline aborted the call. */
  timedOut?: boolean;
  /** True when the caller's signal aborted the call. */
  cancelled?: boolean;
}

const NETWORK_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** The first network error code (ECONNREFUSED …) in an error's cause chain. */
function networkErrorCode(error: unknown, depth = 0): string | undefined {
  if (depth > 5 || typeof error !== 'object' || error === null) return undefined;
  const { code, cause, errors } = error as { code?: unknown; cause?: unknown; errors?: unknown };
  if (typeof code === 'string' && NETWORK_ERROR_CODES.has(code)) return code;
  if (Array.isArray(errors)) {
    for (const inner of errors) {
      const found = networkErrorCode(inner, depth + 1);
      if (found !== undefined) return found;
    }
  }
  return networkErrorCode(cause, depth + 1);
}

/** The message of the innermost cause (fetch's "bad port", a DNS failure …). */
function rootMessage(error: unknown): string | undefined {
  let current = error;
  for (let depth = 0; depth < 5 && current instanceof Error && current.cause instanceof Error; depth++) {
    current = current.cause;
  }
  return current instanceof Error && current !== error ? current.message : undefined;
}

function isAbort(error: unknown): boolean {
  return error instanceof Error && (error.name === 'AbortError' || error.name === 'TimeoutError');
}

/** Maps a failed model call to a PlatformError with a clear message; PlatformErrors pass through. */
export function toLlmError(error: unknown, context: LlmErrorContext): PlatformError {
  if (isPlatformError(error)) return error;
  let attempts = 1;
  let last = error;
  if (RetryError.isInstance(error)) {
    attempts = error.errors.length;
    last = error.lastError;
  }
  const who = `provider "${context.provider}" (model ${context.model})`;
  const details: Record<string, unknown> = { provider: context.provider, model: context.model, attempts };
  const make = (code: ErrorCode, message: string) =>
    new PlatformError(code, message, { details, cause: error });
  const tries = attempts > 1 ? ` after ${attempts} attempts` : '';

  if (context.timedOut === true || (last instanceof Error && last.name === 'TimeoutError')) {
    const within = context.timeoutMs === undefined ? 'in time' : `within ${context.timeoutMs} ms`;
    return make(
      'CHAT_ERR_LLM_TIMEOUT',
      `${who} did not answer ${within}; it is slow or stuck (raise llm.request_timeout_ms if the model is just slow)`,
    );
  }
  if (context.cancelled === true || isAbort(last)) {
    return make('CHAT_ERR_LLM_CANCELLED', `the call to ${who} was cancelled by the caller`);
  }
  const keyHint = context.keyHint ?? `llm.providers.${context.provider}.api_key`;
  if (LoadAPIKeyError.isInstance(last)) {
    return make('CHAT_ERR_LLM_AUTH', `${who} has no API key: set ${keyHint}`);
  }
  if (NoSuchModelError.isInstance(last)) {
    return make('CHAT_ERR_LLM_UNKNOWN_MODEL', `${who}: ${last.message}`);
  }
  if (APICallError.isInstance(last) && last.statusCode !== undefined) {
    const status = last.statusCode;
    details.statusCode = status;
    const said = last.message ? `: ${last.message}` : '';
    if (status === 429) {
      return make(
        'CHAT_ERR_LLM_RATE_LIMITED',
        `${who} is rate limiting parley (HTTP 429)${tries}${said}; wait a moment and try again, or raise the provider's rate limit or quota`,
      );
    }
    if (status === 401) {
      return make('CHAT_ERR_LLM_AUTH', `${who} rejected the API key (HTTP 401)${said}; check ${keyHint}`);
    }
    if (status === 403) {
      return make(
        'CHAT_ERR_LLM_AUTH',
        `${who} refused access (HTTP 403)${said}; check that the key in ${keyHint} may use this model`,
      );
    }
    if (status === 404) {
      return make(
        'CHAT_ERR_LLM_UNKNOWN_MODEL',
        `${who} does not know this model or endpoint (HTTP 404)${said}; check the model name and the base URL`,
      );
    }
    if (status === 408 || status === 504) {
      return make('CHAT_ERR_LLM_TIMEOUT', `${who} timed out on its side (HTTP ${status})${tries}${said}`);
    }
    if (status >= 500) {
      return make(
        'CHAT_ERR_LLM_PROVIDER_FAILED',
        `${who} failed (HTTP ${status})${tries}${said}; the provider has a problem, try again later`,
      );
    }
    return make('CHAT_ERR_LLM_PROVIDER_FAILED', `${who} refused the request (HTTP ${status})${said}`);
  }
  const networkCode = networkErrorCode(last);
  if (networkCode !== undefined || APICallError.isInstance(last)) {
    if (networkCode !== undefined) details.networkCode = networkCode;
    const where = context.baseUrl === undefined ? '' : ` at ${context.baseUrl}`;
    const reason = networkCode ?? rootMessage(last);
    const why = reason === undefined ? '' : ` (${reason})`;
    return make(
      'CHAT_ERR_LLM_UNAVAILABLE',
      `cannot reach ${who}${where}${why}${tries}; check that it is running and that the network and llm.providers.${context.provider}.base_url are right`,
    );
  }
  const message = last instanceof Error ? last.message : String(last);
  return make('CHAT_ERR_LLM_PROVIDER_FAILED', `${who} failed: ${message}`);
}
