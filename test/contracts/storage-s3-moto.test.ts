import { afterAll, beforeAll, describe } from 'vitest';
import { createS3Storage } from '../../src/storage/drivers/s3.ts';
import { motoAvailable, type RunningMoto, startMoto } from '../helpers/moto.ts';
import { describeStorageContract } from './storage-contract.ts';

// The same contract as on s3rver, on a second S3 implementation (see test/helpers/moto.ts).
const runs = motoAvailable();
let moto: RunningMoto | undefined;
let storages = 0;

describe.runIf(runs)('s3 driver on moto', () => {
  beforeAll(async () => {
    moto = await startMoto();
  }, 30_000);

  afterAll(async () => {
    await moto?.close();
  });

  describeStorageContract('s3 (on moto)', async () => {
    if (!moto) throw new Error('moto_server did not start');
    return createS3Storage({ ...moto.storageOptions, prefix: `contract-${storages++}/` });
  });
});
