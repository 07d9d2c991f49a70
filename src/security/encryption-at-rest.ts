/**
 * Encryption at rest put together from `security.encryption`: the master key ring, the data key store
 * (under `encryption/` of the platform storage) and the wrapper that seals sensitive keys. Off until a
 * master key is configured. The platform and the CLI both build storage through it
 * (platform/platform-storage.ts), so whatever writes sensitive data seals it the same way.
 */

import type { EncryptionConfig } from '../core/config-types.ts';
import { type EncryptedStorage, encryptStorage } from '../storage/encrypted.ts';
import { scopeStorage } from '../storage/scoped.ts';
import { createSensitiveKeyMatcher } from '../storage/sensitive-keys.ts';
import type { Storage } from '../storage/types.ts';
import { createDataKeyStore, type DataKeyStore, ENCRYPTION_STORAGE_ROOT } from './data-keys.ts';
import { createEnvelopeCipher } from './envelope-cipher.ts';
import { createMasterKeyRing, type MasterKeyRing } from './master-keys.ts';

/** Encryption at rest over one storage. */
export interface EncryptionAtRest {
  ring: MasterKeyRing;
  dataKeys: DataKeyStore;
  /** `storage` with the sensitive keys sealed (`storage` also holds the wrapped data keys). */
  storage: EncryptedStorage;
}

/** Whether config turns encryption at rest on: when at least one master key is set. */
export function isEncryptionOn(config: EncryptionConfig): boolean {
  return Object.keys(config.keys).length > 0;
}

/**
 * Checks `config` (CHAT_ERR_CONFIG_INVALID for malformed master keys or patterns) and returns what puts
 * encryption at rest over a storage (the driver, metered or not): the result's `storage` seals the keys
 * `config.sensitive` marks and keeps the wrapped data keys in `keyStorage` (default: its `encryption/`). Checking first means a bad
 * key stops startup before any backend is connected.
 */
export function prepareEncryptionAtRest(
  config: EncryptionConfig,
): (storage: Storage, keyStorage?: Storage) => EncryptionAtRest {
  const ring = createMasterKeyRing(config.keys, config.active_key_id);
  const sensitive = createSensitiveKeyMatcher(config.sensitive);
  return (storage, keyStorage = scopeStorage(storage, ENCRYPTION_STORAGE_ROOT)) => {
    const dataKeys = createDataKeyStore(keyStorage, {
      ring,
      cacheTtlMs: config.data_key_cache.ttl_ms,
      maxCached: config.data_key_cache.max_entries,
    });
    const sealed = encryptStorage(storage, {
      cipher: createEnvelopeCipher(dataKeys),
      sensitive,
      plaintextReads: config.plaintext_reads,
    });
    return { ring, dataKeys, storage: sealed };
  };
}
