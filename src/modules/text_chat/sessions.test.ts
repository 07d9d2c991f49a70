import { describe, expect, it } from 'vitest';
import { NotFoundError } from '../../core/errors.ts';
import { cacheStorage } from '../../storage/cached.ts';
import { createMemoryStorage } from '../../storage/drivers/memory.ts';
import { createSessionStore } from './sessions.ts';

function setup() {
  const backing = createMemoryStorage();
  const storage = cacheStorage(backing, { ttlMs: 60_000, maxEntries: 100 });
  return { backing, storage, sessions: createSessionStore(storage, { touchDelayMs: 60_000 }) };
}

describe('createSessionStore: peek and existsNow', () => {
  it('gives the session at once when the cache holds its metadata, as get would, frozen and shared', async () => {
    const { sessions } = setup();
    const created = await sessions.create('u1', { title: 'chat', personaId: 'pirate' });
    const peeked = sessions.peek('u1', created.id);
    expect(peeked).toEqual(await sessions.get('u1', created.id));
    // Parsed once while the stored bytes stay the same; shared, so nobody may change it.
    expect(sessions.peek('u1', created.id)).toBe(peeked);
    expect(Object.isFrozen(peeked) && Object.isFrozen(peeked?.metadata)).toBe(true);
    expect(sessions.existsNow('u1', created.id)).toBe(true);
    // A change made through the store is seen at once.
    await sessions.update('u1', created.id, (metadata) => ({ ...metadata, title: 'renamed' }));
    expect(sessions.peek('u1', created.id)?.metadata.title).toBe('renamed');
    // A touch not written yet shows in get, not in the stored session peek gives (still the shared one).
    const stored = sessions.peek('u1', created.id);
    sessions.touch('u1', created.id, '2999-01-01T00:00:00.000Z');
    expect((await sessions.get('u1', created.id)).metadata.updatedAt).toBe('2999-01-01T00:00:00.000Z');
    expect(sessions.peek('u1', created.id)).toBe(stored);
    expect(sessions.peek('u1', created.id)?.metadata.updatedAt).not.toBe('2999-01-01T00:00:00.000Z');
  });

  it("answers another user's session and a deleted one as missing, exactly as get does", async () => {
    const { sessions } = setup();
    const created = await sessions.create('u1', { title: 'chat' });
    // Another user's: their key names no session (the cache learns that on the first read).
    await expect(sessions.get('u2', created.id)).rejects.toBeInstanceOf(NotFoundError);
    expect(() => sessions.peek('u2', created.id)).toThrow(NotFoundError);
    expect(sessions.existsNow('u2', created.id)).toBe(false);
    await sessions.delete('u1', created.id);
    expect(() => sessions.peek('u1', created.id)).toThrow(NotFoundError);
    expect(sessions.existsNow('u1', created.id)).toBe(false);
    expect(() => sessions.peek('u1', '../x')).toThrow(NotFoundError);
    expect(sessions.existsNow('u1', '../x')).toBe(false);
  });

  it('cannot tell at once what the cache does not hold: undefined, and get reads it', async () => {
    const { backing, sessions } = setup();
    const other = createSessionStore(backing, { touchDelayMs: 60_000 });
    // Made behind the cache's back (another node, sharing the backend).
    const created = await other.create('u1', { title: 'elsewhere' });
    expect(sessions.peek('u1', created.id)).toBeUndefined();
    expect(sessions.existsNow('u1', created.id)).toBeUndefined();
    expect((await sessions.get('u1', created.id)).metadata.title).toBe('elsewhere');
    expect(sessions.peek('u1', created.id)?.metadata.title).toBe('elsewhere');
    // Without a read cache nothing is known at once.
    expect(other.peek('u1', created.id)).toBeUndefined();
  });
});
