/**
 * API keys: what a client sends as `Authorization: Bearer pk_…`. Only a SHA-256 hash of each key is
 * stored; the key itself is shown once, when created. Stored under the `keys/` root of the platform
 * storage: `keys/hashes/{sha256}.json` holds the record (so a request's key is checked with one read
 * of a file named by its hash), `keys/ids/{key_id}.json` → `{ hash }` finds it again by id for revoking.
 *
 * Why a fast hash: bcrypt, scrypt and argon2 are slow on purpose, to protect passwords people chose,
 * which are guessable. A key here is 256 random bits: no dictionary and no amount of hashing speed brings
 * a guess within reach, so SHA-256 protects it as well as argon2 would, at microseconds instead of
 * ~100 ms per request. A stolen `keys/` folder gives hashes that cannot be turned back into keys.
 */

import { createHash, randomBytes } from 'node:crypto';
import { newId } from '../core/ids.ts';
import { readJson, writeJson } from '../storage/json.ts';
import type { Storage } from '../storage/types.ts';

/** Every key starts with this, so a leaked one is recognisable (secret scanners, logs). */
export const API_KEY_PREFIX = 'pk_';
const KEY_BYTES = 32;
// pk_ + 32 bytes in base64url (43 characters, no padding).
const KEY_PATTERN = /^pk_[A-Za-z0-9_-]{43}$/;
const ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** One key as stored and listed (never the key itself). */
export interface ApiKeyRecord {
  id: string;
  userId: string;
  /** A label for the key ("laptop", "ci"). */
  name: string;
  /** The first characters of the key, so its owner can tell keys apart in a listing. */
  prefix: string;
  createdAt: string;
  revoked: boolean;
  revokedAt?: string;
}

/** A new key: `key` is shown to its owner once and never stored. */
export interface CreatedApiKey {
  key: string;
  record: ApiKeyRecord;
}

/** API keys by hash (for each request) and by id (for listing and revoking). */
export interface ApiKeyStore {
  /** Creates a key for `userId`. */
  create(userId: string, options?: { name?: string }): Promise<CreatedApiKey>;
  /** The record of `key` when it is well-formed, known and not revoked; otherwise `undefined`. */
  verify(key: string): Promise<ApiKeyRecord | undefined>;
  get(id: string): Promise<ApiKeyRecord | undefined>;
  /** Every key (or one user's), oldest first, revoked ones included. */
  list(filter?: { userId?: string }): Promise<ApiKeyRecord[]>;
  /** Marks the key revoked (it stops working at once on this node); `undefined` when there is none. */
  revoke(id: string): Promise<ApiKeyRecord | undefined>;
}

/** The SHA-256 hex digest a key is stored under. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/**
 * The first characters of a key, shown in listings so its owner can tell keys apart (and in the audit of
 * a refused one): `pk_` and 6 characters. Undefined for anything that is not shaped like our keys.
 */
export function apiKeyPrefix(key: string): string | undefined {
  return key.startsWith(API_KEY_PREFIX) ? key.slice(0, API_KEY_PREFIX.length + 6) : undefined;
}

/** A fresh random key: `pk_` and 256 random bits in base64url. */
export function generateApiKey(): string {
  return API_KEY_PREFIX + randomBytes(KEY_BYTES).toString('base64url');
}

/** The keys kept in `storage` (a view scoped to the `keys/` root). */
export function createApiKeyStore(storage: Storage): ApiKeyStore {
  const recordKey = (hash: string) => `hashes/${hash}.json`;
  const idKey = (id: string) => `ids/${id}.json`;

  async function hashOf(id: string): Promise<string | undefined> {
    if (!ID_PATTERN.test(id)) return undefined;
    return (await readJson<{ hash: string }>(storage, idKey(id)))?.hash;
  }

  return {
    async create(userId, options = {}) {
      const key = generateApiKey();
      const hash = hashApiKey(key);
      const record: ApiKeyRecord = {
        id: newId(),
        userId,
        name: options.name ?? 'default',
        prefix: apiKeyPrefix(key) ?? '',
        createdAt: new Date().toISOString(),
        revoked: false,
      };
      // The id index first: a crash between the two writes leaves an id that finds nothing, never a
      // working key that cannot be listed or revoked.
      await writeJson(storage, idKey(record.id), { hash });
      await writeJson(storage, recordKey(hash), record);
      return { key, record };
    },

    async verify(key) {
      if (!KEY_PATTERN.test(key)) return undefined;
      const record = await readJson<ApiKeyRecord>(storage, recordKey(hashApiKey(key)));
      return record === undefined || record.revoked ? undefined : record;
    },

    async get(id) {
      const hash = await hashOf(id);
      return hash === undefined ? undefined : await readJson<ApiKeyRecord>(storage, recordKey(hash));
    },

    async list(filter = {}) {
      const keys = await storage.list('hashes/');
      const records = await Promise.all(keys.map((key) => readJson<ApiKeyRecord>(storage, key)));
      return records
        .filter((record): record is ApiKeyRecord => record !== undefined)
        .filter((record) => filter.userId === undefined || record.userId === filter.userId)
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    },

    async revoke(id) {
      const hash = await hashOf(id);
      if (hash === undefined) return undefined;
      const record = await readJson<ApiKeyRecord>(storage, recordKey(hash));
      if (record === undefined) return undefined;
      if (record.revoked) return record;
      const revoked: ApiKeyRecord = { ...record, revoked: true, revokedAt: new Date().toISOString() };
      await writeJson(storage, recordKey(hash), revoked);
      return revoked;
    },
  };
}
