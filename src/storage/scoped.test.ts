import { describe, expect, it } from 'vitest';
import { isPlatformError } from '../core/errors.ts';
import { createMemoryStorage } from './drivers/memory.ts';
import { scopeStorage } from './scoped.ts';

const encoder = new TextEncoder();
const bytes = (text: string) => encoder.encode(text);

describe('scopeStorage', () => {
  it('puts a module’s keys under its root and lists them relative to it', async () => {
    const shared = createMemoryStorage();
    const chat = scopeStorage(shared, 'text_chat');
    await chat.write('sessions/u1/s1/metadata.json', bytes('{}'));
    await chat.append('sessions/u1/s1/messages.jsonl', bytes('{"n":1}\n'));
    expect(await shared.list('')).toEqual([
      'text_chat/sessions/u1/s1/messages.jsonl',
      'text_chat/sessions/u1/s1/metadata.json',
    ]);
    expect(await chat.list('sessions/')).toEqual([
      'sessions/u1/s1/messages.jsonl',
      'sessions/u1/s1/metadata.json',
    ]);
    expect(await chat.exists('sessions/u1/s1/metadata.json')).toBe(true);
  });

  it('keeps two modules apart, even when their names share a prefix', async () => {
    const shared = createMemoryStorage();
    const memory = scopeStorage(shared, 'memory');
    const memoryExtra = scopeStorage(shared, 'memory_extra');
    await memory.write('bank.jsonl', bytes('{"secret":1}\n'));
    await memoryExtra.write('other.json', bytes('{}'));
    expect(await memoryExtra.read('bank.jsonl')).toBeUndefined();
    expect(await memoryExtra.list('')).toEqual(['other.json']);
    expect(await memory.list('')).toEqual(['bank.jsonl']);
    expect(await memoryExtra.delete('bank.jsonl')).toBe(false);
    expect(await memory.exists('bank.jsonl')).toBe(true);
  });

  it('gives a module no way to name a key of another root', async () => {
    const shared = createMemoryStorage();
    await shared.write('users/u1.json', bytes('{"password":"x"}'));
    const rogue = scopeStorage(shared, 'rogue');
    for (const key of ['../users/u1.json', '/users/u1.json', '..\\users\\u1.json', 'a/../../users/u1.json']) {
      const error = await rogue.read(key).catch((caught: unknown) => caught);
      expect(isPlatformError(error, 'CHAT_ERR_STORAGE_INVALID_KEY'), key).toBe(true);
    }
    await expect(rogue.list('../')).rejects.toMatchObject({ code: 'CHAT_ERR_STORAGE_INVALID_KEY' });
    expect(await rogue.list('')).toEqual([]);
  });

  it('accepts a nested root, with or without a trailing slash, and rejects an invalid one', async () => {
    const shared = createMemoryStorage();
    await scopeStorage(shared, 'modules/chat/').write('a.json', bytes('1'));
    expect(await scopeStorage(shared, 'modules/chat').list('')).toEqual(['a.json']);
    for (const root of ['', '/', '../x', 'a//b']) {
      expect(() => scopeStorage(shared, root), root).toThrow(/invalid storage key/);
    }
  });

  it('closing a view leaves the shared storage open for the others', async () => {
    const shared = createMemoryStorage();
    const first = scopeStorage(shared, 'first');
    const second = scopeStorage(shared, 'second');
    await first.close();
    await expect(first.read('a.json')).rejects.toMatchObject({ code: 'CHAT_ERR_STORAGE_UNAVAILABLE' });
    await second.write('a.json', bytes('1'));
    expect(await second.exists('a.json')).toBe(true);
  });
});
