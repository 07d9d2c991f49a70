import {
  appendFile,
  copyFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readJsonLines } from '../json-lines.ts';
import { createFlatfileStorage, type FlatfileStorage } from './flatfile.ts';
import { openAppendJournal } from './flatfile-journal.ts';

const encoder = new TextEncoder();
const line = (value: unknown) => encoder.encode(`${JSON.stringify(value)}\n`);

let root: string;
let storage: FlatfileStorage;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'parley-journal-'));
  storage = createFlatfileStorage({ root });
});

afterEach(async () => {
  await storage.close();
  await rm(root, { recursive: true, force: true });
});

async function journals(): Promise<string[]> {
  return (await readdir(root)).filter((name) => name.startsWith('.parley-tmp-journal-'));
}

/**
 * The journal as a process that died with it would leave it: a copy under the name of a process that is
 * not running (no pid is this large).
 */
async function leftByDeadProcess(): Promise<string> {
  const [live] = await journals();
  if (live === undefined) throw new Error('no journal to copy');
  const dead = join(root, '.parley-tmp-journal-999999999-0badc0de-0');
  await copyFile(join(root, live), dead);
  return dead;
}

describe('the append journal', () => {
  it('makes the appends of many files durable with a few journal flushes (group commit across files)', async () => {
    await Promise.all(
      Array.from({ length: 50 }, (_, index) =>
        storage.append(`sessions/u/s${index}/messages.jsonl`, line({ index })),
      ),
    );
    const stats = storage.stats();
    expect(stats.appendBatches).toBe(50);
    expect(stats.journalFlushes).toBeGreaterThanOrEqual(1);
    expect(stats.journalFlushes).toBeLessThan(50);
    for (let index = 0; index < 50; index++) {
      expect(await readJsonLines(storage, `sessions/u/s${index}/messages.jsonl`)).toEqual([{ index }]);
    }
  });

  it('writes again, after a crash of the machine, the acknowledged appends its files lost', async () => {
    for (let n = 0; n < 5; n++) await storage.append('a.jsonl', line({ n }));
    await storage.append('b.jsonl', line({ b: 1 }));
    await leftByDeadProcess();
    await storage.close();
    // What the page cache held and the disk did not: a.jsonl lost its last two lines, b.jsonl all of it.
    const whole = await readFile(join(root, 'a.jsonl'), 'utf8');
    const threeLines = whole.split('\n').slice(0, 3).join('\n').length + 1;
    await truncate(join(root, 'a.jsonl'), threeLines + 4);
    await truncate(join(root, 'b.jsonl'), 0);

    storage = createFlatfileStorage({ root });
    expect(await readFile(join(root, 'a.jsonl'), 'utf8')).toBe(whole);
    expect(await readJsonLines(storage, 'b.jsonl')).toEqual([{ b: 1 }]);
    // Replayed, synced and removed: nothing is left to replay again.
    expect(await journals()).toEqual([]);
  });

  it('replays the whole records of a journal whose last write a crash cut short', async () => {
    await storage.append('a.jsonl', line({ n: 1 }));
    await storage.append('a.jsonl', line({ n: 2 }));
    const dead = await leftByDeadProcess();
    await storage.close();
    // A record torn by the crash: its length says more than is there.
    await appendFile(dead, Buffer.from([200, 0, 0, 0, 1, 2, 3]));
    await truncate(join(root, 'a.jsonl'), 0);

    storage = createFlatfileStorage({ root });
    expect(await readJsonLines(storage, 'a.jsonl')).toEqual([{ n: 1 }, { n: 2 }]);
  });

  it('replays, in the order they were written, the journal files a crash during a checkpoint leaves', async () => {
    await storage.append('a.jsonl', line({ part: 'A' }));
    await storage.append('other.jsonl', line({ other: true }));
    const [first] = await journals();
    await copyFile(join(root, first as string), join(root, '.parley-tmp-journal-999999999-0badc0de-0'));
    // A delete of a journaled key checkpoints: the next records go to a new file.
    await storage.delete('other.jsonl');
    await storage.append('a.jsonl', line({ part: 'B' }));
    const [second] = (await journals()).filter((name) => !name.includes('999999999'));
    expect(second).not.toBe(first);
    await copyFile(join(root, second as string), join(root, '.parley-tmp-journal-999999999-0badc0de-1'));
    await storage.close();
    await truncate(join(root, 'a.jsonl'), 0);

    storage = createFlatfileStorage({ root });
    expect(await readJsonLines(storage, 'a.jsonl')).toEqual([{ part: 'A' }, { part: 'B' }]);
    expect(await storage.exists('other.jsonl')).toBe(false);
  });

  it('leaves alone the journal of a process that is still running', async () => {
    const parentsJournal = join(root, `.parley-tmp-journal-${process.ppid}-00000000-0`);
    await writeFile(parentsJournal, 'not ours');
    const other = createFlatfileStorage({ root });
    await other.close();
    expect(await readFile(parentsJournal, 'utf8')).toBe('not ours');
  });

  it('keeps no journal record of a deleted or replaced key, so a replay cannot bring it back', async () => {
    await storage.append('sessions/u/s1/messages.jsonl', line({ secret: 'gone after the delete' }));
    await storage.append('kept.jsonl', line({ kept: true }));
    await storage.append('replaced.jsonl', line({ old: 'line' }));
    await storage.delete('sessions/u/s1/messages.jsonl');
    await storage.write('replaced.jsonl', line({ new: 'file' }));
    for (const name of await journals()) {
      const bytes = await readFile(join(root, name), 'utf8');
      expect(bytes).not.toContain('gone after the delete');
      expect(bytes).not.toContain('"old"');
    }
    // The journal went with the checkpoint the delete took: nothing of it is left to replay.
    expect(storage.stats().journalCheckpoints).toBeGreaterThanOrEqual(1);
    expect(await readJsonLines(storage, 'replaced.jsonl')).toEqual([{ new: 'file' }]);
    expect(await readJsonLines(storage, 'kept.jsonl')).toEqual([{ kept: true }]);
  });

  it('checkpoints once the journal holds the configured bytes, and loses none of the appends meanwhile', async () => {
    const small = createFlatfileStorage({ root: join(root, 'small'), journalCheckpointBytes: 2048 });
    try {
      // 40 waves of 7 appends at once, to 7 logs: about 640 journal bytes a wave.
      for (let wave = 0; wave < 40; wave++) {
        await Promise.all(
          Array.from({ length: 7 }, (_, log) =>
            small.append(`logs/${log}.jsonl`, line({ wave, padding: 'x'.repeat(40) })),
          ),
        );
      }
      expect(small.stats().journalCheckpoints).toBeGreaterThanOrEqual(5);
      for (let log = 0; log < 7; log++)
        expect(await readJsonLines(small, `logs/${log}.jsonl`)).toHaveLength(40);
    } finally {
      await small.close();
    }
  });

  it('leaves no journal behind once closed', async () => {
    await storage.append('a.jsonl', line({ n: 1 }));
    expect(await journals()).toHaveLength(1);
    await storage.close();
    expect(await journals()).toEqual([]);
    storage = createFlatfileStorage({ root });
  });

  it('makes each append durable by its own file with the journal off', async () => {
    const direct = createFlatfileStorage({ root: join(root, 'direct'), journal: false });
    try {
      await Promise.all(
        Array.from({ length: 10 }, (_, index) => direct.append(`l${index}.jsonl`, line({ index }))),
      );
      expect(direct.stats().journalFlushes).toBe(0);
      expect(direct.stats().fileSyncs).toBe(10);
      expect(await readdir(join(root, 'direct'))).not.toContainEqual(expect.stringContaining('journal'));
    } finally {
      await direct.close();
    }
  });

  it('keeps the journal when a checkpoint cannot sync its files, and removes it once one can', async () => {
    const folder = join(root, 'failing');
    await mkdir(folder);
    let failSyncs = true;
    const journal = openAppendJournal({
      root: folder,
      syncFile: async () => {
        if (failSyncs) throw new Error('EIO: the disk failed');
      },
    });
    await journal.record('a.jsonl', 0, line({ n: 1 }));
    // A delete of the key needs a checkpoint first: refused while the files cannot be synced.
    await expect(journal.forget('a.jsonl')).rejects.toThrow('EIO');
    expect((await readdir(folder)).filter((name) => name.includes('journal'))).toHaveLength(1);
    failSyncs = false;
    await journal.forget('a.jsonl');
    expect(await readdir(folder)).toEqual([]);
    await journal.close();
  });
});
