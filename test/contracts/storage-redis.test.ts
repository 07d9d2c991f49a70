import { Redis } from 'ioredis';
import { afterAll, describe } from 'vitest';
import { createRedisStorage } from '../../src/storage/drivers/redis.ts';
import { IN_CI, redisAnswers, TEST_REDIS_URL, uniqueRedisPrefix } from '../helpers/redis-server.ts';
import { describeStorageContract } from './storage-contract.ts';

const reachable = await redisAnswers(TEST_REDIS_URL);
if (!reachable && !IN_CI)
  console.warn(`skipping the Redis storage contract: no Redis answers at ${TEST_REDIS_URL}`);

// Every storage gets its own prefix under this run's, so tests (and parallel runs) never see each other.
const runPrefix = uniqueRedisPrefix('contract');
let storages = 0;

afterAll(async () => {
  if (!reachable) return;
  const redis = new Redis(TEST_REDIS_URL);
  const leftovers = await redis.keys(`${runPrefix}*`);
  if (leftovers.length > 0) await redis.del(...leftovers);
  await redis.quit();
});

describe.skipIf(!reachable && !IN_CI)('redis driver', () => {
  describeStorageContract('redis', () =>
    createRedisStorage({ url: TEST_REDIS_URL, prefix: `${runPrefix}${storages++}:` }),
  );
});
