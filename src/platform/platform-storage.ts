/**
 * The platform's storage as config describes it, built one way for the server and the CLI:
 * driver → meter (when an observer is given) → encryption (when master keys are set) → read cache, so the
 * meter times only the backend, the driver sees only ciphertext of sensitive keys, and the cache holds
 * plaintext. Modules then get `scopeStorage` views of it.
 */

import type { PlatformConfig } from '../core/config-types.ts';
import type { StorageObserver } from '../core/observers.ts';
import {
  type EncryptionAtRest,
  isEncryptionOn,
  prepareEncryptionAtRest,
} from '../security/encryption-at-rest.ts';
import { createStorage } from '../storage/create-storage.ts';
import { meterStorage } from '../storage/metered.ts';
import type { Storage } from '../storage/types.ts';

/** The platform storage and, when it is on, encryption at rest (its data keys, for the CLI and admins). */
export interface PlatformStorage {
  storage: Storage;
  encryption: EncryptionAtRest | undefined;
}

/** Builds the storage of `config`; `observerFor` gives the metrics and traces of a backend, if any. */
export async function createPlatformStorage(
  config: Readonly<PlatformConfig>,
  observerFor: (backend: string) => StorageObserver | undefined = () => undefined,
): Promise<PlatformStorage> {
  const encrypt = isEncryptionOn(config.security.encryption)
    ? prepareEncryptionAtRest(config.security.encryption)
    : undefined;
  let encryption: EncryptionAtRest | undefined;
  const storage = await createStorage(config.storage, {
    wrapDriver: (driver, backend) => {
      const observer = observerFor(backend);
      const metered = observer === undefined ? driver : meterStorage(driver, observer);
      if (encrypt === undefined) return metered;
      encryption = encrypt(metered);
      return encryption.storage;
    },
  });
  return { storage, encryption };
}
