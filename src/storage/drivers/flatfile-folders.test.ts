/**
 * The flatfile driver removes the folders a delete emptied (nothing stays named after what was deleted: a
 * user's id, a chat's), and a file created in such a folder at the same moment is still created.
 */

import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createFlatfileStorage, type FlatfileStorage } from './flatfile.ts';

// A hook run before the driver opens a file, to put a delete into the moment between the making of a
// folder and the creating of a file in it.
const hooks = vi.hoisted(() => ({ beforeOpen: undefined as ((path: string) => Promise<void>) | undefined }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...actual,
    open: async (...args: Parameters<typeof actual.open>) => {
      const hook = hooks.beforeOpen;
      if (hook !== undefined) await hook(String(args[0]));
      return actual.open(...args);
    },
  };
});

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array | undefined) =>
  value === undefined ? undefined : new TextDecoder().decode(value);

let root: string;
let storage: FlatfileStorage;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'parley-flatfile-folders-'));
  storage = createFlatfileStorage({ root });
});

afterEach(async () => {
  hooks.beforeOpen = undefined;
  await storage.close();
  await rm(root, { recursive: true, force: true });
});

describe('deleting', () => {
  it('removes the folders it emptied, up to the root, and keeps those that hold other keys', async () => {
    await storage.write('sessions/u1/s1/metadata.json', bytes('{}'));
    await storage.append('sessions/u1/s1/messages.jsonl', bytes('{"n":1}\n'));
    await storage.write('sessions/u1/s2/metadata.json', bytes('{}'));
    await storage.write('sessions/u2/s3/metadata.json', bytes('{}'));

    expect(await storage.delete('sessions/u1/s1/metadata.json')).toBe(true);
    expect(await readdir(join(root, 'sessions/u1/s1'))).toEqual(['messages.jsonl']);
    expect(await storage.delete('sessions/u1/s1/messages.jsonl')).toBe(true);
    expect(await readdir(join(root, 'sessions/u1'))).toEqual(['s2']);
    expect(await storage.delete('sessions/u1/s2/metadata.json')).toBe(true);
    expect(await readdir(join(root, 'sessions'))).toEqual(['u2']);
    expect(await storage.delete('sessions/u2/s3/metadata.json')).toBe(true);
    // The root stays, empty.
    expect(await readdir(root)).toEqual([]);
    expect((await stat(root)).isDirectory()).toBe(true);
    // A missing key removes nothing and says so.
    expect(await storage.delete('sessions/u2/s3/metadata.json')).toBe(false);
  });

  it('writes and appends again into a folder it removed, fsyncing the folders made again', async () => {
    await storage.write('a/b/value.json', bytes('1'));
    await storage.append('a/b/log.jsonl', bytes('{"n":1}\n'));
    await storage.delete('a/b/value.json');
    await storage.delete('a/b/log.jsonl');
    expect(await readdir(root)).toEqual([]);
    const syncsBefore = storage.stats().directorySyncs;
    await storage.write('a/b/value.json', bytes('2'));
    await storage.append('a/b/log.jsonl', bytes('{"n":2}\n'));
    // The new folders and the root were fsynced (through handles of the folders made again).
    expect(storage.stats().directorySyncs - syncsBefore).toBeGreaterThanOrEqual(3);
    expect(await readFile(join(root, 'a/b/value.json'), 'utf8')).toBe('2');
    expect(await readFile(join(root, 'a/b/log.jsonl'), 'utf8')).toBe('{"n":2}\n');
  });

  it('creates a file whose folder a delete removes between the folder’s making and the file’s creating', async () => {
    await storage.write('sessions/u/s/metadata.json', bytes('{}'));
    await storage.close();
    // A new instance: it knows no folder, so a write makes the folder first, then creates its file.
    storage = createFlatfileStorage({ root });
    let deleted: Promise<boolean> | undefined;
    hooks.beforeOpen = async (path) => {
      if (deleted !== undefined || !path.startsWith(join(root, 'sessions/u/s/'))) return;
      // The folder is made (it was there); the delete empties and removes it before the file is created.
      deleted = storage.delete('sessions/u/s/metadata.json');
      await deleted;
    };
    await storage.write('sessions/u/s/reply.json', bytes('{"ok":true}'));
    expect(await deleted).toBe(true);
    expect(text(await storage.read('sessions/u/s/reply.json'))).toBe('{"ok":true}');
    expect(await storage.list('sessions/')).toEqual(['sessions/u/s/reply.json']);
  });

  it('loses no write or append racing deletes of other keys in the same folders', async () => {
    for (let round = 0; round < 40; round++) {
      const folder = `race/${round % 4}`;
      await storage.write(`${folder}/old.json`, bytes('old'));
      const results = await Promise.allSettled([
        storage.delete(`${folder}/old.json`),
        storage.write(`${folder}/new-${round}.json`, bytes(`${round}`)),
        storage.append(`${folder}/log-${round}.jsonl`, bytes(`{"round":${round}}\n`)),
        storage.delete(`${folder}/new-${round}.json`),
      ]);
      expect(results.map((result) => result.status)).toEqual([
        'fulfilled',
        'fulfilled',
        'fulfilled',
        'fulfilled',
      ]);
      expect(text(await storage.read(`${folder}/log-${round}.jsonl`))).toBe(`{"round":${round}}\n`);
      expect(await storage.exists(`${folder}/new-${round}.json`)).toBe(false);
      await storage.delete(`${folder}/log-${round}.jsonl`);
    }
    expect(await readdir(root)).toEqual([]);
  });
});
