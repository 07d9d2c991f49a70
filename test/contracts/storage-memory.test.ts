import { createMemoryStorage } from '../../src/storage/drivers/memory.ts';
import { describeStorageContract } from './storage-contract.ts';

describeStorageContract('memory', async () => createMemoryStorage());
