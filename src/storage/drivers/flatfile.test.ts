import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isPlatformError } from '../../core/errors.ts';
import { appendJsonLine, readJsonLines } from '../json-lines.ts';
import { createFlatfileStorage, type FlatfileStorage } from './flatfile.ts';

const encoder = new TextEncoder();
const bytes = (text: string) => encoder.encode(text);

let root: string;
let storage: FlatfileStorage;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'parley-flatfile-'));
  storage = createFlatfileStorage({ root });
});

afterEach(async () => {
  await storage.close();
  await rm(root, { recursive: true, force: true });
});

describe('layout on disk', () => {
  it('stores a key as the file at the same relative path, private to its owner', async () => {
    await storage.write('sessions/u1/s1/metadata.json', bytes('{"a":1}'));
    await storage.append('sessions/u1/s1/messages.jsonl', bytes('{"n":1}\n'));
    expect(await readFile(join(root, 'sessions/u1/s1/metadata.json'), 'utf8')).toBe('{"a":1}');
    expect(await readFile(join(root, 'sessions/u1/s1/messages.jsonl'), 'utf8')).toBe('{"n":1}\n');
    expect((await stat(join(root, 'sessions/u1/s1/metadata.json'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(root, 'sessions/u1/s1/messages.jsonl'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(root, 'sessions/u1'))).mode & 0o777).toBe(0o700);
  });

  it('keeps what it stored across instances on the same root', async () => {
    await storage.write('a.json', bytes('1'));
    await appendJsonLine(storage, 'log.jsonl', { n: 1 });
    const reopened = createFlatfileStorage({ root });
    expect(new TextDecoder().decode(await reopened.read('a.json'))).toBe('1');
    expect(await readJsonLines(reopened, 'log.jsonl')).toEqual([{ n: 1 }]);
    await reopened.close();
  });

  it('creates the root when missing', async () => {
    const nested = createFlatfileStorage({ root: join(root, 'not', 'yet') });
    await nested.write('x.json', bytes('1'));
    expect(await nested.list('')).toEqual(['x.json']);
    await nested.close();
  });
});

describe('atomic write', () => {
  it('leaves no temporary file behind', async () => {
    await Promise.all(Array.from({ length: 10 }, (_, index) => storage.write('doc.json', bytes(`${index}`))));
    expect(await readdir(root)).toEqual(['doc.json']);
    expect(storage.stats().writes).toBe(10);
  });

  it('never lists or serves a temporary file left by a crash mid-write', async () => {
    await storage.write('docs/a.json', bytes('1'));
    await writeFile(join(root, 'docs', '.parley-tmp-deadbeefdeadbeef'), 'half a wri');
    expect(await storage.list('')).toEqual(['docs/a.json']);
    expect(await storage.list('docs/.')).toEqual([]);
  });

  it('fails clearly, and cleans up, when the key is a folder of other keys', async () => {
    await storage.write('a/b.json', bytes('1'));
    const error = await storage.write('a', bytes('x')).catch((caught: unknown) => caught);
    expect(isPlatformError(error, 'CHAT_ERR_STORAGE_FAILED')).toBe(true);
    expect(String((error as Error).message)).toContain('conflicts');
    expect(await readdir(root)).toEqual(['a']);
    expect(await readdir(join(root, 'a'))).toEqual(['b.json']);
  });

  it('fails clearly when a key on the path is a file', async () => {
    await storage.write('a', bytes('x'));
    await expect(storage.write('a/b.json', bytes('1'))).rejects.toMatchObject({
      code: 'CHAT_ERR_STORAGE_FAILED',
    });
    await expect(storage.append('a/b.log', bytes('1'))).rejects.toMatchObject({
      code: 'CHAT_ERR_STORAGE_FAILED',
    });
    expect(await storage.list('')).toEqual(['a']);
  });
});

describe('append: group commit', () => {
  it('shares fsyncs between concurrent appends, and resolves each only after its batch is synced', async () => {
    const statsAtResolve: Array<{ appendBatches: number; fileSyncs: number }> = [];
    const appends = Array.from({ length: 100 }, (_, index) =>
      appendJsonLine(storage, 'log.jsonl', { index }).then(() => statsAtResolve.push(storage.stats())),
    );
    await Promise.all(appends);
    const stats = storage.stats();
    expect(stats.appends).toBe(100);
    expect(stats.appendBatches).toBeLessThan(100);
    expect(stats.fileSyncs).toBeLessThan(100);
    for (const at of statsAtResolve) expect(at.fileSyncs).toBe(at.appendBatches);
    expect(await readJsonLines(storage, 'log.jsonl')).toHaveLength(100);
  });

  it('batches the appends that arrive while an fsync is in flight', async () => {
    const waves: Promise<void>[] = [];
    const first = appendJsonLine(storage, 'log.jsonl', { wave: 0 });
    // Queue 50 more while the first batch is being written and synced.
    await new Promise((resolve) => setImmediate(resolve));
    for (let index = 0; index < 50; index += 1)
      waves.push(appendJsonLine(storage, 'log.jsonl', { wave: 1, index }));
    await Promise.all([first, ...waves]);
    expect(storage.stats().appendBatches).toBeLessThanOrEqual(3);
    expect(await readJsonLines(storage, 'log.jsonl')).toHaveLength(51);
  });

  it('keeps appends to different keys independent', async () => {
    await Promise.all(
      Array.from({ length: 40 }, (_, index) => appendJsonLine(storage, `logs/${index % 4}.jsonl`, { index })),
    );
    for (let key = 0; key < 4; key += 1) {
      const lines = await readJsonLines<{ index: number }>(storage, `logs/${key}.jsonl`);
      expect(lines.map((line) => line.index % 4)).toEqual(Array(10).fill(key));
    }
  });

  it('rejects every append of a failing batch and keeps serving other keys', async () => {
    await mkdir(join(root, 'folder.log'));
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, () => storage.append('folder.log', bytes('x'))),
    );
    for (const result of results) {
      expect(result.status).toBe('rejected');
      expect((result as PromiseRejectedResult).reason).toMatchObject({ code: 'CHAT_ERR_STORAGE_FAILED' });
    }
    await storage.append('other.log', bytes('fine'));
    expect(new TextDecoder().decode(await storage.read('other.log'))).toBe('fine');
  });

  it('applies concurrent writes, appends and deletes to one key in call order', async () => {
    const operation = fc.oneof(
      fc.nat(99).map((value) => ({ kind: 'write' as const, value })),
      fc.nat(99).map((value) => ({ kind: 'append' as const, value })),
      fc.constant({ kind: 'delete' as const, value: 0 }),
    );
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(operation, { minLength: 1, maxLength: 15 }), async (operations) => {
        run += 1;
        const key = `ordered/${run}.jsonl`;
        let model: string | undefined;
        const pending: Promise<unknown>[] = [];
        for (const { kind, value } of operations) {
          const line = `{"v":${value}}\n`;
          if (kind === 'write') {
            pending.push(storage.write(key, bytes(line)));
            model = line;
          } else if (kind === 'append') {
            pending.push(storage.append(key, bytes(line)));
            model = (model ?? '') + line;
          } else {
            pending.push(storage.delete(key));
            model = undefined;
          }
        }
        await Promise.all(pending);
        const stored = await storage.read(key);
        expect(stored === undefined ? undefined : new TextDecoder().decode(stored)).toBe(model);
      }),
      { numRuns: 30 },
    );
  });
});

describe('a full disk', () => {
  // /dev/full answers every write with ENOSPC, as a full disk does: a log file linked to it is one.
  it.skipIf(process.platform !== 'linux')(
    'fails an append with CHAT_ERR_STORAGE_FULL (507), and serves other keys',
    async () => {
      await symlink('/dev/full', join(root, 'full.log'));
      const failed = await storage.append('full.log', bytes('no room')).catch((error: unknown) => error);
      expect(failed).toMatchObject({ code: 'CHAT_ERR_STORAGE_FULL', status: 507 });
      expect((failed as Error).message).toContain('no space left');
      await storage.append('other.log', bytes('fine'));
      expect(new TextDecoder().decode(await storage.read('other.log'))).toBe('fine');
    },
  );
});

describe('append: files kept open', () => {
  const openFiles = async () => (await readdir('/proc/self/fd')).length;

  it('opens a file once for a run of appends and closes the least recently used beyond maxOpenFiles', async () => {
    const small = createFlatfileStorage({ root: join(root, 'small'), maxOpenFiles: 2 });
    for (let index = 0; index < 3; index += 1) await small.append('a.log', bytes(`a${index}`));
    expect(small.stats().appendFilesOpened).toBe(1);
    await small.append('b.log', bytes('b'));
    await small.append('c.log', bytes('c')); // a.log, the least recently used, is closed
    await small.append('a.log', bytes('a3'));
    expect(small.stats().appendFilesOpened).toBe(4);
    expect(new TextDecoder().decode(await small.read('a.log'))).toBe('a0a1a2a3');
    await small.close();
  });

  it('appends after a write or a delete of the key to the new file, not the one it replaced', async () => {
    await storage.append('log.jsonl', bytes('{"n":1}\n'));
    await storage.write('log.jsonl', bytes('{"n":2}\n'));
    await storage.append('log.jsonl', bytes('{"n":3}\n'));
    expect(await readFile(join(root, 'log.jsonl'), 'utf8')).toBe('{"n":2}\n{"n":3}\n');
    await storage.delete('log.jsonl');
    await storage.append('log.jsonl', bytes('{"n":4}\n'));
    expect(await readFile(join(root, 'log.jsonl'), 'utf8')).toBe('{"n":4}\n');
  });

  it.runIf(process.platform === 'linux')(
    'closes every file and folder it holds open when closed',
    async () => {
      const before = await openFiles();
      await Promise.all(
        Array.from({ length: 20 }, (_, index) => storage.append(`logs/${index}.log`, bytes('x'))),
      );
      // The 20 logs, the folders it fsynced (kept open for the next fsync), and the append journal.
      expect(await openFiles()).toBe(before + 23);
      await storage.close();
      expect(await openFiles()).toBe(before);
    },
  );
});

describe('creating files and folders', () => {
  it('makes a folder again that was removed behind its back, for a write and for a new log', async () => {
    await storage.write('a/b/value.json', bytes('1'));
    await storage.append('a/b/log.jsonl', bytes('{"n":1}\n'));
    await storage.close();
    storage = createFlatfileStorage({ root });
    await storage.write('a/b/value.json', bytes('2'));
    await rm(join(root, 'a'), { recursive: true });
    await storage.write('a/b/value.json', bytes('3'));
    await storage.append('a/b/log.jsonl', bytes('{"n":2}\n'));
    expect(await readFile(join(root, 'a', 'b', 'value.json'), 'utf8')).toBe('3');
    expect(await readFile(join(root, 'a', 'b', 'log.jsonl'), 'utf8')).toBe('{"n":2}\n');
  });

  it('fsyncs the folder of a log it creates before the first append resolves, not of one already there', async () => {
    await storage.append('logs/new.jsonl', bytes('{"n":1}\n'));
    // The new file's folder, and the root, where the new folder was made.
    expect(storage.stats().directorySyncs).toBe(2);
    await storage.close();
    storage = createFlatfileStorage({ root });
    await storage.append('logs/new.jsonl', bytes('{"n":2}\n'));
    expect(storage.stats().directorySyncs).toBe(0);
    await storage.append('logs/other.jsonl', bytes('{"n":1}\n'));
    expect(storage.stats().directorySyncs).toBe(1);
    expect(await readFile(join(root, 'logs', 'new.jsonl'), 'utf8')).toBe('{"n":1}\n{"n":2}\n');
  });

  it('syncs the bytes but not the folder of a write made with durable: false', async () => {
    await storage.write('meta/a.json', bytes('{"v":1}'));
    const before = storage.stats();
    await storage.write('meta/a.json', bytes('{"v":2}'), { durable: false });
    const after = storage.stats();
    // The new bytes are synced before the rename (a crash leaves the old file or the new, whole) ...
    expect(after.fileSyncs - before.fileSyncs).toBe(1);
    // ... but not the folder that makes the rename itself durable.
    expect(after.directorySyncs - before.directorySyncs).toBe(0);
    await storage.write('meta/a.json', bytes('{"v":3}'));
    expect(storage.stats().directorySyncs - after.directorySyncs).toBe(1);
    expect(await readFile(join(root, 'meta', 'a.json'), 'utf8')).toBe('{"v":3}');
  });

  it('shares folder fsyncs between files created in one folder at the same time', async () => {
    await storage.write('sessions/u/first.json', bytes('{}'));
    const before = storage.stats().directorySyncs;
    await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        storage.write(`sessions/u/${index}/metadata.json`, bytes('{}')),
      ),
    );
    // Each new folder is synced, and the shared parent far fewer than 20 times (one under way, one after).
    const parentSyncs = storage.stats().directorySyncs - before - 20;
    expect(parentSyncs).toBeGreaterThanOrEqual(1);
    expect(parentSyncs).toBeLessThan(20);
    for (let index = 0; index < 20; index++) {
      expect(await readFile(join(root, 'sessions', 'u', String(index), 'metadata.json'), 'utf8')).toBe('{}');
    }
  });

  it('writes an empty value durably, and replaces it', async () => {
    await storage.write('dir/empty.json', new Uint8Array(0));
    expect((await storage.read('dir/empty.json'))?.length).toBe(0);
    await storage.write('dir/empty.json', bytes('1'));
    expect(await readFile(join(root, 'dir', 'empty.json'), 'utf8')).toBe('1');
  });

  it('creates the first log in a folder it made at once, and still appends to one put there behind its back', async () => {
    await storage.write('s1/metadata.json', bytes('{}'));
    await storage.write('s2/metadata.json', bytes('{}'));
    const before = storage.stats().directorySyncs;
    await storage.append('s1/messages.jsonl', bytes('{"n":1}\n'));
    // The new log's folder entry is synced before the append resolves.
    expect(storage.stats().directorySyncs).toBe(before + 1);
    await writeFile(join(root, 's2', 'messages.jsonl'), '{"n":0}\n{"n":');
    await storage.append('s2/messages.jsonl', bytes('{"n":1}\n'));
    expect(await readFile(join(root, 's1', 'messages.jsonl'), 'utf8')).toBe('{"n":1}\n');
    expect(await readFile(join(root, 's2', 'messages.jsonl'), 'utf8')).toBe('{"n":0}\n{"n":1}\n');
  });

  it('appends to an empty file that is already there', async () => {
    await mkdir(join(root, 'logs'));
    await writeFile(join(root, 'logs', 'empty.jsonl'), '');
    await storage.append('logs/empty.jsonl', bytes('{"n":1}\n'));
    expect(await readFile(join(root, 'logs', 'empty.jsonl'), 'utf8')).toBe('{"n":1}\n');
  });
});

describe('bytes handed in', () => {
  it('stores what they were when called, though the caller reuses their memory (Buffer views) at once', async () => {
    const shared = new Uint8Array(32);
    const line = Buffer.from(shared.buffer, 0, 8);
    line.write('{"n":1}\n');
    const appended = storage.append('log.jsonl', line);
    const value = Buffer.from(shared.buffer, 8, 4);
    value.write('{"a"');
    const written = storage.write('doc.json', value);
    shared.fill(0x21);
    await Promise.all([appended, written]);
    expect(await readFile(join(root, 'log.jsonl'), 'utf8')).toBe('{"n":1}\n');
    expect(await readFile(join(root, 'doc.json'), 'utf8')).toBe('{"a"');
  });
});

describe('append: torn last line', () => {
  it('reads a .jsonl file with a torn last line without it, and cuts it before the next append', async () => {
    await mkdir(join(root, 'logs'));
    await writeFile(join(root, 'logs/chat.jsonl'), '{"n":1}\n{"n":2}\n{"n":3,"te');
    expect(await readJsonLines(storage, 'logs/chat.jsonl')).toEqual([{ n: 1 }, { n: 2 }]);
    await appendJsonLine(storage, 'logs/chat.jsonl', { n: 4 });
    expect(await readFile(join(root, 'logs/chat.jsonl'), 'utf8')).toBe('{"n":1}\n{"n":2}\n{"n":4}\n');
    expect(storage.stats().tornTailsCut).toBe(1);
  });

  it('cuts a torn line longer than one scan chunk, and a file that is all one torn line', async () => {
    const long = `{"text":"${'y'.repeat(200_000)}`;
    await writeFile(join(root, 'long.jsonl'), `{"n":1}\n${long}`);
    await writeFile(join(root, 'only.jsonl'), long);
    await appendJsonLine(storage, 'long.jsonl', { n: 2 });
    await appendJsonLine(storage, 'only.jsonl', { n: 2 });
    expect(await readFile(join(root, 'long.jsonl'), 'utf8')).toBe('{"n":1}\n{"n":2}\n');
    expect(await readFile(join(root, 'only.jsonl'), 'utf8')).toBe('{"n":2}\n');
  });

  it('leaves the bytes of other keys exactly as appended', async () => {
    await writeFile(join(root, 'raw.log'), 'no newline');
    await storage.append('raw.log', bytes(' and more'));
    expect(await readFile(join(root, 'raw.log'), 'utf8')).toBe('no newline and more');
  });
});
