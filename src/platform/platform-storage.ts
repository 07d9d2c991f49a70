/**
 * The platform's storage as config describes it, built one way for the server and the CLI:
 * driver → meter (when an observer is given) → storage quota (unless `max_storage_per_user` is "0B") →
 * encryption (when master keys are set) → read cache, so the meter times only the backend, the quota
 * counts the bytes the backend holds, the driver sees only ciphertext of sensitive keys, and the cache
 * holds plaintext. Modules then get `scopeStorage` views of it.
 */

import { parseByteSize } from '../core/config-size.ts';
import type { PlatformConfig } from '../core/config-types.ts';
import type { StorageObserver } from '../core/observers.ts';
import { ENCRYPTION_STORAGE_ROOT } from '../security/data-keys.ts';
import {
  type EncryptionAtRest,
  isEncryptionOn,
  prepareEncryptionAtRest,
} from '../security/encryption-at-rest.ts';
import { createStorage } from '../storage/create-storage.ts';
import { meterStorage } from '../storage/metered.ts';
import { type QuotaStorage, quotaStorage } from '../storage/quota.ts';
import { scopeStorage } from '../storage/scoped.ts';
import { createSensitiveKeyMatcher, userKeyPrefixes } from '../storage/sensitive-keys.ts';
import type { Storage } from '../storage/types.ts';

/** The platform storage and, when it is on, encryption at rest (its data keys, for the CLI and admins). */
export interface PlatformStorage {
  storage: Storage;
  encryption: EncryptionAtRest | undefined;
  /** The per-user storage quota (usage, erasure); undefined when `max_storage_per_user` is "0B". */
  quota: QuotaStorage | undefined;
}

/** Builds the storage of `config`; `observerFor` gives the metrics and traces of a backend, if any. */
export async function createPlatformStorage(
  config: Readonly<PlatformConfig>,
  observerFor: (backend: string) => StorageObserver | undefined = () => undefined,
): Promise<PlatformStorage> {
  const encrypt = isEncryptionOn(config.security.encryption)
    ? prepareEncryptionAtRest(config.security.encryption)
    : undefined;
  const limitBytes = parseByteSize(config.resource_limits.max_storage_per_user);
  const recountAfterMs = config.resource_limits.storage_quota_recount_ms;
  // Whose bytes a key holds: the same {user} patterns that say whose data key seals it.
  const patterns = config.security.encryption.sensitive;
  const owners = limitBytes > 0 ? createSensitiveKeyMatcher(patterns) : undefined;
  let encryption: EncryptionAtRest | undefined;
  let quota: QuotaStorage | undefined;
  const storage = await createStorage(config.storage, {
    wrapDriver: (driver, backend) => {
      const observer = observerFor(backend);
      const metered = observer === undefined ? driver : meterStorage(driver, observer);
      if (owners !== undefined) {
        quota = quotaStorage(metered, {
          limitBytes,
          owners,
          prefixesOf: (userId) => userKeyPrefixes(patterns, userId),
          maxUsers: config.resource_limits.storage_quota_max_users,
          // Several nodes share the storage only over a networked bus: each must see the others' writes.
          ...(config.bus.transport !== 'local' && recountAfterMs > 0 ? { recountAfterMs } : {}),
        });
      }
      const counted = quota ?? metered;
      if (encrypt === undefined) return counted;
      // The data keys beside the quota, not through it: a data key made while a document is charged to its
      // owner is the platform's bytes, not theirs.
      encryption = encrypt(counted, scopeStorage(metered, ENCRYPTION_STORAGE_ROOT));
      return encryption.storage;
    },
  });
  return { storage, encryption, quota };
}
