/**
 * Browser sessions of the web client. The browser gives its API key once, to the login route, and gets a
 * random session token in an HttpOnly cookie instead, so the key never sits where page scripts could read
 * it. Server-side state, under the `web_sessions/` root of the platform storage (any node reads it):
 * `web_sessions/{sha256(token)}.json` → `{ userId, keyId, createdAt, expiresAt }`. Only the hash of a
 * token is stored, as for API keys: a copy of the folder logs nobody in. A session carries the id of the
 * key it was opened with, so revoking that key (or deleting the user) ends the session too.
 */

import { createHash, randomBytes } from 'node:crypto';
import type { Principal } from '../security/auth.ts';
import { scopeStorage } from '../storage/scoped.ts';
import type { Storage } from '../storage/types.ts';

/** The storage root of browser sessions. */
export const WEB_SESSIONS_ROOT = 'web_sessions';

/** How long a browser session lasts when config says nothing: 7 days. */
export const DEFAULT_WEB_SESSION_TTL_HOURS = 168;

const TOKEN_BYTES = 32;
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;
// Expired records that nobody presents again are removed by a sweep, at most this often.
const SWEEP_INTERVAL_MS = 60 * 60 * 1000;

/** One stored browser session (never the token). */
export interface WebSessionRecord {
  userId: string;
  keyId: string;
  createdAt: string;
  expiresAt: string;
}

/** A session just opened: `token` goes into the cookie and is never stored. */
export interface OpenedWebSession {
  token: string;
  record: WebSessionRecord;
}

/** What resolves a principal from the API key behind a session (src/security/auth's stores). */
export interface WebSessionAuth {
  users: { get(id: string): Promise<{ id: string; name: string; role: Principal['role'] } | undefined> };
  keys: { get(id: string): Promise<{ id: string; userId: string; revoked: boolean } | undefined> };
}

/** Browser sessions: open one for a principal, find the principal of a token, close one. */
export interface WebSessionStore {
  /** Opens a session for the caller authenticated by an API key. */
  open(principal: Principal): Promise<OpenedWebSession>;
  /**
   * The principal of a token: `undefined` when the token is malformed, unknown or expired, or when its
   * key was revoked or its user deleted since.
   */
  resolve(token: string): Promise<Principal | undefined>;
  /** Ends a session; `false` when there was none. */
  close(token: string): Promise<boolean>;
  /** The session lifetime in seconds (the cookie's Max-Age). */
  readonly ttlSeconds: number;
}

export interface WebSessionStoreOptions {
  /** Lifetime of a session from login (server.auth.web_session_ttl_hours). */
  ttlHours?: number;
  /** The clock (tests). */
  now?: () => number;
}

/** The SHA-256 hex digest a session token is stored under. */
export function hashWebSessionToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The browser sessions kept in `storage` (the platform storage; the store scopes it to its root). */
export function createWebSessionStore(
  storage: Storage,
  auth: WebSessionAuth,
  options: WebSessionStoreOptions = {},
): WebSessionStore {
  const sessions = scopeStorage(storage, WEB_SESSIONS_ROOT);
  const ttlHours = options.ttlHours ?? DEFAULT_WEB_SESSION_TTL_HOURS;
  const ttlMs = ttlHours * 60 * 60 * 1000;
  const now = options.now ?? Date.now;
  const recordKey = (token: string) => `${hashWebSessionToken(token)}.json`;
  let lastSweep = 0;

  async function readRecord(key: string): Promise<WebSessionRecord | undefined> {
    const bytes = await sessions.read(key);
    if (bytes === undefined) return undefined;
    try {
      return JSON.parse(decoder.decode(bytes)) as WebSessionRecord;
    } catch {
      return undefined;
    }
  }

  // Runs in the background of a login; a failed sweep only leaves dead records for the next one.
  async function sweep(): Promise<void> {
    const time = now();
    if (time - lastSweep < SWEEP_INTERVAL_MS) return;
    lastSweep = time;
    for (const key of await sessions.list('')) {
      const record = await readRecord(key);
      if (record === undefined || Date.parse(record.expiresAt) <= time) await sessions.delete(key);
    }
  }

  return {
    ttlSeconds: Math.floor(ttlMs / 1000),

    async open(principal) {
      const token = randomBytes(TOKEN_BYTES).toString('base64url');
      const created = now();
      const record: WebSessionRecord = {
        userId: principal.userId,
        keyId: principal.keyId,
        createdAt: new Date(created).toISOString(),
        expiresAt: new Date(created + ttlMs).toISOString(),
      };
      await sessions.write(recordKey(token), encoder.encode(JSON.stringify(record)));
      void sweep().catch(() => {});
      return { token, record };
    },

    async resolve(token) {
      if (!TOKEN_PATTERN.test(token)) return undefined;
      const key = recordKey(token);
      const record = await readRecord(key);
      if (record === undefined) return undefined;
      if (Date.parse(record.expiresAt) <= now()) {
        await sessions.delete(key);
        return undefined;
      }
      const [apiKey, user] = await Promise.all([auth.keys.get(record.keyId), auth.users.get(record.userId)]);
      if (apiKey === undefined || apiKey.revoked || apiKey.userId !== record.userId || user === undefined) {
        return undefined;
      }
      return { userId: user.id, userName: user.name, role: user.role, keyId: apiKey.id };
    },

    async close(token) {
      if (!TOKEN_PATTERN.test(token)) return false;
      return sessions.delete(recordKey(token));
    },
  };
}
