import { describe, expect, it } from 'vitest';
import { createMemoryStorage } from '../storage/drivers/memory.ts';
import type { Storage } from '../storage/types.ts';
import { type AuditLog, createAuditLog } from './audit-log.ts';

const admin = { type: 'user', id: 'u-admin', name: 'admin' } as const;

async function chainKeys(storage: Storage): Promise<string[]> {
  return storage.list('chains/');
}

async function lines(storage: Storage, key: string): Promise<string[]> {
  const bytes = await storage.read(key);
  return new TextDecoder()
    .decode(bytes)
    .split('\n')
    .filter((line) => line !== '');
}

async function rewrite(storage: Storage, key: string, rows: string[]): Promise<void> {
  await storage.write(key, new TextEncoder().encode(rows.map((row) => `${row}\n`).join('')));
}

async function recordThree(audit: AuditLog): Promise<void> {
  await audit.record({ actor: admin, action: 'user.created', target: { userId: 'u1', name: 'alice' } });
  await audit.record({ actor: admin, action: 'key.created', target: { keyId: 'k1', userId: 'u1' } });
  await audit.record({ actor: admin, action: 'key.revoked', target: { keyId: 'k1', userId: 'u1' } });
}

describe('the audit log', () => {
  it('chains entries, lists them newest first, and verifies an untouched log', async () => {
    const storage = createMemoryStorage();
    const audit = createAuditLog(storage);
    // Recorded at once, still chained one after another.
    await Promise.all([
      audit.record({ actor: admin, action: 'user.created', target: { userId: 'u1', name: 'alice' } }),
      audit.record({ actor: admin, action: 'user.created', target: { userId: 'u2', name: 'bob' } }),
    ]);
    await audit.record({ actor: admin, action: 'key.revoked', target: { keyId: 'k1', userId: 'u1' } });
    const listed = await audit.list();
    expect(listed.map((entry) => entry.action)).toEqual(['key.revoked', 'user.created', 'user.created']);
    expect(listed.map((entry) => entry.seq)).toEqual([3, 2, 1]);
    expect(listed[0]?.prev).toBe(listed[1]?.hash);
    expect(await audit.verify()).toEqual({ chains: 1, entries: 4, problems: [] });
    expect((await audit.list({ limit: 1 })).map((entry) => entry.seq)).toEqual([3]);
  });

  it('finds an entry changed, removed, or moved', async () => {
    for (const tamper of ['change', 'remove', 'swap'] as const) {
      const storage = createMemoryStorage();
      const audit = createAuditLog(storage);
      await recordThree(audit);
      const [key] = await chainKeys(storage);
      const rows = await lines(storage, key as string);
      if (tamper === 'change') rows[1] = (rows[1] as string).replace('"alice"', '"mallory"');
      if (tamper === 'remove') rows.splice(2, 1);
      if (tamper === 'swap') [rows[2], rows[3]] = [rows[3] as string, rows[2] as string];
      await rewrite(storage, key as string, rows);
      const { problems } = await audit.verify();
      expect(problems.length, tamper).toBeGreaterThan(0);
      expect(problems[0]?.line, tamper).toBe(tamper === 'change' ? 2 : 3);
    }
  });

  it('finds an older chain deleted whole, or cut short, through the chains started after it', async () => {
    for (const tamper of ['delete', 'truncate'] as const) {
      const storage = createMemoryStorage();
      await recordThree(createAuditLog(storage));
      const [first] = await chainKeys(storage);
      // A later process: its chain records the first chain's newest entry.
      const later = createAuditLog(storage);
      await later.record({ actor: admin, action: 'user.created', target: { userId: 'u3', name: 'carol' } });
      expect((await later.verify()).problems).toEqual([]);
      if (tamper === 'delete') await storage.delete(first as string);
      else await rewrite(storage, first as string, (await lines(storage, first as string)).slice(0, -1));
      const { problems } = await later.verify();
      expect(problems, tamper).toHaveLength(1);
      expect(problems[0]?.problem, tamper).toMatch(
        tamper === 'delete' ? /is missing/ : /entries were removed/,
      );
    }
  });
});
