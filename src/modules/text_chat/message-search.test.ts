import { describe, expect, it } from 'vitest';
import type { Message } from '../../core/types.ts';
import { createMemoryStorage } from '../../storage/drivers/memory.ts';
import { createMessageSearch } from './message-search.ts';
import { messagesKey } from './sessions.ts';

const encoder = new TextEncoder();
let sequence = 0;

function message(sessionId: string, content: string, role: Message['role'] = 'user'): Message {
  sequence++;
  return {
    id: `m${String(sequence).padStart(4, '0')}`,
    role,
    content,
    timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, sequence)).toISOString(),
    metadata: { sessionId },
  };
}

/** Appends to a session's log the way text_chat (on any node) does. */
async function store(storage: ReturnType<typeof createMemoryStorage>, userId: string, messages: Message[]) {
  const sessionId = messages[0]!.metadata.sessionId as string;
  const lines = messages.map((item) => `${JSON.stringify(item)}\n`).join('');
  await storage.append(messagesKey(userId, sessionId), encoder.encode(lines));
}

const ids = (hits: Array<{ messageId: string }>) => hits.map((hit) => hit.messageId);

describe('message search', () => {
  it("ranks a user's messages across sessions and never another user's", async () => {
    const storage = createMemoryStorage();
    const best = message('s1', 'the kettle, the kettle: descale the kettle', 'assistant');
    const other = message('s2', 'is the kettle on?');
    await store(storage, 'alice', [message('s1', 'how do I descale things?'), best]);
    await store(storage, 'alice', [other]);
    await store(storage, 'bob', [message('s3', 'my kettle is broken')]);
    const search = createMessageSearch({ maxBytes: 1 << 20, resyncMs: 60_000 });

    const hits = await search.search(storage, 'alice', 'kettles', 10);
    expect(ids(hits)).toEqual([best.id, other.id]);
    expect(hits[0]).toMatchObject({ sessionId: 's1', role: 'assistant', content: best.content });
    expect(hits[0]!.score).toBeGreaterThan(hits[1]!.score);
    expect((await search.search(storage, 'bob', 'descale', 10)).length).toBe(0);
  });

  it('indexes what is noted at once, and what only storage has once the index is resynced', async () => {
    const storage = createMemoryStorage();
    await store(storage, 'alice', [message('s1', 'first words')]);
    let clock = 0;
    const search = createMessageSearch({ maxBytes: 1 << 20, resyncMs: 1000, now: () => clock });
    expect(await search.search(storage, 'alice', 'lantern', 10)).toEqual([]);

    // This node's append, noted: found without reading storage.
    const noted = message('s1', 'a lantern by the door');
    await store(storage, 'alice', [noted]);
    search.noted('alice', 's1', [noted]);
    // Another node's append whose event never came: not seen until the index is resynced…
    const unheard = message('s2', 'the lantern festival');
    await store(storage, 'alice', [unheard]);
    expect(ids(await search.search(storage, 'alice', 'lantern', 10))).toEqual([noted.id]);
    // …which happens once it is older than resyncMs; the noted message is not indexed twice.
    clock = 1000;
    expect(ids(await search.search(storage, 'alice', 'lantern', 10)).sort()).toEqual(
      [noted.id, unheard.id].sort(),
    );
    expect(search.size().messages).toBe(3);
  });

  it('forgets a deleted session at once, and one deleted elsewhere at the next resync', async () => {
    const storage = createMemoryStorage();
    await store(storage, 'alice', [message('s1', 'orange cat')]);
    await store(storage, 'alice', [message('s2', 'orange juice')]);
    await store(storage, 'alice', [message('s3', 'orange paint')]);
    let clock = 0;
    const search = createMessageSearch({ maxBytes: 1 << 20, resyncMs: 1000, now: () => clock });
    expect(await search.search(storage, 'alice', 'orange', 10)).toHaveLength(3);

    await storage.delete(messagesKey('alice', 's1'));
    search.forgetSession('alice', 's1');
    // A note arriving late for the deleted session is not indexed.
    search.noted('alice', 's1', [message('s1', 'orange again')]);
    expect((await search.search(storage, 'alice', 'orange', 10)).map((hit) => hit.sessionId).sort()).toEqual([
      's2',
      's3',
    ]);

    // Deleted by another node, no event heard: gone once resynced.
    await storage.delete(messagesKey('alice', 's2'));
    clock = 1000;
    expect((await search.search(storage, 'alice', 'orange', 10)).map((hit) => hit.sessionId)).toEqual(['s3']);
  });

  it('keeps users within max_bytes, least recently searched dropped first, and still answers with 0', async () => {
    const storage = createMemoryStorage();
    for (const user of ['u1', 'u2', 'u3']) await store(storage, user, [message(`${user}-s`, 'tulip bulbs')]);
    const oneUser = createMessageSearch({ maxBytes: 2000, resyncMs: 60_000 });
    for (const user of ['u1', 'u2', 'u3'])
      expect(await oneUser.search(storage, user, 'tulip', 5)).toHaveLength(1);
    expect(oneUser.size().users).toBe(1);
    expect(oneUser.size().bytes).toBeLessThanOrEqual(2000);

    const none = createMessageSearch({ maxBytes: 0, resyncMs: 60_000 });
    expect(await none.search(storage, 'u1', 'tulip', 5)).toHaveLength(1);
    expect(none.size()).toEqual({ users: 0, bytes: 0, messages: 0 });
  });

  it('reads a grown log from where it left off, and drops an erased user', async () => {
    const storage = createMemoryStorage();
    const first = message('s1', 'walnut bread');
    const later = message('s1', 'walnut cake');
    await store(storage, 'alice', [first]);
    const search = createMessageSearch({ maxBytes: 1 << 20, resyncMs: 0 });
    expect(ids(await search.search(storage, 'alice', 'walnut', 10))).toEqual([first.id]);
    await store(storage, 'alice', [later]);
    expect(ids(await search.search(storage, 'alice', 'walnut', 10)).sort()).toEqual(
      [first.id, later.id].sort(),
    );
    expect(search.size().messages).toBe(2);

    search.forgetUser('alice');
    expect(search.size().users).toBe(0);
  });
});
