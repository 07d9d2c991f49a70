import { describe, expect, it } from 'vitest';
import { createLocalTransport } from '../bus/local.ts';
import { createBus } from '../core/bus.ts';
import { USER_ERASE } from '../core/user-erasure.ts';
import { createMemoryStorage } from '../storage/drivers/memory.ts';
import { createAuth } from './auth.ts';
import { eraseUser } from './erase-user.ts';

describe('eraseUser', () => {
  it('keeps the user (keys revoked) while a module fails, and erases them when asked again', async () => {
    const bus = createBus({ transport: createLocalTransport() });
    const auth = createAuth(createMemoryStorage());
    const user = await auth.users.create({ name: 'carol' });
    const { key } = await auth.keys.create(user.id);
    let failing = true;
    bus.on(USER_ERASE, () => ({ erased: 3 }), { group: 'text_chat' });
    bus.on(
      USER_ERASE,
      () => {
        if (failing) throw new Error('disk full');
        return { erased: 1 };
      },
      { group: 'memory' },
    );

    const shredded: string[] = [];
    const shredDataKeys = async (id: string) => {
      shredded.push(id);
      return 2;
    };
    const first = eraseUser(bus, auth, user.id, { timeoutMs: 2000, shredDataKeys });
    await expect(first).rejects.toMatchObject({
      code: 'CHAT_ERR_USER_ERASE_INCOMPLETE',
      status: 503,
    });
    await expect(first).rejects.toThrow(/memory \(.*disk full\).*send the request again/);
    expect(await auth.users.get(user.id)).toEqual(user);
    await expect(auth.authenticate(key)).rejects.toMatchObject({ code: 'CHAT_ERR_AUTH_UNAUTHENTICATED' });

    failing = false;
    const deleted: unknown[] = [];
    bus.on('user.deleted', (event) => void deleted.push(event.data));
    expect(shredded).toEqual([]);
    expect(await eraseUser(bus, auth, user.id, { timeoutMs: 2000, shredDataKeys })).toEqual({
      user,
      erased: { text_chat: 3, memory: 1, encryption: 2 },
    });
    // Shredded once, by the erasure that finished (not by the one a failing module stopped).
    expect(shredded).toEqual([user.id]);
    expect(await auth.users.get(user.id)).toBeUndefined();
    expect(await auth.users.findByName('carol')).toBeUndefined();
    expect(deleted).toEqual([{ userId: user.id }]);
    await expect(eraseUser(bus, auth, user.id, { timeoutMs: 2000 })).rejects.toMatchObject({
      code: 'CHAT_ERR_NOT_FOUND',
    });
    // The name is free again.
    expect((await auth.users.create({ name: 'carol' })).id).not.toBe(user.id);
    await bus.close();
  });
});
