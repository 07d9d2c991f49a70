/**
 * Runs one subject of bench/peers in this process (the parent starts one process per subject and mode,
 * so each peak RSS is that subject's alone):
 *
 *   node bench/peers/subject.ts <parley|mastra|langchain|ai-sdk> <turns> <concurrency> <turnsPerSession> <seconds>
 *
 * `concurrency` workers each hold conversations of `turnsPerSession` turns (a new session after that) and
 * run turns one after another until `turns` turns are done or `seconds` have passed. A warm-up of the same
 * shape and size comes first (the measured run once over, unmeasured). Prints one JSON line: turns, seconds, latencies (ms), peak RSS (MB), stored messages.
 */
import { quantile } from '../report.ts';
import type { Subject } from './subjects/reply.ts';

const [name = '', turnsArg = '1000', concurrencyArg = '1', perSessionArg = '10', secondsArg = '20'] =
  process.argv.slice(2);
const subjects: Record<string, () => Promise<{ setup(): Promise<Subject> }>> = {
  parley: () => import('./subjects/parley.ts'),
  mastra: () => import('./subjects/mastra.ts'),
  langchain: () => import('./subjects/langchain.ts'),
  'ai-sdk': () => import('./subjects/ai-sdk.ts'),
};
const load = subjects[name];
if (load === undefined) throw new Error(`unknown subject "${name}"`);
const subject = await (await load()).setup();
const concurrency = Number(concurrencyArg);
const turnsPerSession = Number(perSessionArg);

let sessionCount = 0;
async function run(totalTurns: number, seconds: number) {
  const latencies: number[] = [];
  const deadline = performance.now() + seconds * 1000;
  let started = 0;
  let lastSession = '';
  const started_at = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      let session = '';
      let inSession = turnsPerSession;
      while (started < totalTurns && performance.now() < deadline) {
        started++;
        if (inSession === turnsPerSession) {
          session = await subject.newSession(sessionCount++);
          inSession = 0;
        }
        inSession++;
        const begin = performance.now();
        const reply = await subject.turn(session, `Question ${started}: how are you today?`);
        latencies.push(performance.now() - begin);
        if (reply === '') throw new Error(`${name}: empty reply`);
        if (inSession === turnsPerSession) lastSession = session;
      }
    }),
  );
  return { latencies, seconds: (performance.now() - started_at) / 1000, lastSession };
}

// Warm-up: the measured run once over, unmeasured (the same turns, the same time cap), for every subject
// alike. A server runs for hours; a warm-up of a few hundred turns ended before V8 had optimized a fast
// subject's hot code, and parley's 3,000 measured concurrent turns (about a second) were then partly cold.
await run(Math.max(Number(turnsArg), concurrency * turnsPerSession, 200), Number(secondsArg));
const measured = await run(Number(turnsArg), Number(secondsArg));
const sorted = [...measured.latencies].sort((a, b) => a - b);
const stored = measured.lastSession === '' ? -1 : await subject.storedMessages(measured.lastSession);
const result = {
  name,
  turns: sorted.length,
  seconds: measured.seconds,
  turnsPerSecond: sorted.length / measured.seconds,
  p50: quantile(sorted, 0.5),
  p99: quantile(sorted, 0.99),
  peakRssMb: process.resourceUsage().maxRSS / 1024,
  storedPerSession: stored,
};
await subject.close();
console.log(JSON.stringify(result));
process.exit(0);
