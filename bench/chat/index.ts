/**
 * Chat turns over HTTP, parley beside the floor, in one run (subjects in bench/chat/subjects.ts, each
 * server in a child process of its own):
 *
 * 1. Throughput and latency (autocannon, `connections` concurrent keep-alive clients): parley's
 *    `POST /v1/sessions/:id/messages` — bearer auth, schema validation, the bus, text_chat storing the
 *    user message and the reply in fsynced flatfile JSONL, a zero-latency AI SDK mock model — against a
 *    bare Fastify route that validates the same body and does one fsynced append. Turns spread over 100
 *    sessions. Rounds alternate between the subjects; the table gives medians over rounds.
 *    Goal: parley ≥ 0.5× the bare route's turns per second. A third, diagnostic row runs the same server
 *    with text_chat replaced by an instant stand-in, to tell the HTTP layer's cost from the rest. Each row
 *    also gives the server's CPU per turn (event loop thread and whole process), which moves less than
 *    turns/s when other work shares the machine. A fourth, also diagnostic, does a chat turn's work inline
 *    in one route without the platform (subjects.ts): what the turn itself costs here, before any platform.
 * 2. Time to first streamed byte: one client, one request at a time, `?stream=sse`; from writing the
 *    request to the first body byte, minus the time the model itself took to its first token (a mock
 *    that waits `modelDelayMs`). Goal: parley's overhead ≤ 2 ms at p50.
 *
 * Run alone: `npx node bench/chat/index.ts`; with the others: `npm run bench -- chat`.
 */

import { type ChildProcess, fork } from 'node:child_process';
import { Agent, request as httpRequest } from 'node:http';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { formatTable, quantile } from '../report.ts';
import type { SubjectReady } from './subjects.ts';

/** Sizes of one run; the defaults take about three and a half minutes on a small machine. */
export interface ChatBenchOptions {
  /** Concurrent connections of the load generator. */
  connections?: number;
  /** Seconds per measured round. */
  roundSeconds?: number;
  /** Measured rounds per subject (after one warm-up round each). */
  rounds?: number;
  /**
   * Seconds of the warm-up round. Long enough for the JIT to settle: a server runs warm, and parley's
   * code is far larger than the bare route's — over its first ten seconds of load V8 is still compiling
   * (hundreds of optimized functions, several milliseconds of a helper thread each, on a two-core
   * machine shared with the load generator), which a short warm-up charges to the first measured round.
   */
  warmUpSeconds?: number;
  /** Streamed requests per subject for the first-byte measure (after a warm-up). */
  firstByteSamples?: number;
  /** How long the mock model waits before its first token in the first-byte measure. */
  modelDelayMs?: number;
}

/** One subject's throughput figures. */
export interface ThroughputResult {
  name: string;
  turnsPerSecond: number;
  latencyMs: { p50: number; p99: number };
  /**
   * Server CPU per turn, in ms: the event loop's thread (what caps a Node server's turns per second) and
   * the whole process (with the thread pool's writes). Steadier than turns/s on a shared machine.
   */
  cpuMsPerTurn: { thread: number; process: number };
  /** Of the event loop's CPU a turn, the ms it stood still for the garbage collector. */
  gcPauseMsPerTurn: number;
}

/** What one load round measured. */
interface RoundResult {
  /** Turns answered in the round. */
  turns: number;
  perSecond: number;
  p50: number;
  p99: number;
  threadMsPerTurn: number;
  processMsPerTurn: number;
  gcPauseMsPerTurn: number;
}

/** One subject's first-byte figures, in milliseconds. */
export interface FirstByteResult {
  name: string;
  firstByte: { p50: number; p99: number };
  modelWait: { p50: number };
  overhead: { p50: number; p99: number };
}

/** What `run()` measured, and the printed tables. */
export interface ChatBenchResult {
  throughput: ThroughputResult[];
  /** parley turns/s ÷ bare route turns/s (goal ≥ 0.5). */
  throughputRatio: number;
  firstByte: FirstByteResult[];
  table: string;
}

interface Subject {
  name: string;
  child: ChildProcess;
  ready: SubjectReady;
  /** Path of the JSON turn, and of the streamed one, for a session id. */
  turnPath(sessionId: string): string;
  streamPath(sessionId: string): string;
  headers: Record<string, string>;
}

const BODY = JSON.stringify({ content: 'Hello, parley! How are you today?' });

function median(values: number[]): number {
  return quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  );
}

async function startSubject(kind: 'parley' | 'parley-http' | 'bare' | 'one-handler'): Promise<Subject> {
  const child = fork(fileURLToPath(new URL('./subjects.ts', import.meta.url)), [kind], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ready = await new Promise<SubjectReady>((resolve, reject) => {
    child.once('message', (message) => resolve(message as SubjectReady));
    child.once('exit', (code) =>
      reject(new Error(`the ${kind} subject exited with ${code} before it was ready`)),
    );
  });
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (ready.key !== undefined) headers.authorization = `Bearer ${ready.key}`;
  if (kind === 'one-handler') {
    const turnPath = (id: string) => `/one/sessions/${id}/messages`;
    // Throughput only: it has no streamed variant (`streamPath` is never asked of it).
    return {
      name: 'one-handler turn (same work, no platform)',
      child,
      ready,
      headers,
      turnPath,
      streamPath: turnPath,
    };
  }
  return kind !== 'bare'
    ? {
        name:
          kind === 'parley'
            ? 'parley POST /v1/sessions/:id/messages'
            : 'parley HTTP layer only (instant text_chat)',
        child,
        ready,
        headers,
        turnPath: (id) => `/v1/sessions/${id}/messages`,
        streamPath: (id) => `/v1/sessions/${id}/messages?stream=sse`,
      }
    : {
        name: 'bare Fastify route + 1 fsynced append',
        child,
        ready,
        headers,
        turnPath: (id) => `/bare/sessions/${id}/messages`,
        streamPath: (id) => `/bare/sessions/${id}/stream`,
      };
}

function ask<T>(subject: Subject, message: Record<string, unknown>, reply: string): Promise<T> {
  return new Promise((resolve) => {
    const onMessage = (answer: { type: string }) => {
      if (answer.type !== reply) return;
      subject.child.off('message', onMessage);
      resolve(answer as T);
    };
    subject.child.on('message', onMessage);
    subject.child.send(message);
  });
}

async function stopSubject(subject: Subject): Promise<void> {
  await new Promise<void>((resolve) => {
    subject.child.once('exit', () => resolve());
    subject.child.send({ type: 'stop' });
  });
}

interface CpuUsed {
  process: NodeJS.CpuUsage;
  thread: NodeJS.CpuUsage;
  gcPauseMs: number;
}

/** Microseconds of CPU (user + system) between two readings. */
function cpuMicros(before: NodeJS.CpuUsage, after: NodeJS.CpuUsage): number {
  return after.user + after.system - before.user - before.system;
}

/** One autocannon round against `subject`; throws when any request failed. */
async function loadRound(subject: Subject, connections: number, seconds: number): Promise<RoundResult> {
  let next = 0;
  const before = await ask<CpuUsed>(subject, { type: 'cpu' }, 'cpu');
  const sessions = subject.ready.sessions;
  const result = await autocannon({
    url: `http://127.0.0.1:${subject.ready.port}`,
    connections,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        headers: subject.headers,
        body: BODY,
        setupRequest: (request) => {
          request.path = subject.turnPath(sessions[next++ % sessions.length] as string);
          return request;
        },
      },
    ],
  });
  if (result.non2xx > 0 || result.errors > 0 || result.timeouts > 0) {
    throw new Error(
      `${subject.name}: ${result.non2xx} non-2xx answers, ${result.errors} errors, ${result.timeouts} timeouts`,
    );
  }
  const after = await ask<CpuUsed>(subject, { type: 'cpu' }, 'cpu');
  const turns = result.requests.total;
  return {
    turns,
    perSecond: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    threadMsPerTurn: cpuMicros(before.thread, after.thread) / 1000 / turns,
    processMsPerTurn: cpuMicros(before.process, after.process) / 1000 / turns,
    gcPauseMsPerTurn: (after.gcPauseMs - before.gcPauseMs) / turns,
  };
}

/** Milliseconds from writing one streamed request to the first byte of its body. */
function firstByte(subject: Subject, agent: Agent, sessionId: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = httpRequest({
      host: '127.0.0.1',
      port: subject.ready.port,
      method: 'POST',
      path: subject.streamPath(sessionId),
      headers: { ...subject.headers, 'content-length': Buffer.byteLength(BODY) },
      agent,
    });
    let started = 0;
    request.on('response', (response) => {
      if (response.statusCode !== 200) reject(new Error(`${subject.name}: status ${response.statusCode}`));
      let first = Number.NaN;
      response.on('data', () => {
        if (Number.isNaN(first)) first = performance.now() - started;
      });
      response.on('end', () => resolve(first));
    });
    request.on('error', reject);
    started = performance.now();
    request.end(BODY);
  });
}

async function measureFirstByte(subjects: Subject[], samples: number, modelDelayMs: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const times = new Map<Subject, number[]>(subjects.map((subject) => [subject, []]));
  for (const subject of subjects) subject.child.send({ type: 'model-delay', ms: modelDelayMs });
  const warmup = 30;
  for (let index = 0; index < warmup + samples; index++) {
    for (const subject of subjects) {
      const time = await firstByte(subject, agent, subject.ready.sessions[index % 10] as string);
      if (index >= warmup) times.get(subject)?.push(time);
    }
    if (index === warmup - 1) {
      for (const subject of subjects) await ask(subject, { type: 'model-waits' }, 'model-waits');
    }
  }
  agent.destroy();
  const results: FirstByteResult[] = [];
  for (const subject of subjects) {
    const { waits } = await ask<{ waits: number[] }>(subject, { type: 'model-waits' }, 'model-waits');
    const measured = times.get(subject) ?? [];
    const overheads = measured.map((time, index) => time - (waits[index] ?? 0)).sort((a, b) => a - b);
    const sorted = [...measured].sort((a, b) => a - b);
    results.push({
      name: subject.name,
      firstByte: { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99) },
      modelWait: { p50: median(waits) },
      overhead: { p50: quantile(overheads, 0.5), p99: quantile(overheads, 0.99) },
    });
  }
  return results;
}

/** Runs both measures and returns the figures and the printed tables. */
export async function run(options: ChatBenchOptions = {}): Promise<ChatBenchResult> {
  const connections = options.connections ?? 16;
  const roundSeconds = options.roundSeconds ?? 5;
  const rounds = options.rounds ?? 5;
  const warmUpSeconds = options.warmUpSeconds ?? 10;
  const samples = options.firstByteSamples ?? 300;
  const modelDelayMs = options.modelDelayMs ?? 20;

  const bare = await startSubject('bare');
  const parley = await startSubject('parley');
  const httpOnly = await startSubject('parley-http');
  const oneHandler = await startSubject('one-handler');
  const subjects = [parley, bare, httpOnly, oneHandler];
  try {
    const rates = new Map<Subject, RoundResult[]>(subjects.map((subject) => [subject, []]));
    let parleyTurns = 0;
    for (const subject of subjects) {
      const warmUp = await loadRound(subject, connections, warmUpSeconds);
      if (subject === parley) parleyTurns += warmUp.turns;
    }
    for (let round = 0; round < rounds; round++) {
      // Rotate the order, so a drift of the machine's speed spreads over both subjects.
      const order = subjects.map((_, index) => subjects[(index + round) % subjects.length] as Subject);
      for (const subject of order) {
        const measured = await loadRound(subject, connections, roundSeconds);
        rates.get(subject)?.push(measured);
        if (subject === parley) parleyTurns += measured.turns;
      }
    }
    const throughput = subjects.map((subject) => {
      const measured = rates.get(subject) ?? [];
      return {
        name: subject.name,
        turnsPerSecond: median(measured.map((entry) => entry.perSecond)),
        latencyMs: {
          p50: median(measured.map((entry) => entry.p50)),
          p99: median(measured.map((entry) => entry.p99)),
        },
        cpuMsPerTurn: {
          thread: median(measured.map((entry) => entry.threadMsPerTurn)),
          process: median(measured.map((entry) => entry.processMsPerTurn)),
        },
        gcPauseMsPerTurn: median(measured.map((entry) => entry.gcPauseMsPerTurn)),
      };
    });
    const ratio = (throughput[0]?.turnsPerSecond ?? 0) / (throughput[1]?.turnsPerSecond ?? 1);
    const firstByteResults = await measureFirstByte([parley, bare, httpOnly], samples, modelDelayMs);

    const table = [
      `chat turns over HTTP: ${connections} connections, ${warmUpSeconds} s warm-up then ${rounds} × ${roundSeconds} s rounds per subject (medians), fsynced flatfile storage, zero-latency mock model`,
      formatTable(
        [
          'subject',
          'turns/s',
          '× bare',
          'p50 ms',
          'p99 ms',
          'CPU ms/turn: event loop',
          'of it GC',
          'process',
        ],
        throughput.map((row) => [
          row.name,
          row.turnsPerSecond.toFixed(0),
          `${(row.turnsPerSecond / (throughput[1]?.turnsPerSecond ?? 1)).toFixed(2)}×`,
          row.latencyMs.p50.toFixed(1),
          row.latencyMs.p99.toFixed(1),
          row.cpuMsPerTurn.thread.toFixed(3),
          row.gcPauseMsPerTurn.toFixed(3),
          row.cpuMsPerTurn.process.toFixed(3),
        ]),
      ),
      `parley / bare route throughput: ${ratio.toFixed(2)}× (goal ≥ 0.5×)`,
      // The regime the figures come from: by the end, long chats whose history windows run full.
      `parley's ${parley.ready.sessions.length} sessions ended with ~${Math.round((2 * parleyTurns) / parley.ready.sessions.length)} messages each (the history sent each turn is what fits text_chat.history_token_budget)`,
      'CPU ms/turn = server CPU over a round ÷ its turns: the event loop thread caps what one Node process serves; "of it GC": its pauses for the garbage collector (the collector\'s helper threads count in "process")',
      '',
      `time to first streamed byte: ${samples} sequential SSE requests per subject, model first token after ~${modelDelayMs} ms`,
      formatTable(
        ['subject', 'first byte p50', 'p99', 'model wait p50', 'overhead p50', 'overhead p99'],
        firstByteResults.map((row) => [
          row.name,
          `${row.firstByte.p50.toFixed(2)} ms`,
          `${row.firstByte.p99.toFixed(2)} ms`,
          `${row.modelWait.p50.toFixed(2)} ms`,
          `${row.overhead.p50.toFixed(2)} ms`,
          `${row.overhead.p99.toFixed(2)} ms`,
        ]),
      ),
      'overhead = first byte − the model’s own wait before its first token (goal for parley: ≤ 2 ms at p50)',
    ].join('\n');
    return { throughput, throughputRatio: ratio, firstByte: firstByteResults, table };
  } finally {
    await Promise.all(subjects.map(stopSubject));
  }
}

if (import.meta.main) {
  const result = await run();
  console.log(result.table);
}
