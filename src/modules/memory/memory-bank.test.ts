import { describe, expect, it } from 'vitest';
import { createMemoryStorage } from '../../storage/drivers/memory.ts';
import { readFrom } from '../../storage/read-from.ts';
import { createMemoryBanks, type Memory } from './memory-bank.ts';

function said(
  id: string,
  sessionId: string,
  text: string,
  time = `2026-11-2${id.length}T10:00:00.000Z`,
): Memory {
  return { id, sessionId, time, text };
}

describe('memory banks', () => {
  it('recalls what a user said in other sessions, best match first, and never another user’s', async () => {
    const banks = createMemoryBanks(createMemoryStorage(), { maxUsers: 10 });
    await banks.remember('alice', said('m1', 's1', 'My dog is called Max and he loves the beach'));
    await banks.remember('alice', said('m2', 's1', 'I work as a nurse at the city hospital'));
    await banks.remember('alice', said('m3', 's2', 'We are planning a trip to Lisbon in May'));
    await banks.remember('bob', said('b1', 's9', 'My dog is a poodle named Rex'));

    const recalled = await banks.recall('alice', 'what is my dog called?', {
      limit: 2,
      excludeSessionId: 's3',
    });
    expect(recalled.map((memory) => memory.id)).toEqual(['m1']);
    expect(recalled[0]?.text).toBe('My dog is called Max and he loves the beach');
    // The session asking already has its own messages in its history.
    expect(await banks.recall('alice', 'dog', { limit: 2, excludeSessionId: 's1' })).toEqual([]);
    expect((await banks.recall('bob', 'dog', { limit: 5 })).map((memory) => memory.id)).toEqual(['b1']);
    expect(await banks.recall('carol', 'dog', { limit: 5 })).toEqual([]);
  });

  it('lists newest first and forgets one memory, a session’s, or all', async () => {
    const banks = createMemoryBanks(createMemoryStorage(), { maxUsers: 10 });
    await banks.remember(
      'alice',
      said('a', 's1', 'first thing I said, about gardening', '2026-11-01T00:00:00.000Z'),
    );
    await banks.remember(
      'alice',
      said('b', 's1', 'second thing I said, about tomatoes', '2026-11-02T00:00:00.000Z'),
    );
    await banks.remember(
      'alice',
      said('c', 's2', 'third thing I said, about cycling', '2026-11-03T00:00:00.000Z'),
    );
    expect((await banks.list('alice', { limit: 10 })).map((memory) => memory.id)).toEqual(['c', 'b', 'a']);
    expect(
      (await banks.list('alice', { limit: 10, before: '2026-11-03T00:00:00.000Z' })).map((m) => m.id),
    ).toEqual(['b', 'a']);

    expect(await banks.forget('alice', { memoryId: 'c' })).toBe(1);
    expect(await banks.forget('alice', { memoryId: 'c' })).toBe(0);
    expect(await banks.recall('alice', 'cycling', { limit: 3 })).toEqual([]);
    expect(await banks.forget('alice', { sessionId: 's1' })).toBe(2);
    expect(await banks.list('alice', { limit: 10 })).toEqual([]);
    await banks.remember('alice', said('d', 's3', 'something new about chess openings'));
    expect(await banks.forget('alice', { all: true })).toBe(1);
  });

  it('sees what another node remembered or forgot, reading only the bank’s new bytes', async () => {
    const storage = createMemoryStorage();
    const reads: number[] = [];
    const counted = {
      ...storage,
      readFrom: async (key: string, offset: number) => {
        reads.push(offset);
        return readFrom(storage, key, offset);
      },
    };
    const here = createMemoryBanks(counted, { maxUsers: 10 });
    const there = createMemoryBanks(storage, { maxUsers: 10 });
    await there.remember('alice', said('m1', 's1', 'I have a cat named Luna'));
    expect((await here.recall('alice', 'cat', { limit: 1 })).map((memory) => memory.id)).toEqual(['m1']);
    await there.remember('alice', said('m2', 's1', 'Luna is three years old'));
    expect((await here.recall('alice', 'Luna', { limit: 5 })).map((memory) => memory.id).sort()).toEqual([
      'm1',
      'm2',
    ]);
    // Each catch-up started where the one before ended.
    expect(reads).toEqual([0, expect.any(Number)]);
    expect(reads[1]).toBeGreaterThan(0);

    // A forget rewrites the bank: the other node reads the new one from its start, then goes on from there.
    await there.forget('alice', { memoryId: 'm1' });
    expect((await here.recall('alice', 'Luna', { limit: 5 })).map((memory) => memory.id)).toEqual(['m2']);
    await there.remember('alice', said('m3', 's2', 'Luna hates the vacuum cleaner'));
    expect((await here.recall('alice', 'Luna', { limit: 5 })).map((memory) => memory.id).sort()).toEqual([
      'm2',
      'm3',
    ]);
    expect(reads.slice(2, 3)).toEqual([0]);
    expect(reads[3]).toBeGreaterThan(0);
  });

  it('keeps nothing of a forgotten memory in storage', async () => {
    const storage = createMemoryStorage();
    const banks = createMemoryBanks(storage, { maxUsers: 10 });
    await banks.remember('alice', said('m1', 's1', 'my bank PIN is 4711, keep it safe'));
    await banks.remember('alice', said('m2', 's2', 'I like hiking in the Alps'));
    const stored = async () =>
      new TextDecoder().decode(await storage.read('long_term/alice/memory_bank.jsonl'));
    expect(await stored()).toContain('4711');
    expect(await banks.forget('alice', { memoryId: 'm1' })).toBe(1);
    expect(await stored()).not.toContain('4711');
    expect(await stored()).toContain('hiking in the Alps');
    // A node started afterwards (a restart) sees exactly what is left.
    const restarted = createMemoryBanks(storage, { maxUsers: 10 });
    expect((await restarted.list('alice', { limit: 10 })).map((memory) => memory.id)).toEqual(['m2']);
    expect(await banks.forget('alice', { all: true })).toBe(1);
    expect(await storage.read('long_term/alice/memory_bank.jsonl')).toBeUndefined();
    expect(await restarted.list('alice', { limit: 10 })).toEqual([]);
  });

  it('forgets a session’s memories even while one of them is still being remembered', async () => {
    const banks = createMemoryBanks(createMemoryStorage(), { maxUsers: 10 });
    const remembering = banks.remember('alice', said('m1', 's1', 'my secret project is called Falcon'));
    const forgotten = banks.forget('alice', { sessionId: 's1' });
    await remembering;
    expect(await forgotten).toBe(1);
    expect(await banks.recall('alice', 'secret project Falcon', { limit: 3 })).toEqual([]);
    await banks.settled();
  });
});
