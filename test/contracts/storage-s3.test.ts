import { afterAll, beforeAll } from 'vitest';
import { createS3Storage } from '../../src/storage/drivers/s3.ts';
import { type RunningS3rver, startS3rver } from '../helpers/s3rver.ts';
import { describeStorageContract } from './storage-contract.ts';

// s3rver is started here, so this suite never skips: the S3 API it speaks is always available.
let s3rver: RunningS3rver;
let storages = 0;

beforeAll(async () => {
  s3rver = await startS3rver();
});

afterAll(async () => {
  await s3rver?.close();
});

describeStorageContract('s3 (on s3rver)', () =>
  createS3Storage({ ...s3rver.storageOptions, prefix: `contract-${storages++}/` }),
);
