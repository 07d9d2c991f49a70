/**
 * Per-owner data keys: each user (and the platform, for sensitive data that names no user) gets random
 * AES-256 keys that seal its records; each is stored wrapped (AES-256-GCM) by the active master key, with
 * that master key's id, under the `encryption/` root of the platform storage:
 *
 *   encryption/data-keys/users/{user id}/{data key id}.json   { version, id, masterKeyId, wrapped, createdAt }
 *   encryption/data-keys/platform/{data key id}.json
 *
 * Each data key is a file of its own, written once under a fresh id, so two nodes making a user's first
 * key at the same moment both keep theirs (a shared file would lose one, and the records sealed with it).
 * New records use the newest live key. Shredding replaces a key's file by `{ version, id, shreddedAt }`:
 * the key is gone, and a read of what it sealed is CHAT_ERR_ENCRYPTION_DATA_SHREDDED rather than a puzzle.
 * Unwrapped keys are cached in memory (`cacheTtlMs`), so a chat turn costs no key read.
 */

import { type KeyObject, randomBytes } from 'node:crypto';
import { PlatformError } from '../core/errors.ts';
import { readJson, writeJson } from '../storage/json.ts';
import type { DataKeyOwner } from '../storage/sensitive-keys.ts';
import type { Storage } from '../storage/types.ts';
import { KEY_BYTES, openAesGcm, sealAesGcm, secretKey } from './aes-gcm.ts';
import type { MasterKeyRing } from './master-keys.ts';

/** The root, in the platform storage, of the wrapped data keys. */
export const ENCRYPTION_STORAGE_ROOT = 'encryption';

/** A usable data key: its id (written in every record it seals) and the key itself. */
export interface DataKey {
  id: string;
  key: KeyObject;
}

/** What re-wrapping did. */
export interface RewrapResult {
  /** Data keys now wrapped by the active master key that were wrapped by another. */
  rewrapped: number;
  /** Data keys that were wrapped by the active master key already. */
  alreadyActive: number;
}

/** How many live data keys each master key wraps, and how many were shredded. */
export interface DataKeyStatus {
  byMasterKey: Record<string, number>;
  shredded: number;
}

/** The data keys of every owner. */
export interface DataKeyStore {
  /**
   * The key `owner`'s new records are sealed with, made on first use. Synchronous when it is cached, so a
   * caller can keep the order of its writes without waiting a turn.
   */
  current(owner: DataKeyOwner): DataKey | Promise<DataKey>;
  /** The key with this id of `owner`; CHAT_ERR_ENCRYPTION_DATA_SHREDDED, _KEY_MISSING or _KEY_WRONG otherwise. */
  byId(owner: DataKeyOwner, id: string): KeyObject | Promise<KeyObject>;
  /** Destroys every data key of `owner`; resolves to how many were live. */
  shred(owner: DataKeyOwner): Promise<number>;
  /** Wraps every live data key by the active master key, so older master keys can be removed. */
  rewrap(): Promise<RewrapResult>;
  status(): Promise<DataKeyStatus>;
}

export interface DataKeyStoreOptions {
  ring: MasterKeyRing;
  /** How long an unwrapped key is kept in memory. A shred elsewhere takes effect here when it expires. */
  cacheTtlMs: number;
  /** The most keys kept in memory (the least recently loaded dropped first). */
  maxCached: number;
  now?: () => number;
}

interface LiveKeyFile {
  version: 1;
  id: string;
  masterKeyId: string;
  /** base64 of nonce | tag | wrapped key. */
  wrapped: string;
  createdAt: string;
}

interface ShreddedKeyFile {
  version: 1;
  id: string;
  shreddedAt: string;
}

type KeyFile = LiveKeyFile | ShreddedKeyFile;

const FOLDER = 'data-keys/';
const NONCE_AND_TAG = 12 + 16;

function isLive(file: KeyFile): file is LiveKeyFile {
  return 'wrapped' in file;
}

/** The folder of an owner's keys: a user id as one key segment (reversible, never `.` or `..`). */
function ownerFolder(owner: DataKeyOwner): string {
  if (owner.kind === 'platform') return `${FOLDER}platform/`;
  return `${FOLDER}users/${encodeURIComponent(owner.userId).replaceAll('.', '%2E')}/`;
}

/** A new data key id: creation time first (so the newest sorts last), then randomness. */
function newDataKeyId(now: number): string {
  return `${Math.floor(now).toString(16).padStart(12, '0')}${randomBytes(6).toString('hex')}`;
}

/** What a wrapped key is bound to: moved to another owner, id or master key id, it does not open. */
function wrapContext(folder: string, id: string, masterKeyId: string): Uint8Array {
  return Buffer.from(`parley data key v1\0${folder}\0${id}\0${masterKeyId}`);
}

/** The data keys kept in `storage` (a view of the `encryption/` root), wrapped by `ring`'s keys. */
export function createDataKeyStore(storage: Storage, options: DataKeyStoreOptions): DataKeyStore {
  const { ring, cacheTtlMs, maxCached } = options;
  const now = options.now ?? Date.now;
  // Cached keys by `folder + id`, and each owner's current key by its folder.
  const keys = new Map<string, { key: KeyObject; expiresAt: number }>();
  const currents = new Map<string, { dataKey: DataKey; expiresAt: number }>();
  // One lookup per owner at a time: a burst of first writes makes (at most) one key.
  const loadingCurrent = new Map<string, Promise<DataKey>>();

  function remember<V extends { expiresAt: number }>(cache: Map<string, V>, name: string, entry: V): void {
    cache.delete(name);
    cache.set(name, entry);
    while (cache.size > maxCached) cache.delete(cache.keys().next().value as string);
  }

  function cached<V extends { expiresAt: number }>(cache: Map<string, V>, name: string): V | undefined {
    const entry = cache.get(name);
    if (entry === undefined) return undefined;
    if (entry.expiresAt > now()) return entry;
    cache.delete(name);
    return undefined;
  }

  /** The raw bytes of a wrapped data key (what re-wrapping seals again). */
  function unwrapBytes(folder: string, file: LiveKeyFile): Uint8Array {
    const master = ring.get(file.masterKeyId);
    if (master === undefined) {
      throw new PlatformError(
        'CHAT_ERR_ENCRYPTION_KEY_MISSING',
        `data key ${file.id} is wrapped by master key "${file.masterKeyId}", which security.encryption.keys does not hold`,
        { details: { dataKeyId: file.id, masterKeyId: file.masterKeyId } },
      );
    }
    const sealed = Buffer.from(file.wrapped, 'base64');
    const key = openAesGcm(
      master,
      {
        nonce: sealed.subarray(0, 12),
        tag: sealed.subarray(12, NONCE_AND_TAG),
        ciphertext: sealed.subarray(NONCE_AND_TAG),
      },
      wrapContext(folder, file.id, file.masterKeyId),
    );
    if (key === undefined || key.length !== KEY_BYTES) {
      throw new PlatformError(
        'CHAT_ERR_ENCRYPTION_KEY_WRONG',
        `master key "${file.masterKeyId}" does not open data key ${file.id}: the configured key is not the one it was wrapped with, or the key file was altered`,
        { details: { dataKeyId: file.id, masterKeyId: file.masterKeyId } },
      );
    }
    return key;
  }

  function unwrap(folder: string, file: LiveKeyFile): KeyObject {
    return secretKey(unwrapBytes(folder, file));
  }

  function wrap(folder: string, id: string, key: Uint8Array, createdAt: string): LiveKeyFile {
    const masterKeyId = ring.activeId;
    const sealed = sealAesGcm(ring.get(masterKeyId)!, key, wrapContext(folder, id, masterKeyId));
    const wrapped = Buffer.concat([sealed.nonce, sealed.tag, sealed.ciphertext]).toString('base64');
    return { version: 1, id, masterKeyId, wrapped, createdAt };
  }

  async function loadCurrent(folder: string): Promise<DataKey> {
    // The newest live key, else a new one.
    const names = (await storage.list(folder)).filter((name) => name.endsWith('.json')).sort();
    for (const name of names.reverse()) {
      const file = await readJson<KeyFile>(storage, name);
      if (file !== undefined && isLive(file)) return { id: file.id, key: unwrap(folder, file) };
    }
    const id = newDataKeyId(now());
    const key = randomBytes(KEY_BYTES);
    await writeJson(storage, `${folder}${id}.json`, wrap(folder, id, key, new Date(now()).toISOString()));
    return { id, key: secretKey(key) };
  }

  function current(owner: DataKeyOwner): DataKey | Promise<DataKey> {
    const folder = ownerFolder(owner);
    const hit = cached(currents, folder);
    if (hit !== undefined) return hit.dataKey;
    let loading = loadingCurrent.get(folder);
    if (loading === undefined) {
      loading = loadCurrent(folder)
        .then((dataKey) => {
          const expiresAt = now() + cacheTtlMs;
          remember(currents, folder, { dataKey, expiresAt });
          remember(keys, folder + dataKey.id, { key: dataKey.key, expiresAt });
          return dataKey;
        })
        .finally(() => loadingCurrent.delete(folder));
      loadingCurrent.set(folder, loading);
    }
    return loading;
  }

  async function load(folder: string, id: string): Promise<KeyObject> {
    const file = /^[0-9a-f]{1,64}$/.test(id)
      ? await readJson<KeyFile>(storage, `${folder}${id}.json`)
      : undefined;
    if (file === undefined) {
      throw new PlatformError(
        'CHAT_ERR_ENCRYPTION_KEY_MISSING',
        `data key ${id} is not in storage (restore ${ENCRYPTION_STORAGE_ROOT}/ together with the data)`,
        { details: { dataKeyId: id } },
      );
    }
    if (!isLive(file)) {
      throw new PlatformError(
        'CHAT_ERR_ENCRYPTION_DATA_SHREDDED',
        `this data was encrypted with a data key destroyed at ${file.shreddedAt}; it cannot be read`,
        { details: { dataKeyId: id, shreddedAt: file.shreddedAt } },
      );
    }
    const key = unwrap(folder, file);
    remember(keys, folder + id, { key, expiresAt: now() + cacheTtlMs });
    return key;
  }

  return {
    current,
    byId(owner, id) {
      const folder = ownerFolder(owner);
      return cached(keys, folder + id)?.key ?? load(folder, id);
    },
    async shred(owner) {
      const folder = ownerFolder(owner);
      let destroyed = 0;
      const shreddedAt = new Date(now()).toISOString();
      for (const name of await storage.list(folder)) {
        const file = await readJson<KeyFile>(storage, name);
        if (file === undefined || !isLive(file)) continue;
        await writeJson(storage, name, { version: 1, id: file.id, shreddedAt } satisfies ShreddedKeyFile);
        destroyed += 1;
      }
      currents.delete(folder);
      for (const name of [...keys.keys()]) if (name.startsWith(folder)) keys.delete(name);
      return destroyed;
    },
    async rewrap() {
      const result: RewrapResult = { rewrapped: 0, alreadyActive: 0 };
      for (const name of await storage.list(FOLDER)) {
        const file = await readJson<KeyFile>(storage, name);
        if (file === undefined || !isLive(file)) continue;
        if (file.masterKeyId === ring.activeId) {
          result.alreadyActive += 1;
          continue;
        }
        const folder = name.slice(0, name.lastIndexOf('/') + 1);
        const key = unwrapBytes(folder, file);
        await writeJson(storage, name, wrap(folder, file.id, key, file.createdAt));
        result.rewrapped += 1;
      }
      return result;
    },
    async status() {
      const status: DataKeyStatus = { byMasterKey: {}, shredded: 0 };
      for (const name of await storage.list(FOLDER)) {
        const file = await readJson<KeyFile>(storage, name);
        if (file === undefined) continue;
        if (!isLive(file)) status.shredded += 1;
        else status.byMasterKey[file.masterKeyId] = (status.byMasterKey[file.masterKeyId] ?? 0) + 1;
      }
      return status;
    },
  };
}
