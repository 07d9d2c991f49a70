import { describe, expect, it } from 'vitest';
import { type Auth, createAuth } from '../security/auth.ts';
import { createMemoryStorage } from '../storage/drivers/memory.ts';
import { cachePrincipals } from './principal-cache.ts';

async function setup(options: { ttlMs?: number; maxEntries?: number } = {}) {
  const auth = createAuth(createMemoryStorage());
  const user = await auth.users.create({ name: 'ada', role: 'user' });
  const first = await auth.keys.create(user.id);
  const second = await auth.keys.create(user.id);
  // Counts the lookups that reach the stores.
  let lookups = 0;
  // While set, a lookup that has read the records waits for it before it answers.
  let gate: Promise<void> | undefined;
  const counted: Auth = {
    ...auth,
    async authenticate(apiKey) {
      lookups++;
      const principal = await auth.authenticate(apiKey);
      await gate;
      return principal;
    },
  };
  let now = 1_000_000;
  const cached = cachePrincipals(counted, {
    ttlMs: options.ttlMs ?? 1000,
    maxEntries: options.maxEntries ?? 100,
    now: () => now,
  });
  return {
    auth,
    cached,
    first,
    second,
    lookups: () => lookups,
    holdLookups() {
      let release = () => {};
      gate = new Promise((resolve) => {
        release = resolve;
      });
      return () => {
        gate = undefined;
        release();
      };
    },
    advance(ms: number) {
      now += ms;
    },
  };
}

describe('the principal cache', () => {
  it('answers a key seen within ttl_ms without a lookup, and looks it up again after', async () => {
    const { cached, first, lookups, advance } = await setup();
    const principal = await cached.authenticate(first.key);
    expect(principal).toMatchObject({ userName: 'ada', keyId: first.record.id });
    advance(999);
    await expect(cached.authenticate(first.key)).resolves.toEqual(principal);
    expect(lookups()).toBe(1);
    advance(1);
    await expect(cached.authenticate(first.key)).resolves.toEqual(principal);
    expect(lookups()).toBe(2);
  });

  it('refuses a key revoked through it at once; the same user’s other keys keep working', async () => {
    const { cached, first, second } = await setup();
    await cached.authenticate(first.key);
    await cached.authenticate(second.key);
    await cached.keys.revoke(first.record.id);
    await expect(cached.authenticate(first.key)).rejects.toMatchObject({
      code: 'CHAT_ERR_AUTH_UNAUTHENTICATED',
    });
    await expect(cached.authenticate(second.key)).resolves.toMatchObject({ keyId: second.record.id });
  });

  it('refuses a key revoked behind its back (another node, the CLI) once its entry expires', async () => {
    const { auth, cached, first, advance } = await setup();
    await cached.authenticate(first.key);
    await auth.keys.revoke(first.record.id);
    await expect(cached.authenticate(first.key)).resolves.toMatchObject({ keyId: first.record.id });
    advance(1000);
    await expect(cached.authenticate(first.key)).rejects.toMatchObject({
      code: 'CHAT_ERR_AUTH_UNAUTHENTICATED',
    });
  });

  it('does not remember a lookup that was under way while a key was revoked', async () => {
    const { cached, first, holdLookups } = await setup();
    const release = holdLookups();
    const underWay = cached.authenticate(first.key);
    await new Promise((resolve) => setTimeout(resolve, 10)); // it has read the record: not revoked yet
    await cached.keys.revoke(first.record.id);
    release();
    // It answers what it read before the revocation, but is not kept.
    await expect(underWay).resolves.toMatchObject({ keyId: first.record.id });
    await expect(cached.authenticate(first.key)).rejects.toMatchObject({
      code: 'CHAT_ERR_AUTH_UNAUTHENTICATED',
    });
  });

  it('never remembers a failure: an unknown key is looked up every time', async () => {
    const { cached, lookups } = await setup();
    const unknown = `pk_${'A'.repeat(43)}`;
    for (let attempt = 0; attempt < 3; attempt++) {
      await expect(cached.authenticate(unknown)).rejects.toMatchObject({
        code: 'CHAT_ERR_AUTH_UNAUTHENTICATED',
      });
    }
    await expect(cached.authenticate(undefined)).rejects.toMatchObject({
      code: 'CHAT_ERR_AUTH_UNAUTHENTICATED',
    });
    expect(lookups()).toBe(4);
  });

  it('keeps at most max_entries keys, forgetting the oldest', async () => {
    const { cached, first, second, lookups } = await setup({ maxEntries: 1 });
    await cached.authenticate(first.key);
    await cached.authenticate(second.key);
    await cached.authenticate(second.key);
    expect(lookups()).toBe(2);
    await cached.authenticate(first.key);
    expect(lookups()).toBe(3);
  });

  it('with ttl_ms 0 looks every key up', async () => {
    const { cached, first, lookups } = await setup({ ttlMs: 0 });
    await cached.authenticate(first.key);
    await cached.authenticate(first.key);
    expect(lookups()).toBe(2);
  });
});
