/**
 * A full chat turn in parley beside the frameworks a user would otherwise pick, in-process, in one run:
 *
 * - parley: `createPlatform()` + `message.send` on the bus (history from fsynced flatfile JSONL),
 * - Mastra: `@mastra/core` Agent with `@mastra/memory` on `@mastra/libsql` (SQLite file, WAL),
 * - LangChain.js: `createAgent` with a LangGraph `MemorySaver` checkpointer (history in memory only),
 * - the raw AI SDK `generateText` with no history at all: the floor.
 *
 * Every subject answers with a zero-latency mock model, so what is measured is the framework: history
 * loaded and kept, the model call, the reply stored. Each subject runs in a process of its own (its peak RSS
 * is its own), sequentially (one turn at a time) and with 50 turns at once; conversations are
 * `turnsPerSession` turns long (then a new session), so history grows as in a real chat. Rounds alternate
 * the subjects (a busy machine's drift spreads over all of them); the table gives each subject's median
 * round by turns/s, and its largest peak RSS. Goals: parley ≥ 10× Mastra-with-memory's turns/s in both
 * modes, and parley's peak RSS ≤ 1.5× the raw AI SDK's.
 *
 * The frameworks live in bench/peers/package.json (exact pins), installed here on first use with
 * `npm ci --prefix bench/peers` — never by the root `npm install`. This folder is outside the root
 * tsconfig and biome: it runs as plain TypeScript under Node 24's type stripping.
 *
 * Run: `npm run bench -- peers`, or `node bench/peers/index.ts [--rounds N] [--turns N]
 * [--concurrent-turns N] [--seconds S] [--per-session N] [--only parley,mastra]`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { formatTable } from '../report.ts';

const directory = import.meta.dirname;
const SUBJECTS = ['parley', 'mastra', 'langchain', 'ai-sdk'] as const;
type SubjectName = (typeof SUBJECTS)[number];
const LABELS: Record<SubjectName, string> = {
  parley: 'parley (fsynced flatfile history)',
  mastra: 'Mastra Agent + Memory (LibSQL file)',
  langchain: 'LangChain createAgent + MemorySaver',
  'ai-sdk': 'raw AI SDK generateText (no history)',
};
const PEER_PACKAGES = ['@mastra/core', '@mastra/memory', '@mastra/libsql', 'langchain', '@langchain/core', '@langchain/langgraph', 'ai'];

interface Result {
  name: SubjectName;
  turns: number;
  seconds: number;
  turnsPerSecond: number;
  p50: number;
  p99: number;
  peakRssMb: number;
  storedPerSession: number;
}

function option(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const value = index === -1 ? undefined : Number(process.argv[index + 1]);
  return value === undefined || Number.isNaN(value) ? fallback : value;
}

/** Installs the peers' packages (once); returns why not when it cannot. */
function ensureInstalled(): string | undefined {
  const missing = PEER_PACKAGES.filter((name) => !existsSync(join(directory, 'node_modules', name, 'package.json')));
  if (missing.length === 0) return undefined;
  console.log(`installing the peers' packages into bench/peers/node_modules (once): ${missing.join(', ')}`);
  const lock = existsSync(join(directory, 'package-lock.json'));
  const installed = spawnSync(
    'npm',
    [lock ? 'ci' : 'install', '--prefix', directory, '--no-audit', '--no-fund', '--loglevel=error'],
    { stdio: ['ignore', 'inherit', 'pipe'], encoding: 'utf8' },
  );
  if (installed.error !== undefined) return `npm could not run: ${installed.error.message}`;
  if (installed.status !== 0) return `npm ${lock ? 'ci' : 'install'} failed: ${installed.stderr.trim().split('\n').slice(-3).join(' | ')}`;
  const still = PEER_PACKAGES.filter((name) => !existsSync(join(directory, 'node_modules', name, 'package.json')));
  return still.length === 0 ? undefined : `not installed: ${still.join(', ')}`;
}

function runSubject(name: SubjectName, turns: number, concurrency: number, perSession: number, seconds: number) {
  return new Promise<Result | { name: SubjectName; error: string }>((resolve) => {
    const child = spawn(
      process.execPath,
      [join(directory, 'subject.ts'), name, String(turns), String(concurrency), String(perSession), String(seconds)],
      { stdio: ['ignore', 'pipe', 'pipe'], cwd: join(directory, '..', '..') },
    );
    let output = '';
    let errors = '';
    child.stdout.on('data', (chunk: Buffer) => void (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => void (errors += chunk.toString()));
    child.on('exit', (code) => {
      const line = output.trim().split('\n').at(-1) ?? '';
      if (code === 0 && line.startsWith('{')) return resolve(JSON.parse(line) as Result);
      const reason = (errors.trim().split('\n').find((text) => /Error|error/.test(text)) ?? errors.trim()).slice(0, 200);
      resolve({ name, error: `exit ${code}: ${reason || 'no output'}` });
    });
  });
}

const rounds = option('rounds', 3);
const sequentialTurns = option('turns', 600);
const concurrentTurns = option('concurrent-turns', 3000);
const seconds = option('seconds', 15);
const perSession = option('per-session', 10);
const onlyIndex = process.argv.indexOf('--only');
const chosen = onlyIndex === -1 ? [...SUBJECTS] : SUBJECTS.filter((name) => process.argv[onlyIndex + 1]?.split(',').includes(name));

const installProblem = ensureInstalled();
if (installProblem !== undefined) console.log(`peers not installed (${installProblem}); measuring what can run`);

const modes = [
  { mode: 'sequential', concurrency: 1, turns: sequentialTurns },
  { mode: '50 concurrent', concurrency: 50, turns: concurrentTurns },
];
const header = ['subject', 'mode', 'turns/s', 'p50 ms', 'p99 ms', 'peak RSS', '× Mastra', 'RSS × AI SDK', 'stored/session'];
const rows: string[][] = [];
const failures: string[] = [];
const goals: string[] = [];
for (const { mode, concurrency, turns } of modes) {
  const runs = new Map<SubjectName, Result[]>();
  for (let round = 0; round < rounds; round++) {
    // Rotate the order each round, so no subject always runs first or last.
    const order = chosen.map((_, index) => chosen[(index + round) % chosen.length]!);
    for (const name of order) {
      if (failures.some((line) => line.startsWith(`${LABELS[name]} (${mode})`))) continue;
      const result = await runSubject(name, turns, concurrency, perSession, seconds);
      if ('error' in result) failures.push(`${LABELS[name]} (${mode}): not measured — ${result.error}`);
      else runs.set(name, [...(runs.get(name) ?? []), result]);
    }
  }
  const results = new Map<SubjectName, Result>();
  for (const [name, list] of runs) {
    const sorted = [...list].sort((a, b) => a.turnsPerSecond - b.turnsPerSecond);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    results.set(name, { ...median, peakRssMb: Math.max(...list.map((run) => run.peakRssMb)) });
  }
  const mastra = results.get('mastra');
  const floor = results.get('ai-sdk');
  for (const name of chosen) {
    const result = results.get(name);
    if (result === undefined) continue;
    rows.push([
      LABELS[name],
      mode,
      result.turnsPerSecond.toFixed(0),
      result.p50.toFixed(2),
      result.p99.toFixed(2),
      `${result.peakRssMb.toFixed(0)} MB`,
      mastra === undefined ? '–' : `${(result.turnsPerSecond / mastra.turnsPerSecond).toFixed(1)}×`,
      floor === undefined ? '–' : `${(result.peakRssMb / floor.peakRssMb).toFixed(2)}×`,
      result.storedPerSession < 0 ? '–' : String(result.storedPerSession),
    ]);
  }
  const parley = results.get('parley');
  if (parley !== undefined && mastra !== undefined) {
    const ratio = parley.turnsPerSecond / mastra.turnsPerSecond;
    goals.push(`${mode}: parley ${ratio.toFixed(1)}× Mastra-with-memory's turns/s (goal ≥ 10×)`);
  }
  if (parley !== undefined && floor !== undefined) {
    const ratio = parley.peakRssMb / floor.peakRssMb;
    goals.push(`${mode}: parley peak RSS ${ratio.toFixed(2)}× the raw AI SDK's (goal ≤ 1.5×)`);
  }
}

console.log(
  `a full chat turn in-process, zero-latency mock model, conversations of ${perSession} turns; sequential: ${sequentialTurns} turns, concurrent: ${concurrentTurns} turns by 50 workers (each run capped at ${seconds} s); one process per run, ${rounds} rounds (median by turns/s, largest peak RSS)`,
);
console.log(formatTable(header, rows));
for (const line of goals) console.log(line);
for (const line of failures) console.log(line);
console.log(
  'stored/session = messages the framework holds for a finished conversation (2 per turn: history is kept). Durability: parley fsyncs each message before it is acknowledged; Mastra/LibSQL commits in WAL with synchronous=NORMAL (not fsynced per turn); LangChain MemorySaver keeps history in memory only; the raw AI SDK keeps none.',
);
