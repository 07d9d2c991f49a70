/**
 * Authentication: who is calling. A request carries `Authorization: Bearer <api key>`; the key's hash
 * finds its record, the record names the user, the user has a role. Transport-neutral on purpose: the
 * HTTP server calls `authenticate` from one hook, and a later cookie session only adds another way to
 * find the key.
 */

import { isPlatformError, PlatformError, type PlatformErrorOptions } from '../core/errors.ts';
import { scopeStorage } from '../storage/scoped.ts';
import type { Storage } from '../storage/types.ts';
import { type ApiKeyStore, type CreatedApiKey, createApiKeyStore } from './api-keys.ts';
import type { AuditLog } from './audit-log.ts';
import { createUserStore, type User, type UserRole, type UserStore } from './users.ts';

/** The authenticated caller of a request. */
export interface Principal {
  userId: string;
  userName: string;
  role: UserRole;
  /** The API key the request came with. */
  keyId: string;
}

/** No key, or a key that is malformed, unknown, revoked, or whose user is gone. */
export class UnauthenticatedError extends PlatformError {
  constructor(message: string, options: PlatformErrorOptions = {}) {
    super('CHAT_ERR_AUTH_UNAUTHENTICATED', message, options);
    this.name = 'UnauthenticatedError';
  }
}

/** A valid key whose user lacks the role the route needs. */
export class ForbiddenError extends PlatformError {
  constructor(message: string, options: PlatformErrorOptions = {}) {
    super('CHAT_ERR_AUTH_FORBIDDEN', message, options);
    this.name = 'ForbiddenError';
  }
}

/** The users and keys of a platform, with the one way requests are authenticated. */
export interface Auth {
  users: UserStore;
  keys: ApiKeyStore;
  /** The principal of a credential (an API key); UnauthenticatedError when it is missing or not valid. */
  authenticate(apiKey: string | undefined): Promise<Principal>;
}

/** The storage roots of users and keys (documented in src/security/README.md). */
export const AUTH_STORAGE_ROOTS = { users: 'users', keys: 'keys' } as const;

/** The users and keys kept in the platform storage, under `users/` and `keys/`. */
export function createAuth(storage: Storage): Auth {
  const users = createUserStore(scopeStorage(storage, AUTH_STORAGE_ROOTS.users));
  const keys = createApiKeyStore(scopeStorage(storage, AUTH_STORAGE_ROOTS.keys));
  return {
    users,
    keys,
    async authenticate(apiKey) {
      if (apiKey === undefined || apiKey === '') {
        throw new UnauthenticatedError('send an API key: "Authorization: Bearer pk_…"');
      }
      const record = await keys.verify(apiKey);
      // One message for every failure: telling "revoked" from "unknown" would help a key guesser.
      const user = record === undefined ? undefined : await users.get(record.userId);
      if (record === undefined || user === undefined) {
        throw new UnauthenticatedError('the API key is not valid (unknown or revoked)');
      }
      return { userId: user.id, userName: user.name, role: user.role, keyId: record.id };
    },
  };
}

/** The key of `Authorization: Bearer <key>` (scheme case-insensitive), or `undefined`. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match?.[1];
}

/** Throws ForbiddenError unless `principal` has `role` (an admin has every role). */
export function requireRole(principal: Principal, role: UserRole): void {
  if (role === 'admin' && principal.role !== 'admin') {
    throw new ForbiddenError('this route needs the admin role');
  }
}

/** The admin user made on a first start, with its one-time key. */
export interface BootstrapResult {
  user: User;
  apiKey: CreatedApiKey;
}

/**
 * The first-start admin's id, the same on every node: nodes started at the same moment on empty shared
 * storage (which has no create-if-absent write to settle who is first) then all write the one admin
 * record, each with a key of its own, rather than one admin each.
 */
export const BOOTSTRAP_ADMIN_ID = '00000000-0000-7000-8000-000000000001';

/**
 * On a platform with no users, creates the user `admin` and a key for it (recorded in `audit`, when
 * given); otherwise does nothing and returns `undefined`. The caller shows the key once: only its hash is
 * kept.
 */
export async function bootstrapAdmin(
  auth: Auth,
  audit?: AuditLog,
  name = 'admin',
): Promise<BootstrapResult | undefined> {
  if (await auth.users.hasAny()) return undefined;
  let user: User;
  try {
    user = await auth.users.create({ id: BOOTSTRAP_ADMIN_ID, name, role: 'admin' });
  } catch (error) {
    // Another node made it between the check and the create: it shows its key, this one none.
    if (isPlatformError(error, 'CHAT_ERR_CONFLICT')) return undefined;
    throw error;
  }
  const apiKey = await auth.keys.create(user.id, { name: 'bootstrap' });
  const actor = { type: 'system' } as const;
  await audit?.record({
    actor,
    action: 'user.created',
    target: { userId: user.id, name },
    details: { role: 'admin' },
  });
  await audit?.record({ actor, action: 'key.created', target: { keyId: apiKey.record.id, userId: user.id } });
  return { user, apiKey };
}
