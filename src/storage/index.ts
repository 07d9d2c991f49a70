/** The storage layer: the contract, its drivers, wrappers and helpers (see README.md). */

export type { CachedStorage, CacheOptions, CacheStats } from './cached.ts';
export { cacheStorage } from './cached.ts';
export type { CreateStorageOptions, StorageDriverFactory, StorageFactoryConfig } from './create-storage.ts';
export { createStorage, STORAGE_DRIVERS } from './create-storage.ts';
export type { FlatfileStats, FlatfileStorage, FlatfileStorageOptions } from './drivers/flatfile.ts';
export { createFlatfileStorage } from './drivers/flatfile.ts';
export { createMemoryStorage } from './drivers/memory.ts';
export type { RedisStorage, RedisStorageOptions } from './drivers/redis.ts';
export { createRedisStorage, redisOptionsFromConfig } from './drivers/redis.ts';
export type { S3Storage, S3StorageOptions, S3StorageStats } from './drivers/s3.ts';
export { createS3Storage, s3OptionsFromConfig } from './drivers/s3.ts';
export {
  appendJsonLine,
  assertWholeLines,
  encodeJsonLine,
  isJsonLinesKey,
  parseJsonLines,
  readJsonLines,
} from './json-lines.ts';
export { assertValidKey, assertValidPrefix, isValidKey, RESERVED_NAME_PART } from './keys.ts';
export { type ReadableFrom, readFrom } from './read-from.ts';
export { scopeStorage } from './scoped.ts';
export type { Storage, StorageBackendName } from './types.ts';
