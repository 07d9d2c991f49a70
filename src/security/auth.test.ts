import { describe, expect, it } from 'vitest';
import { createMemoryStorage } from '../storage/drivers/memory.ts';
import { BOOTSTRAP_ADMIN_ID, bootstrapAdmin, createAuth } from './auth.ts';

describe('bootstrapAdmin', () => {
  it('creates the admin and its key on a platform with no users, and nothing once there are users', async () => {
    const auth = createAuth(createMemoryStorage());
    const created = await bootstrapAdmin(auth);
    expect(created?.user).toMatchObject({ id: BOOTSTRAP_ADMIN_ID, name: 'admin', role: 'admin' });
    expect(await auth.authenticate(created?.apiKey.key)).toMatchObject({ userId: BOOTSTRAP_ADMIN_ID });
    expect(await bootstrapAdmin(auth)).toBeUndefined();
    expect(await auth.users.list()).toHaveLength(1);
  });

  it('makes one admin when nodes on one shared storage start at the same moment, each key working', async () => {
    const storage = createMemoryStorage();
    // Three nodes' auth over the same storage, each past its "no users yet" check before any creates.
    const nodes = [createAuth(storage), createAuth(storage), createAuth(storage)];
    const results = await Promise.all(nodes.map((auth) => bootstrapAdmin(auth)));
    const created = results.filter((result) => result !== undefined);
    expect(created.length).toBeGreaterThanOrEqual(1);
    const users = await nodes[0]!.users.list();
    expect(users).toEqual([
      expect.objectContaining({ id: BOOTSTRAP_ADMIN_ID, name: 'admin', role: 'admin' }),
    ]);
    expect((await nodes[1]!.users.findByName('admin'))?.id).toBe(BOOTSTRAP_ADMIN_ID);
    for (const result of created) {
      expect(await nodes[2]!.authenticate(result.apiKey.key)).toMatchObject({ userId: BOOTSTRAP_ADMIN_ID });
    }
  });

  it('refuses a user id that is not a UUID', async () => {
    const auth = createAuth(createMemoryStorage());
    await expect(auth.users.create({ name: 'eve', id: '../keys/x' })).rejects.toMatchObject({
      code: 'CHAT_ERR_VALIDATION_INVALID',
    });
  });
});
