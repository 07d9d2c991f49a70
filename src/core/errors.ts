/**
 * The one error type of the platform. Every error that crosses the bus or HTTP is a PlatformError with a
 * stable `code` (CHAT_ERR_<AREA>_<WHAT>), an HTTP `status`, optional `details`, and `toJSON()` so it
 * survives serialisation. Every code is listed in docs/errors.md (a test checks that).
 */

/** Every stable error code, with the HTTP status it maps to and a one-line meaning. */
export const ERROR_CODES = {
  CHAT_ERR_INTERNAL: {
    status: 500,
    meaning: 'An unexpected failure inside parley; the log has the details.',
  },
  CHAT_ERR_VALIDATION_INVALID: { status: 400, meaning: 'The input does not match the expected shape.' },
  CHAT_ERR_NOT_FOUND: { status: 404, meaning: 'The resource does not exist, or is not yours.' },
  CHAT_ERR_BUS_TIMEOUT: { status: 504, meaning: 'No reply arrived within the request timeout.' },
  CHAT_ERR_BUS_NO_HANDLER: { status: 503, meaning: 'No handler is subscribed to the requested event type.' },
  CHAT_ERR_BUS_HANDLER_FAILED: { status: 500, meaning: 'A handler threw while handling an event.' },
  CHAT_ERR_BUS_CLOSED: { status: 503, meaning: 'The bus has been closed (the node is shutting down).' },
  CHAT_ERR_BUS_UNAVAILABLE: {
    status: 503,
    meaning: 'The message broker (NATS) cannot be reached or did not confirm in time; retry shortly.',
  },
  CHAT_ERR_SECURITY_ACCESS_DENIED: {
    status: 403,
    meaning: 'A module called something outside the capabilities it was granted.',
  },
  CHAT_ERR_CONFIG_INVALID: { status: 500, meaning: 'A configuration value failed schema validation.' },
  CHAT_ERR_CONFIG_UNREADABLE: {
    status: 500,
    meaning: 'A configuration file is not valid JSON or not readable.',
  },
  CHAT_ERR_CONFIG_MISSING_ENV: {
    status: 500,
    meaning: 'A config value references an environment variable that is not set.',
  },
  CHAT_ERR_MODULE_NOT_FOUND: { status: 500, meaning: 'A configured module has no implementation.' },
  CHAT_ERR_MODULE_MISSING_DEPENDENCY: {
    status: 500,
    meaning: 'An enabled module requires a module that is not enabled.',
  },
  CHAT_ERR_MODULE_DEPENDENCY_CYCLE: { status: 500, meaning: 'Module dependencies form a cycle.' },
  CHAT_ERR_MODULE_SETUP_TIMEOUT: {
    status: 500,
    meaning: 'A module did not finish setup within its timeout.',
  },
  CHAT_ERR_MODULE_SETUP_FAILED: { status: 500, meaning: 'A module threw during setup.' },
  CHAT_ERR_MODULE_INVALID: {
    status: 500,
    meaning:
      'A module folder (src/modules or module_dirs) does not default-export a valid defineModule(...) named after the folder, or its name is taken by another module.',
  },
  CHAT_ERR_MODULE_WORKER_FAILED: {
    status: 503,
    meaning:
      'The worker of an isolated module (isolation: "worker") ran out of memory (resource_limits.max_memory_per_module), threw or exited; calls in flight fail and it is restarted with backoff.',
  },
  CHAT_ERR_MODULE_ISOLATION: {
    status: 500,
    meaning:
      'A call cannot cross the worker boundary of an isolated module: a payload or result that is not structured-clone-able, or getModule, which isolated modules do not have.',
  },
  CHAT_ERR_STORAGE_FULL: {
    status: 507,
    meaning:
      "The storage has no room left (the flatfile backend's disk, the user's disk quota, or Redis at its maxmemory): an operator must free space; retry later. What the request would have stored was not.",
  },
  CHAT_ERR_STORAGE_INVALID_KEY: {
    status: 400,
    meaning: 'A storage key is empty, absolute, or contains "..", NUL or a backslash.',
  },
  CHAT_ERR_STORAGE_UNAVAILABLE: { status: 503, meaning: 'The storage backend cannot be reached right now.' },
  CHAT_ERR_STORAGE_FAILED: { status: 500, meaning: 'The storage backend failed an operation.' },
  CHAT_ERR_STORAGE_QUOTA_EXCEEDED: {
    status: 413,
    meaning:
      "Storing this would take the user's stored data past resource_limits.max_storage_per_user (chats, long-term memory, documents and their indexes): delete some, or an admin raises the limit. 413 rather than 507: it is this user's request that is too large for their room, not the server that is out of space, and retrying the same request will not help.",
  },
  CHAT_ERR_ENCRYPTION_KEY_MISSING: {
    status: 500,
    meaning:
      'Encrypted data names a master key id that security.encryption.keys does not hold, or a data key that is not in storage (encryption/ was not restored with the data).',
  },
  CHAT_ERR_ENCRYPTION_KEY_WRONG: {
    status: 500,
    meaning:
      'The master key configured under a key id does not open the data key wrapped with that id (a different key under the same id, or an altered data key file).',
  },
  CHAT_ERR_ENCRYPTION_RECORD_INVALID: {
    status: 500,
    meaning:
      'An encrypted record failed its integrity check (altered, truncated or moved), or sensitive data is stored in plaintext while security.encryption.plaintext_reads is off.',
  },
  CHAT_ERR_ENCRYPTION_DATA_SHREDDED: {
    status: 410,
    meaning:
      "The data was encrypted with a user's data key that has been destroyed (crypto-shredded); it cannot be read.",
  },
  CHAT_ERR_LLM_PROVIDER_FAILED: {
    status: 502,
    meaning: 'The model provider returned an error or an unusable response.',
  },
  CHAT_ERR_LLM_RATE_LIMITED: {
    status: 429,
    meaning: 'The model provider kept answering 429 (rate limit or quota) after the configured retries.',
  },
  CHAT_ERR_LLM_AUTH: {
    status: 502,
    meaning: 'The model provider rejected the API key, or no key is configured for it.',
  },
  CHAT_ERR_LLM_TIMEOUT: { status: 504, meaning: 'The model did not answer within llm.request_timeout_ms.' },
  CHAT_ERR_LLM_UNAVAILABLE: {
    status: 503,
    meaning: 'The model provider cannot be reached, or the local runtime or model file is missing.',
  },
  CHAT_ERR_LLM_UNKNOWN_MODEL: {
    status: 400,
    meaning: 'The "provider:model" name names no configured provider or model.',
  },
  CHAT_ERR_LLM_CANCELLED: {
    status: 499,
    meaning: 'The caller cancelled the model call (the client went away or stopped the reply).',
  },
  CHAT_ERR_TURN_LOST: {
    status: 503,
    meaning:
      'The node generating the reply stopped answering (text_chat.turn_recovery) and no other node could finish it; the user message is stored, send again.',
  },
  CHAT_ERR_AGENT_CONVERSATION_INTERRUPTED: {
    status: 503,
    meaning:
      'An agent conversation stopped without finishing: the node running it stopped or crashed mid-way, or its end could not be stored (multi_agent.interrupted_after_ms without a change); its transcript so far is kept: start it again.',
  },
  CHAT_ERR_RATE_LIMITED: {
    status: 429,
    meaning:
      'Too many messages from one user in the last minute; details.retryAfterSeconds says when to retry.',
  },
  CHAT_ERR_AUTH_UNAUTHENTICATED: {
    status: 401,
    meaning: 'No API key was sent, or the key is unknown or revoked.',
  },
  CHAT_ERR_AUTH_FORBIDDEN: {
    status: 403,
    meaning: 'The API key is valid but its user lacks the role (admin).',
  },
  CHAT_ERR_PAYLOAD_TOO_LARGE: {
    status: 413,
    meaning:
      'The request body (or WebSocket frame) is larger than server.body_limit_bytes; an upload is larger than server.upload_limit_bytes or rag.max_document_bytes, or has more than server.upload_max_files files; a document decompresses to more than rag.max_uncompressed_bytes or has more than rag.max_archive_entries archive entries.',
  },
  CHAT_ERR_CONFLICT: { status: 409, meaning: 'The resource already exists (a user name that is taken).' },
  CHAT_ERR_IDEMPOTENCY_KEY_REUSED: {
    status: 422,
    meaning:
      'The Idempotency-Key was already used for a different message in this session; send a new message with a new key.',
  },
  CHAT_ERR_NOTHING_TO_REGENERATE: {
    status: 409,
    meaning: 'Regenerate needs a user message to answer again, and the session has none yet: send a message.',
  },
  CHAT_ERR_TURN_IN_PROGRESS: {
    status: 409,
    meaning:
      'A reply is still being generated in this session (a regeneration waits for it, a message waits for a regeneration): wait for its end, or cancel it.',
  },
  CHAT_ERR_USER_ERASE_INCOMPLETE: {
    status: 503,
    meaning:
      "Some module could not erase the user's data (it failed or did not answer in time); the user's keys are revoked and the user is kept: send the DELETE again.",
  },
  CHAT_ERR_TOO_MANY_CONCURRENT_REQUESTS: {
    status: 429,
    meaning:
      'The user has resource_limits.max_concurrent_requests_per_user requests open on this node already (streams and WebSockets included); retry when one has ended.',
  },
  CHAT_ERR_REQUEST_TIMEOUT: {
    status: 408,
    meaning:
      'The client took longer than server.request_timeout_ms to send its whole request; the connection is closed.',
  },
  CHAT_ERR_HEADERS_TOO_LARGE: {
    status: 431,
    meaning: "The request's headers are larger than the server accepts.",
  },
  CHAT_ERR_SERVER_BUSY: {
    status: 503,
    meaning: 'The node is serving resource_limits.max_concurrent_requests requests already; retry shortly.',
  },
  CHAT_ERR_RAG_EMBEDDING_MISMATCH: {
    status: 409,
    meaning:
      'The stored vector index was built with another embedding model or dimension than the one configured; run `parley rag reindex`.',
  },
  CHAT_ERR_RAG_INDEX_CORRUPT: {
    status: 500,
    meaning:
      'A stored vector index is unreadable or its files disagree (a torn write); run `parley rag reindex`.',
  },
  CHAT_ERR_DOCUMENT_UNSUPPORTED_TYPE: {
    status: 415,
    meaning:
      'The uploaded document is of a type rag does not read (it reads text, Markdown, HTML, PDF, DOCX).',
  },
  CHAT_ERR_DOCUMENT_UNREADABLE: {
    status: 422,
    meaning:
      'The document could not be parsed as its type (corrupt, encrypted, not UTF-8, or no text in it).',
  },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface PlatformErrorOptions {
  details?: Record<string, unknown>;
  cause?: unknown;
  status?: number;
}

/** The serialised form of a PlatformError, as it travels over the bus and HTTP. */
export interface PlatformErrorJSON {
  code: string;
  message: string;
  status: number;
  details?: Record<string, unknown>;
}

/** Base error of the platform: stable code, HTTP status, details, cause. */
export class PlatformError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: PlatformErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PlatformError';
    this.code = code;
    this.status = options.status ?? ERROR_CODES[code].status;
    this.details = options.details;
  }

  toJSON(): PlatformErrorJSON {
    const json: PlatformErrorJSON = { code: this.code, message: this.message, status: this.status };
    if (this.details !== undefined) json.details = this.details;
    return json;
  }
}

/** No reply within the timeout of a `request`. */
export class TimeoutError extends PlatformError {
  constructor(message: string, options: PlatformErrorOptions = {}) {
    super('CHAT_ERR_BUS_TIMEOUT', message, options);
    this.name = 'TimeoutError';
  }
}

/** Nobody handles the requested event type. */
export class NoHandlerError extends PlatformError {
  constructor(message: string, options: PlatformErrorOptions = {}) {
    super('CHAT_ERR_BUS_NO_HANDLER', message, options);
    this.name = 'NoHandlerError';
  }
}

/** A module called something outside its granted capabilities. */
export class AccessDeniedError extends PlatformError {
  constructor(message: string, options: PlatformErrorOptions = {}) {
    super('CHAT_ERR_SECURITY_ACCESS_DENIED', message, options);
    this.name = 'AccessDeniedError';
  }
}

/** Input that does not match the expected shape. */
export class ValidationError extends PlatformError {
  constructor(message: string, options: PlatformErrorOptions = {}) {
    super('CHAT_ERR_VALIDATION_INVALID', message, options);
    this.name = 'ValidationError';
  }
}

/** A missing resource, or one the caller may not see (the two are indistinguishable on purpose). */
export class NotFoundError extends PlatformError {
  constructor(message: string, options: PlatformErrorOptions = {}) {
    super('CHAT_ERR_NOT_FOUND', message, options);
    this.name = 'NotFoundError';
  }
}

/** The storage backend cannot be reached. */
export class StorageUnavailableError extends PlatformError {
  constructor(message: string, options: PlatformErrorOptions = {}) {
    super('CHAT_ERR_STORAGE_UNAVAILABLE', message, options);
    this.name = 'StorageUnavailableError';
  }
}

/** True when `error` is a PlatformError (optionally with the given code). */
export function isPlatformError(error: unknown, code?: ErrorCode): error is PlatformError {
  return error instanceof PlatformError && (code === undefined || error.code === code);
}

/** True when `error` is an AccessDeniedError. */
export function isAccessDenied(error: unknown): error is AccessDeniedError {
  return isPlatformError(error, 'CHAT_ERR_SECURITY_ACCESS_DENIED');
}

/** Rebuilds a PlatformError from its JSON form (an error that crossed the bus or HTTP). */
export function errorFromJSON(json: PlatformErrorJSON): PlatformError {
  const code = (json.code in ERROR_CODES ? json.code : 'CHAT_ERR_INTERNAL') as ErrorCode;
  const options: PlatformErrorOptions = { status: json.status };
  if (json.details !== undefined) options.details = json.details;
  switch (code) {
    case 'CHAT_ERR_BUS_TIMEOUT':
      return new TimeoutError(json.message, options);
    case 'CHAT_ERR_BUS_NO_HANDLER':
      return new NoHandlerError(json.message, options);
    case 'CHAT_ERR_SECURITY_ACCESS_DENIED':
      return new AccessDeniedError(json.message, options);
    case 'CHAT_ERR_VALIDATION_INVALID':
      return new ValidationError(json.message, options);
    case 'CHAT_ERR_NOT_FOUND':
      return new NotFoundError(json.message, options);
    case 'CHAT_ERR_STORAGE_UNAVAILABLE':
      return new StorageUnavailableError(json.message, options);
    default:
      return new PlatformError(code, json.message, options);
  }
}

/** Wraps any thrown value as a PlatformError, keeping the original as `cause`. */
export function toPlatformError(error: unknown): PlatformError {
  if (error instanceof PlatformError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new PlatformError('CHAT_ERR_INTERNAL', message, { cause: error });
}
