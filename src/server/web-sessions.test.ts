import { describe, expect, it } from 'vitest';
import { createAuth } from '../security/auth.ts';
import { createMemoryStorage } from '../storage/drivers/memory.ts';
import { createWebSessionStore, hashWebSessionToken, WEB_SESSIONS_ROOT } from './web-sessions.ts';

async function setup(ttlHours = 1) {
  const storage = createMemoryStorage();
  const auth = createAuth(storage);
  const user = await auth.users.create({ name: 'ada', role: 'user' });
  const created = await auth.keys.create(user.id);
  const principal = await auth.authenticate(created.key);
  let now = Date.parse('2030-01-01T00:00:00Z');
  const sessions = createWebSessionStore(storage, auth, { ttlHours, now: () => now });
  return {
    storage,
    auth,
    user,
    keyId: created.record.id,
    principal,
    sessions,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

describe('browser sessions', () => {
  it('resolve to the principal of the key they were opened with', async () => {
    const { sessions, principal } = await setup();
    const opened = await sessions.open(principal);
    expect(await sessions.resolve(opened.token)).toEqual(principal);
  });

  it('are stored under the hash of the token, never the token itself', async () => {
    const { storage, sessions, principal } = await setup();
    const opened = await sessions.open(principal);
    const keys = await storage.list(`${WEB_SESSIONS_ROOT}/`);
    expect(keys).toEqual([`${WEB_SESSIONS_ROOT}/${hashWebSessionToken(opened.token)}.json`]);
    const bytes = await storage.read(keys[0]!);
    expect(new TextDecoder().decode(bytes)).not.toContain(opened.token);
  });

  it('expire after their lifetime, and the expired record is removed', async () => {
    const { storage, sessions, principal, advance } = await setup(2);
    const opened = await sessions.open(principal);
    expect(sessions.ttlSeconds).toBe(2 * 3600);
    advance(2 * 3600 * 1000 - 1);
    expect(await sessions.resolve(opened.token)).toBeDefined();
    advance(1);
    expect(await sessions.resolve(opened.token)).toBeUndefined();
    expect(await storage.list(`${WEB_SESSIONS_ROOT}/`)).toEqual([]);
  });

  it('end when their API key is revoked or their user deleted', async () => {
    const { storage, auth, sessions, principal, keyId, user } = await setup();
    const first = await sessions.open(principal);
    await auth.keys.revoke(keyId);
    expect(await sessions.resolve(first.token)).toBeUndefined();

    const other = await auth.keys.create(user.id);
    const second = await sessions.open(await auth.authenticate(other.key));
    expect(await sessions.resolve(second.token)).toBeDefined();
    // Users cannot be deleted through the API yet: remove the record the way a deletion would.
    await storage.delete(`users/${user.id}.json`);
    expect(await sessions.resolve(second.token)).toBeUndefined();
  });

  it('end when closed (logout), and unknown or malformed tokens find nobody', async () => {
    const { sessions, principal } = await setup();
    const opened = await sessions.open(principal);
    expect(await sessions.close(opened.token)).toBe(true);
    expect(await sessions.resolve(opened.token)).toBeUndefined();
    expect(await sessions.close(opened.token)).toBe(false);
    expect(await sessions.resolve('x'.repeat(43))).toBeUndefined();
    expect(await sessions.resolve('../../keys/whatever')).toBeUndefined();
    expect(await sessions.resolve('')).toBeUndefined();
  });

  it('are each their own: two logins get two tokens', async () => {
    const { sessions, principal } = await setup();
    const first = await sessions.open(principal);
    const second = await sessions.open(principal);
    expect(first.token).not.toBe(second.token);
    await sessions.close(first.token);
    expect(await sessions.resolve(second.token)).toEqual(principal);
  });
});
