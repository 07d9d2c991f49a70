import { cacheStorage } from '../../src/storage/cached.ts';
import { createMemoryStorage } from '../../src/storage/drivers/memory.ts';
import { meterStorage } from '../../src/storage/metered.ts';
import { scopeStorage } from '../../src/storage/scoped.ts';
import { describeStorageContract } from './storage-contract.ts';

// The wrappers are storages too: a module gets scoped(cached(metered(driver))), so each must keep the contract.
describeStorageContract('scoped(memory)', async () => scopeStorage(createMemoryStorage(), 'module_root'));
describeStorageContract('cached(memory)', async () =>
  cacheStorage(createMemoryStorage(), { ttlMs: 60_000, maxEntries: 100 }),
);
describeStorageContract('metered(memory)', async () =>
  meterStorage(createMemoryStorage(), { operationCompleted() {} }),
);
