import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StorageConfig } from '../core/config-types.ts';
import { createStorage } from './create-storage.ts';
import type { Storage } from './types.ts';

const bytes = (text: string) => new TextEncoder().encode(text);

describe('createStorage', () => {
  it('builds the memory driver', async () => {
    const storage = await createStorage({ backend: 'memory' });
    await storage.write('a.json', bytes('1'));
    expect(await storage.list('')).toEqual(['a.json']);
    await storage.close();
  });

  it('builds the flatfile driver from the effective config, with the cache on top', async () => {
    const root = await mkdtemp(join(tmpdir(), 'parley-create-storage-'));
    const config: StorageConfig = {
      backend: 'flatfile',
      flatfile: { root },
      cache: { enabled: true, ttl_ms: 60_000, max_entries: 10, max_bytes: 1_000_000 },
      redis: {
        url: 'redis://127.0.0.1:6379',
        prefix: 'parley:',
        connect_timeout_ms: 5000,
        command_timeout_ms: 2000,
        reconnect_max_delay_ms: 1000,
      },
      s3: {
        region: 'us-east-1',
        bucket: 'parley',
        prefix: '',
        force_path_style: false,
        request_timeout_ms: 10000,
        compact_after_parts: 32,
        compaction_age_ms: 60000,
        cache_bytes: 33554432,
      },
    };
    const storage = await createStorage(config);
    await storage.write('a.json', bytes('1'));
    expect(await storage.read('a.json')).toEqual(bytes('1'));
    // The cache holds what was written through it: the read is a hit.
    expect((storage as Storage & { stats(): { hits: number } }).stats().hits).toBe(1);
    await storage.close();
    const reopened = await createStorage({ backend: 'flatfile', flatfile: { root } });
    expect(await reopened.list('')).toEqual(['a.json']);
    await reopened.close();
    await rm(root, { recursive: true, force: true });
  });

  it('journals flatfile appends unless storage.flatfile.journal is false', async () => {
    const root = await mkdtemp(join(tmpdir(), 'parley-create-storage-'));
    const journals = async (folder: string) =>
      (await readdir(join(root, folder))).filter((name) => name.includes('journal'));
    for (const [folder, journal] of [
      ['default', undefined],
      ['off', false],
    ] as const) {
      const storage = await createStorage({
        backend: 'flatfile',
        flatfile: { root: join(root, folder), ...(journal === undefined ? {} : { journal }) },
      });
      await storage.append('log.jsonl', bytes('{"n":1}\n'));
      expect(await journals(folder)).toHaveLength(journal === false ? 0 : 1);
      await storage.close();
    }
    await rm(root, { recursive: true, force: true });
  });

  it('by default caches nothing on redis, where another node may change a key behind this one', async () => {
    const prefix = `parley-test-cache-${process.pid}-${Date.now()}:`;
    const shared = {
      backend: 'redis' as const,
      cache: { enabled: 'auto' as const, ttl_ms: 60_000, max_entries: 10 },
      redis: {
        url: 'redis://127.0.0.1:6379',
        prefix,
        connect_timeout_ms: 2000,
        command_timeout_ms: 2000,
        reconnect_max_delay_ms: 1000,
      },
    };
    const nodeA = await createStorage(shared);
    const nodeB = await createStorage(shared);
    await nodeA.write('session.json', bytes('v1'));
    expect(await nodeB.read('session.json')).toEqual(bytes('v1'));
    await nodeA.write('session.json', bytes('v2'));
    expect(await nodeB.read('session.json')).toEqual(bytes('v2'));
    await nodeA.delete('session.json');
    await Promise.all([nodeA.close(), nodeB.close()]);
  });

  it('requires a flatfile root', async () => {
    await expect(createStorage({ backend: 'flatfile' })).rejects.toMatchObject({
      code: 'CHAT_ERR_CONFIG_INVALID',
      details: { path: 'storage.flatfile.root' },
    });
  });

  it('says plainly when the redis or s3 backend cannot be reached', async () => {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    await expect(
      createStorage({ backend: 'redis', redis: { url: 'redis://127.0.0.1:1', connect_timeout_ms: 2000 } }),
    ).rejects.toMatchObject({
      code: 'CHAT_ERR_STORAGE_UNAVAILABLE',
      message: expect.stringContaining('Redis'),
    });
    await expect(
      createStorage({
        backend: 's3',
        s3: {
          endpoint: 'http://127.0.0.1:1',
          force_path_style: true,
          access_key_id: 'a',
          secret_access_key: 'b',
        },
      }),
    ).rejects.toMatchObject({ code: 'CHAT_ERR_STORAGE_UNAVAILABLE', message: expect.stringContaining('S3') });
  });

  it('rejects an unknown backend', async () => {
    await expect(createStorage({ backend: 'floppy' as 'memory' })).rejects.toMatchObject({
      code: 'CHAT_ERR_CONFIG_INVALID',
    });
  });

  it('puts wrapDriver between the driver and the cache', async () => {
    const seen: string[] = [];
    const storage = await createStorage(
      { backend: 'memory', cache: { enabled: true, ttl_ms: 60_000, max_entries: 10 } },
      {
        wrapDriver: (driver, backend) => ({
          ...driver,
          read(key) {
            seen.push(`${backend}:${key}`);
            return driver.read(key);
          },
        }),
      },
    );
    await storage.read('a.json');
    await storage.read('a.json');
    expect(seen).toEqual(['memory:a.json']);
    await storage.close();
  });
});
