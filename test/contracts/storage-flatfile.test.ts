import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFlatfileStorage, type FlatfileStorage } from '../../src/storage/drivers/flatfile.ts';
import type { Storage } from '../../src/storage/types.ts';
import { describeStorageContract } from './storage-contract.ts';

describeStorageContract(
  'flatfile',
  async () => createFlatfileStorage({ root: await mkdtemp(join(tmpdir(), 'parley-storage-contract-')) }),
  async (storage: Storage) => {
    await storage.close();
    await rm((storage as FlatfileStorage).root, { recursive: true, force: true });
  },
);
