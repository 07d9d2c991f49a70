/**
 * Crash test of the flatfile driver (DESIGN.md §1.7: nothing acknowledged is lost). A child process
 * appends JSON lines and acknowledges each one on stdout after its append resolved; the test SIGKILLs it at
 * a random moment, 20 times, each restart continuing in the same directory. After every kill: every
 * acknowledged line is present exactly once, every .jsonl file parses (only a torn last line may be
 * dropped), and state.json, replaced atomically, is always whole JSON.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFlatfileStorage } from '../../src/storage/drivers/flatfile.ts';
import { readJsonLines } from '../../src/storage/json-lines.ts';

const CYCLES = 20;
const WRITER = join(import.meta.dirname, 'fixtures', 'append-writer.ts');

interface CycleResult {
  acknowledged: number[];
}

/** Runs the writer until it has acknowledged something, lets it run 20–200 ms more, then SIGKILLs it. */
function runAndKill(root: string, first: number): Promise<CycleResult> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, [WRITER, root, String(first), '8'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let killTimer: NodeJS.Timeout | undefined;
    const giveUp = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      stdout += chunk;
      if (killTimer === undefined) {
        killTimer = setTimeout(() => child.kill('SIGKILL'), 20 + Math.floor(Math.random() * 180));
      }
    });
    child.stderr?.on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(giveUp);
      clearTimeout(killTimer);
      if (signal !== 'SIGKILL' || killTimer === undefined) {
        reject(
          new Error(`writer ended with code ${code}, signal ${signal}, before it was killed: ${stderr}`),
        );
        return;
      }
      // Only whole lines count: a number cut off by the kill was never fully acknowledged.
      const lines = stdout.split('\n');
      lines.pop();
      resolve({ acknowledged: lines.map(Number) });
    });
  });
}

describe('flatfile storage under SIGKILL', () => {
  let root: string;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'parley-crash-'));
  });

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it(`keeps every acknowledged append through ${CYCLES} kills`, async () => {
    const acknowledged = new Set<number>();
    let tornFilesSeen = 0;
    let linesOnDisk = 0;
    let tornLinesInjected = 0;

    for (let cycle = 0; cycle < CYCLES; cycle += 1) {
      const result = await runAndKill(root, cycle * 1_000_000);
      expect(result.acknowledged.length).toBeGreaterThan(0);
      for (const n of result.acknowledged) acknowledged.add(n);

      const storage = createFlatfileStorage({ root });
      const present = new Map<number, number>();
      const keys = await storage.list('');
      for (const key of keys) {
        if (!key.endsWith('.jsonl')) continue;
        const raw = await readFile(join(root, key));
        if (raw.length > 0 && raw[raw.length - 1] !== 0x0a) tornFilesSeen += 1;
        // Throws if any line but a torn last one is not JSON.
        for (const { n } of await readJsonLines<{ n: number }>(storage, key)) {
          present.set(n, (present.get(n) ?? 0) + 1);
        }
      }
      expect(
        [...present.keys()].filter((n) => n < 0),
        `cycle ${cycle}: a torn fragment became a line`,
      ).toEqual([]);
      const duplicated = [...present].filter(([, count]) => count > 1).map(([n]) => n);
      expect(duplicated, `cycle ${cycle}: lines present twice`).toEqual([]);
      const missing = [...acknowledged].filter((n) => !present.has(n));
      expect(missing, `cycle ${cycle}: acknowledged lines missing`).toEqual([]);
      if (keys.includes('state.json')) {
        const state = JSON.parse(new TextDecoder().decode(await storage.read('state.json'))) as {
          last: number;
        };
        expect(typeof state.last).toBe('number');
      }
      expect(keys.every((key) => !key.includes('.parley-tmp-'))).toBe(true);
      linesOnDisk = present.size;
      await storage.close();

      // A kill rarely lands inside the write() itself, so also leave a torn line the way one would (or a
      // power cut) for the next writer to cope with: it must cut it off, never glue a line onto it.
      if (cycle % 4 === 1) {
        await appendFile(join(root, 'logs/a.jsonl'), `{"n":-${cycle},"pad":"torn by the te`);
        tornLinesInjected += 1;
      }
    }

    console.info(
      `flatfile crash test: ${CYCLES} kills, ${acknowledged.size} acknowledged appends, ` +
        `${linesOnDisk} lines on disk, ${tornFilesSeen} torn tails left by a kill, ${tornLinesInjected} injected`,
    );
  }, 60_000);
});
