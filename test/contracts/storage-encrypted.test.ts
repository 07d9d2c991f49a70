import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareEncryptionAtRest } from '../../src/security/encryption-at-rest.ts';
import { cacheStorage } from '../../src/storage/cached.ts';
import { createFlatfileStorage } from '../../src/storage/drivers/flatfile.ts';
import { createMemoryStorage } from '../../src/storage/drivers/memory.ts';
import type { Storage } from '../../src/storage/types.ts';
import { describeStorageContract } from './storage-contract.ts';

// Every key is sensitive (multi-segment keys sealed with a "user" key named by their first segment, the
// rest with the platform key); the data keys live in a storage of their own, so `list('')` sees only the
// contract's keys.
const encrypt = prepareEncryptionAtRest({
  keys: { k1: randomBytes(32).toString('base64') },
  active_key_id: '',
  sensitive: ['{user}/**', '**'],
  plaintext_reads: false,
  data_key_cache: { ttl_ms: 60_000, max_entries: 100 },
});

const roots = new WeakMap<Storage, string>();

describeStorageContract(
  'encrypted(flatfile)',
  async () => {
    const root = await mkdtemp(join(tmpdir(), 'parley-storage-encrypted-'));
    const storage = encrypt(createFlatfileStorage({ root }), createMemoryStorage()).storage;
    roots.set(storage, root);
    return storage;
  },
  async (storage) => {
    await storage.close();
    await rm(roots.get(storage) ?? '', { recursive: true, force: true });
  },
);

// As the platform stacks them: the cache holds plaintext above the encryption.
describeStorageContract('cached(encrypted(memory))', async () =>
  cacheStorage(encrypt(createMemoryStorage(), createMemoryStorage()).storage, {
    ttlMs: 60_000,
    maxEntries: 100,
  }),
);
