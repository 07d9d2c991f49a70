/**
 * Remembers, for a short while, which principal an API key authenticated as, so a client sending many
 * requests has its key hashed and its key and user records read once per `ttlMs` instead of on every
 * request (on a chat turn that was a fifth of the HTTP layer's CPU; over Redis or S3 it is two round
 * trips per request).
 *
 * Revocation still takes effect: a key revoked through this node (the keys route) is forgotten as the
 * revocation is stored, so its next request is refused at once. A key revoked elsewhere (another node, the
 * CLI on the same data folder) is refused once its entry expires, `ttlMs` at most (besides the storage read
 * cache's own bound, where that cache is on). Only successes are remembered: an unknown or malformed key
 * is looked up every time, so nothing a guesser sends fills the cache.
 */

import type { Auth, Principal } from '../security/auth.ts';

export interface PrincipalCacheOptions {
  /** How long an authenticated key is trusted without a lookup (server.auth.key_cache.ttl_ms); 0: never. */
  ttlMs: number;
  /** The most keys remembered; the oldest is forgotten beyond it (server.auth.key_cache.max_entries). */
  maxEntries: number;
  /** The clock, in milliseconds (default `Date.now`); tests inject their own. */
  now?: () => number;
}

interface Entry {
  principal: Principal;
  expiresAt: number;
}

/**
 * `auth` with `authenticate` answered from the cache while an entry is fresh, and `keys.revoke` that
 * forgets the revoked key. Use the returned Auth for every request and every revocation on this node.
 */
export function cachePrincipals(auth: Auth, options: PrincipalCacheOptions): Auth {
  const { ttlMs, maxEntries } = options;
  if (ttlMs <= 0 || maxEntries <= 0) return auth;
  const now = options.now ?? Date.now;
  // Insertion order is expiry order (every entry lives ttlMs from its insertion): the first entry is the
  // first to expire, and the one to forget when the cache is full.
  const entries = new Map<string, Entry>();
  // Bumped by every revocation: a lookup that was under way while one was stored may have read the record
  // before it changed, so it is not remembered.
  let revocations = 0;

  function remember(apiKey: string, principal: Principal): void {
    const time = now();
    entries.delete(apiKey);
    // Expired entries go as new ones come, so keys no longer used do not stay in memory.
    for (const [oldKey, entry] of entries) {
      if (entry.expiresAt > time && entries.size < maxEntries) break;
      entries.delete(oldKey);
    }
    entries.set(apiKey, { principal, expiresAt: time + ttlMs });
  }

  function forgetKey(keyId: string): void {
    revocations++;
    for (const [apiKey, entry] of entries) if (entry.principal.keyId === keyId) entries.delete(apiKey);
  }

  return {
    ...auth,
    keys: {
      ...auth.keys,
      async revoke(id) {
        try {
          return await auth.keys.revoke(id);
        } finally {
          // After the write (and also when it failed half-way): no lookup that read the old record stays.
          forgetKey(id);
        }
      },
    },
    async authenticate(apiKey) {
      if (apiKey !== undefined) {
        const entry = entries.get(apiKey);
        if (entry !== undefined) {
          if (entry.expiresAt > now()) return entry.principal;
          entries.delete(apiKey);
        }
      }
      const revocationsBefore = revocations;
      const principal = await auth.authenticate(apiKey);
      if (apiKey !== undefined && revocations === revocationsBefore) remember(apiKey, principal);
      return principal;
    },
  };
}
