import { describe, expect, it, vi } from 'vitest';
import type { Message } from '../../core/types.ts';
import { cacheStorage } from '../../storage/cached.ts';
import { createMemoryStorage } from '../../storage/drivers/memory.ts';
import { encodeJsonLine } from '../../storage/json-lines.ts';
import { createHistoryCache } from './history-cache.ts';
import { messagesKey } from './sessions.ts';

function message(id: string, role: 'user' | 'assistant' = 'user', turnId = `turn-${id}`): Message {
  return {
    id,
    role,
    content: `text of ${id}`,
    timestamp: '2025-01-01T00:00:00.000Z',
    metadata: { sessionId: 's1', turnId },
  };
}

/** Storage as another node sees it: appends straight to the log, behind this node's cache. */
function logOf(storage: ReturnType<typeof createMemoryStorage>) {
  const key = messagesKey('u1', 's1');
  return {
    append: (value: Message) => storage.append(key, encodeJsonLine(value)),
    write: (values: Message[]) =>
      storage.write(key, Buffer.concat(values.map((value) => encodeJsonLine(value)))),
    delete: () => storage.delete(key),
  };
}

const ids = (log: { slice(): Message[] }) => log.slice().map((value) => value.id);

describe('createHistoryCache', () => {
  it('sees what any writer appended since the last load, and indexes turns', async () => {
    const storage = createMemoryStorage();
    const log = logOf(storage);
    const cache = createHistoryCache({ maxBytes: 1 << 20 });
    expect((await cache.load(storage, 'u1', 's1')).count).toBe(0);
    await log.append(message('a'));
    await log.append(message('b', 'assistant', 'turn-a'));
    const first = await cache.load(storage, 'u1', 's1');
    expect(ids(first)).toEqual(['a', 'b']);
    expect(first.turn('turn-a')).toEqual({ user: message('a'), reply: message('b', 'assistant', 'turn-a') });

    await log.append(message('c'));
    const second = await cache.load(storage, 'u1', 's1');
    expect(ids(second)).toEqual(['a', 'b', 'c']);
    expect(second.at(2).id).toBe('c');
    // The earlier load still shows the log as it read it.
    expect(first.count).toBe(2);
    expect(ids(first)).toEqual(['a', 'b']);
    expect(first.turn('turn-c')).toEqual({});
    expect(second.turn('turn-c')?.user?.id).toBe('c');
    expect(cache.size().sessions).toBe(1);
  });

  it('parses again from the start when the log was replaced or deleted behind its back', async () => {
    const storage = createMemoryStorage();
    const log = logOf(storage);
    const cache = createHistoryCache({ maxBytes: 1 << 20 });
    await log.write([message('a'), message('b')]);
    expect(ids(await cache.load(storage, 'u1', 's1'))).toEqual(['a', 'b']);
    // Same length, other bytes: the cached prefix no longer matches.
    await log.write([message('x'), message('y')]);
    expect(ids(await cache.load(storage, 'u1', 's1'))).toEqual(['x', 'y']);
    await log.write([message('z')]);
    expect(ids(await cache.load(storage, 'u1', 's1'))).toEqual(['z']);
    await log.delete();
    expect((await cache.load(storage, 'u1', 's1')).count).toBe(0);
  });

  it('reads only the end of a log it holds, and a log grown by two loads at once once', async () => {
    const storage = createMemoryStorage();
    const log = logOf(storage);
    const reads: string[] = [];
    const view = {
      ...storage,
      read: (key: string) => {
        reads.push('read');
        return storage.read(key);
      },
      readFrom: (key: string, offset: number) => {
        reads.push(`from ${offset}`);
        return storage.readFrom!(key, offset);
      },
    };
    const cache = createHistoryCache({ maxBytes: 1 << 20 });
    for (const id of ['a', 'b', 'c']) await log.append(message(id));
    expect(ids(await cache.load(view, 'u1', 's1'))).toEqual(['a', 'b', 'c']);
    await log.append(message('d'));
    const [first, second] = await Promise.all([cache.load(view, 'u1', 's1'), cache.load(view, 'u1', 's1')]);
    expect(ids(first)).toEqual(['a', 'b', 'c', 'd']);
    expect(ids(second)).toEqual(['a', 'b', 'c', 'd']);
    const length = (await storage.read(messagesKey('u1', 's1')))!.length;
    const before = length - encodeJsonLine(message('d')).length;
    expect(reads[0]).toBe('read');
    expect(reads.slice(1).every((read) => read.startsWith('from '))).toBe(true);
    expect(Number(reads[1]!.slice(5))).toBe(before - 64);
  });

  it('hands back the message objects this node appended, once their lines are read', async () => {
    const storage = createMemoryStorage();
    const log = logOf(storage);
    const cache = createHistoryCache({ maxBytes: 1 << 20 });
    await log.append(message('a'));
    await cache.load(storage, 'u1', 's1');
    const own = message('b', 'assistant', 'turn-a');
    await log.append(own);
    cache.appended('u1', 's1', [own]);
    const loaded = await cache.load(storage, 'u1', 's1');
    expect(loaded.at(1)).toBe(own);
    expect(loaded.turn('turn-a')?.reply).toBe(own);
  });

  it("takes back this node's own appends found byte for byte without parsing them, and parses the rest", async () => {
    const storage = createMemoryStorage();
    const log = logOf(storage);
    const cache = createHistoryCache({ maxBytes: 1 << 20 });
    await log.append(message('a'));
    await cache.load(storage, 'u1', 's1');
    // Two of this node's appends (one of two messages), then another node's line, then one more own.
    const turn = [message('b'), message('c', 'assistant', 'turn-b')];
    const reply = message('e', 'assistant', 'turn-d');
    const appendOwn = async (messages: Message[]) => {
      const bytes = Buffer.concat(messages.map((value) => encodeJsonLine(value)));
      await storage.append(messagesKey('u1', 's1'), bytes);
      cache.appended('u1', 's1', messages, bytes);
    };
    await appendOwn(turn);
    const parse = vi.spyOn(JSON, 'parse');
    try {
      const loaded = await cache.load(storage, 'u1', 's1');
      expect(parse).not.toHaveBeenCalled();
      expect(loaded.at(1)).toBe(turn[0]);
      expect(loaded.turn('turn-b')).toEqual({ user: turn[0], reply: turn[1] });
      await log.append(message('d'));
      await appendOwn([reply]);
      const later = await cache.load(storage, 'u1', 's1');
      // Another node's line first: from there on, parsed (own objects still taken back by id).
      expect(parse).toHaveBeenCalledTimes(2);
      expect(ids(later)).toEqual(['a', 'b', 'c', 'd', 'e']);
      expect(later.at(4)).toBe(reply);
    } finally {
      parse.mockRestore();
    }
  });

  it('ignores a torn last line until it is whole', async () => {
    const storage = createMemoryStorage();
    const cache = createHistoryCache({ maxBytes: 1 << 20 });
    const line = encodeJsonLine(message('b'));
    // The bytes a crash mid-append leaves (no driver accepts a partial line), then the line made whole.
    const reads = [
      Buffer.concat([encodeJsonLine(message('a')), line.subarray(0, 10)]),
      Buffer.concat([encodeJsonLine(message('a')), line]),
    ];
    const view = { ...storage, read: async () => reads.shift() };
    expect(ids(await cache.load(view, 'u1', 's1'))).toEqual(['a']);
    expect(ids(await cache.load(view, 'u1', 's1'))).toEqual(['a', 'b']);
  });

  it('keeps at most max_bytes of logs, dropping the least recently used, and forgets deleted sessions', async () => {
    const storage = createMemoryStorage();
    const line = encodeJsonLine(message('a')).length;
    const cache = createHistoryCache({ maxBytes: line * 2 });
    for (const session of ['s1', 's2', 's3']) {
      await storage.append(messagesKey('u1', session), encodeJsonLine(message('a')));
      await cache.load(storage, 'u1', session);
    }
    expect(cache.size()).toEqual({ sessions: 2, bytes: line * 2 });
    cache.forget('u1', 's3');
    expect(cache.size()).toEqual({ sessions: 1, bytes: line });
    // A log larger than the whole budget is read every time, never kept.
    const small = createHistoryCache({ maxBytes: line - 1 });
    expect((await small.load(storage, 'u1', 's1')).count).toBe(1);
    expect(small.size()).toEqual({ sessions: 0, bytes: 0 });
  });

  it('keeps only the messages turns still need, and sends what it dropped to the whole log', async () => {
    const storage = createMemoryStorage();
    const log = logOf(storage);
    const cache = createHistoryCache({ maxBytes: 1 << 20 });
    for (let turn = 0; turn < 200; turn++) {
      await log.append(message(`u${turn}`, 'user', `t${turn}`));
      await log.append(message(`r${turn}`, 'assistant', `t${turn}`));
    }
    const whole = await cache.load(storage, 'u1', 's1');
    const wholeBytes = cache.size().bytes;
    // Turns now start their window at message 300: the cache keeps a little before it.
    cache.retain('u1', 's1', 300);
    const held = await cache.load(storage, 'u1', 's1');
    expect(held.count).toBe(400);
    expect(held.first).toBeGreaterThan(200);
    expect(held.first).toBeLessThanOrEqual(300);
    expect(held.identity).toBe(whole.identity);
    expect(held.at(399).id).toBe('r199');
    expect(() => held.at(held.first - 1)).toThrow(RangeError);
    expect(held.slice().length).toBe(400 - held.first);
    expect(cache.size().bytes).toBeLessThan(wholeBytes / 2);
    // A turn it holds is answered; one whose messages it dropped must be asked of the whole log; a new one
    // is known to be new.
    expect(held.turn('t199')?.user?.id).toBe('u199');
    expect(held.turn('t3')).toBeUndefined();
    expect(held.turn('never')).toEqual({});
    const reread = await cache.loadWhole(storage, 'u1', 's1');
    expect(reread.first).toBe(0);
    expect(reread.turn('t3')?.reply?.id).toBe('r3');
    // The whole log stays cached (the next older page is likely asked next) until a turn retains again.
    expect((await cache.load(storage, 'u1', 's1')).first).toBe(0);
    cache.retain('u1', 's1', 300);
    expect((await cache.load(storage, 'u1', 's1')).turn('t3')).toBeUndefined();
    // A later message of a dropped turn (a repeat answered again) still sends it to the whole log.
    await log.append(message('r3-again', 'assistant', 't3'));
    expect((await cache.load(storage, 'u1', 's1')).turn('t3')).toBeUndefined();
    // The earlier, whole snapshot still shows every message.
    expect(whole.at(0).id).toBe('u0');
  });

  it('holds little more than a short window of a long chat, turn after turn', async () => {
    const storage = createMemoryStorage();
    const log = logOf(storage);
    const cache = createHistoryCache({ maxBytes: 1 << 24 });
    let most = 0;
    // Long messages: the window is the newest 12 (as a token budget of 3,000 makes of 1 KB messages).
    for (let turn = 0; turn < 300; turn++) {
      await log.append(message(`u${turn}`, 'user', `t${turn}`));
      await log.append(message(`r${turn}`, 'assistant', `t${turn}`));
      const held = await cache.load(storage, 'u1', 's1');
      cache.retain('u1', 's1', Math.max(0, held.count - 12));
      most = Math.max(most, held.count - held.first);
    }
    // The window, the 16 kept before it, and at most 8 waiting to be dropped (a fixed batch of 64 held 92).
    expect(most).toBeLessThanOrEqual(12 + 16 + 8 + 2);
  });

  it('reads a long log once to page back through it, not once a page', async () => {
    const storage = createMemoryStorage();
    const log = logOf(storage);
    let reads = 0;
    const view = {
      ...storage,
      read: (key: string) => {
        reads += 1;
        return storage.read(key);
      },
    };
    const cache = createHistoryCache({ maxBytes: 1 << 22 });
    for (let turn = 0; turn < 500; turn++) await log.append(message(`m${turn}`, 'user', `t${turn}`));
    await cache.load(view, 'u1', 's1');
    cache.retain('u1', 's1', 480);
    expect((await cache.load(view, 'u1', 's1')).first).toBeGreaterThan(400);
    reads = 0;
    // Pages of 50 from the oldest held back to the start: the first reads the whole log, the rest find it.
    let end = (await cache.load(view, 'u1', 's1')).first;
    while (end > 0) {
      let held = await cache.load(view, 'u1', 's1');
      if (held.first > Math.max(0, end - 50)) held = await cache.loadWhole(view, 'u1', 's1');
      expect(held.slice(Math.max(0, end - 50), end).length).toBe(Math.min(50, end));
      end -= 50;
    }
    expect(reads).toBe(1);
  });

  it('does not keep a whole log above an eighth of max_bytes, so it cannot push the other sessions out', async () => {
    const storage = createMemoryStorage();
    const log = logOf(storage);
    for (let turn = 0; turn < 500; turn++) await log.append(message(`m${turn}`, 'user', `t${turn}`));
    const logBytes = (await storage.read(messagesKey('u1', 's1')))!.length;
    const cache = createHistoryCache({ maxBytes: logBytes * 4 }); // the log is a quarter of it
    await storage.append(messagesKey('u2', 's2'), encodeJsonLine(message('other')));
    await cache.load(storage, 'u2', 's2');
    await cache.load(storage, 'u1', 's1');
    cache.retain('u1', 's1', 480);
    const whole = await cache.loadWhole(storage, 'u1', 's1');
    expect(whole.first).toBe(0);
    expect((await cache.load(storage, 'u1', 's1')).first).toBeGreaterThan(400); // the window, not the whole
    expect(cache.size().sessions).toBe(2);
  });

  it('goes on reading what other writers append to a log it holds only the end of', async () => {
    const storage = createMemoryStorage();
    const log = logOf(storage);
    const cache = createHistoryCache({ maxBytes: 1 << 20 });
    for (let turn = 0; turn < 100; turn++) await log.append(message(`m${turn}`, 'user', `t${turn}`));
    await cache.load(storage, 'u1', 's1');
    cache.retain('u1', 's1', 95);
    // Another node appends two turns (and this node one of its own) behind the cache.
    await log.append(message('n1', 'user', 'x1'));
    await log.append(message('n2', 'assistant', 'x1'));
    const own = message('o1', 'user', 'x2');
    await log.append(own);
    cache.appended('u1', 's1', [own]);
    const loaded = await cache.load(storage, 'u1', 's1');
    expect(loaded.count).toBe(103);
    expect(loaded.first).toBeGreaterThan(0);
    expect(loaded.slice(100).map((one) => one.id)).toEqual(['n1', 'n2', 'o1']);
    expect(loaded.at(102)).toBe(own);
    expect(loaded.turn('x1')).toEqual({ user: loaded.at(100), reply: loaded.at(101) });
    expect(loaded.turn('t99')?.user?.id).toBe('m99');
    expect(loaded.turn('t2')).toBeUndefined();
  });

  it('loads without a wait what a load would give, when the storage holds the new end in its cache', async () => {
    const storage = cacheStorage(createMemoryStorage(), { ttlMs: 60_000, maxEntries: 100 });
    const cache = createHistoryCache({ maxBytes: 1 << 20 });
    const key = messagesKey('u1', 's1');
    // Nothing cached yet: only `load` can tell.
    expect(cache.loadNow(storage, 'u1', 's1')).toBeUndefined();
    await storage.append(key, encodeJsonLine(message('a')));
    expect(ids(await cache.load(storage, 'u1', 's1'))).toEqual(['a']);
    await storage.append(key, encodeJsonLine(message('b', 'assistant', 'turn-a')));
    const now = cache.loadNow(storage, 'u1', 's1');
    expect(now === undefined ? undefined : ids(now)).toEqual(['a', 'b']);
    expect(now?.turn('turn-a')?.reply?.id).toBe('b');
    // A log replaced in place (its cached end no longer matches): read again, by `load`.
    await storage.write(key, encodeJsonLine(message('z')));
    expect(cache.loadNow(storage, 'u1', 's1')).toBeUndefined();
    expect(ids(await cache.load(storage, 'u1', 's1'))).toEqual(['z']);
    // A storage without a cache cannot tell at once.
    const plain = createMemoryStorage();
    await plain.append(key, encodeJsonLine(message('a')));
    await cache.load(plain, 'u1', 's1');
    expect(cache.loadNow(plain, 'u1', 's1')).toBeUndefined();
  });
});
