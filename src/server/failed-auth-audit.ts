import type { FastifyRequest } from 'fastify';
import { apiKeyPrefix } from '../security/api-keys.ts';
import type { AuditLog } from '../security/audit-log.ts';
import { bearerToken } from '../security/auth.ts';

/** One refused credential: where it came from, what it was used for, and why it was refused. */
export interface FailedAuthentication {
  /** The client's address (`request.ip`: the socket's peer, so behind a proxy the proxy's). */
  ip: string;
  /** The method and route pattern (`POST /v1/sessions/:id/messages`), or the URL path without a match. */
  route: string;
  /** The key's public prefix (`pk_` and 6 characters) when one was sent; never the key. */
  keyPrefix?: string;
  /** The refusal's message (no key, or an unknown or revoked key). */
  reason: string;
}

/**
 * What a refused request tells of itself, when it sent a key (the bearer one, or the web sign-in's): a
 * request that sent none — a browser, a probe, an expired web session — is not an attempt to get in.
 */
export function failedAuthentication(
  request: FastifyRequest,
  error: Error,
): FailedAuthentication | undefined {
  const body = request.body as { apiKey?: unknown } | undefined;
  const sent =
    bearerToken(request.headers.authorization) ??
    (typeof body?.apiKey === 'string' ? body.apiKey.trim() : undefined);
  if (sent === undefined) return undefined;
  const keyPrefix = apiKeyPrefix(sent);
  return {
    ip: request.ip,
    route: `${request.method} ${request.routeOptions.url ?? request.url.split('?', 1)[0]}`,
    ...(keyPrefix === undefined ? {} : { keyPrefix }),
    reason: error.message,
  };
}

export interface FailedAuthAudit {
  /** Notes a refused credential (401). */
  failed(attempt: FailedAuthentication): void;
  /** Writes the counts not yet written (server shutdown). */
  flush(): Promise<void>;
}

/** How long the failures of one address are gathered into one audit entry. */
export const FAILED_AUTH_WINDOW_MS = 60_000;
/** Addresses recorded one by one per window; the failures of any further ones go into one entry. */
const MAX_ADDRESSES_PER_WINDOW = 100;

interface Gathered {
  first: FailedAuthentication;
  firstAt: string;
  /** Failures after the first, not yet written. */
  more: number;
}

/**
 * Refused credentials (401) in the audit log: `auth.failed`, with the address, the route, the key's
 * public prefix when one was sent, and why. An address's first failure is written at once; its further
 * failures within `FAILED_AUTH_WINDOW_MS` are counted and written as one `auth.failed` entry with
 * `details.count` when the window ends — so a client guessing keys shows as a few lines a minute, not as
 * one write per request it makes. Beyond `MAX_ADDRESSES_PER_WINDOW` addresses in one window (many
 * clients at once), the rest are counted together into one entry. The audit log is durable storage: a
 * flood of bad requests must not turn into a flood of writes.
 */
export function createFailedAuthAudit(
  audit: AuditLog,
  onError: (error: unknown) => void,
  options: { windowMs?: number; now?: () => string } = {},
): FailedAuthAudit {
  const windowMs = options.windowMs ?? FAILED_AUTH_WINDOW_MS;
  const now = options.now ?? (() => new Date().toISOString());
  let byAddress = new Map<string, Gathered>();
  let overflow = 0;
  let timer: NodeJS.Timeout | undefined;
  const writes = new Set<Promise<unknown>>();

  function write(attempt: FailedAuthentication, details?: Record<string, unknown>): void {
    const { ip, route, keyPrefix, reason } = attempt;
    const written = audit
      .record({
        actor: { type: 'system', name: 'http' },
        action: 'auth.failed',
        target: { ip, route, ...(keyPrefix === undefined ? {} : { keyPrefix }) },
        details: { reason, ...details },
      })
      .catch(onError)
      .finally(() => writes.delete(written));
    writes.add(written);
  }

  /** Writes the counts of the window that ended, and starts afresh. */
  function closeWindow(): void {
    timer = undefined;
    const ended = byAddress;
    const overflowed = overflow;
    byAddress = new Map();
    overflow = 0;
    for (const { first, firstAt, more } of ended.values()) {
      if (more > 0) write(first, { count: more, since: firstAt });
    }
    if (overflowed > 0) {
      write(
        { ip: 'many', route: 'any', reason: 'failures from more addresses than are recorded one by one' },
        { count: overflowed },
      );
    }
  }

  return {
    failed(attempt) {
      timer ??= setTimeout(closeWindow, windowMs).unref();
      const gathered = byAddress.get(attempt.ip);
      if (gathered !== undefined) {
        gathered.more++;
        return;
      }
      if (byAddress.size >= MAX_ADDRESSES_PER_WINDOW) {
        overflow++;
        return;
      }
      byAddress.set(attempt.ip, { first: attempt, firstAt: now(), more: 0 });
      write(attempt);
    },
    async flush() {
      clearTimeout(timer);
      closeWindow();
      await Promise.all(writes);
    },
  };
}
