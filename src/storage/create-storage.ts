/**
 * Builds the platform's storage from the `storage` section of config: the driver named by `backend`, the
 * caller's wrappers around it (encryption, metering), and the read cache on top when enabled.
 * The redis and s3 drivers are imported only when config names them: their clients (ioredis, the AWS SDK)
 * cost a one-node flatfile deployment about 28 MB of memory and their load time for nothing.
 */

import { PlatformError } from '../core/errors.ts';
import { cacheStorage } from './cached.ts';
import { createFlatfileStorage } from './drivers/flatfile.ts';
import { createMemoryStorage } from './drivers/memory.ts';
import type { Storage, StorageBackendName } from './types.ts';

/** The `storage` config section as createStorage reads it (snake_case, as in the JSON config). */
export interface StorageFactoryConfig {
  backend: StorageBackendName;
  flatfile?: { root?: string; journal?: boolean };
  cache?: { enabled: boolean | 'auto'; ttl_ms: number; max_entries: number; max_bytes?: number };
  redis?: Record<string, unknown>;
  s3?: Record<string, unknown>;
}

export interface CreateStorageOptions {
  /**
   * Wraps the bare driver before the cache goes on top — where the encrypted and metered wrappers slot in,
   * so the cache holds plaintext and the meter sees only real driver calls.
   */
  wrapDriver?: (driver: Storage, backend: StorageBackendName) => Storage;
}

/** Builds one driver from the storage config. */
export type StorageDriverFactory = (config: StorageFactoryConfig) => Storage | Promise<Storage>;

/** Every storage driver by backend name; adding a backend is one line here. */
export const STORAGE_DRIVERS: Record<StorageBackendName, StorageDriverFactory> = {
  memory: () => createMemoryStorage(),
  flatfile: (config) => {
    const root = config.flatfile?.root;
    if (root === undefined || root === '') {
      throw new PlatformError(
        'CHAT_ERR_CONFIG_INVALID',
        'storage.flatfile.root is required for the flatfile backend',
        {
          details: { path: 'storage.flatfile.root' },
        },
      );
    }
    return createFlatfileStorage({ root, journal: config.flatfile?.journal ?? true });
  },
  redis: async (config) => {
    const { createRedisStorage, redisOptionsFromConfig } = await import('./drivers/redis.ts');
    return createRedisStorage(redisOptionsFromConfig(config.redis));
  },
  s3: async (config) => {
    const { createS3Storage, s3OptionsFromConfig } = await import('./drivers/s3.ts');
    return createS3Storage(s3OptionsFromConfig(config.s3));
  },
};

/** Creates the storage described by `config`: driver, then `wrapDriver`, then the cache if enabled. */
export async function createStorage(
  config: StorageFactoryConfig,
  options: CreateStorageOptions = {},
): Promise<Storage> {
  const factory = Object.hasOwn(STORAGE_DRIVERS, config.backend)
    ? STORAGE_DRIVERS[config.backend]
    : undefined;
  if (factory === undefined) {
    throw new PlatformError(
      'CHAT_ERR_CONFIG_INVALID',
      `unknown storage backend "${String(config.backend)}"`,
      {
        details: { path: 'storage.backend', value: config.backend, allowed: Object.keys(STORAGE_DRIVERS) },
      },
    );
  }
  const driver = await factory(config);
  const wrapped = options.wrapDriver === undefined ? driver : options.wrapDriver(driver, config.backend);
  const cache = config.cache;
  if (cache === undefined || !isCacheOn(cache.enabled, config.backend)) return wrapped;
  return cacheStorage(wrapped, {
    ttlMs: cache.ttl_ms,
    maxEntries: cache.max_entries,
    ...(cache.max_bytes === undefined ? {} : { maxBytes: cache.max_bytes }),
  });
}

/**
 * A node-local read cache is only safe where this node is the only writer: with redis or s3 other nodes
 * change keys behind its back, and a cached read would serve stale sessions or revoked keys.
 */
function isCacheOn(enabled: boolean | 'auto', backend: string): boolean {
  return enabled === 'auto' ? backend === 'flatfile' || backend === 'memory' : enabled;
}
