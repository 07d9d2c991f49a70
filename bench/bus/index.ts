/**
 * The message bus against the emitters a user would otherwise pick, in one run:
 *
 * 1. emit → async handler throughput: parley's `await bus.emit()` (a fresh envelope with a UUIDv7 id and
 *    timestamp per event; the in-process transport resolves after the handler finished) for a module's
 *    work subscription (deduplicated by id), a local listener, and a work subscription with metrics hooks
 *    on; emittery's `await emitter.emit()` (also waits for the handlers); eventemitter3's `emit()` (calls
 *    the handler but does not wait for its promise — the floor of any async bus).
 * 2. request → reply latency: `await bus.request()` to an async handler, beside a direct `await` of the
 *    same handler function.
 *
 * Rounds of the subjects are interleaved (and the order rotated) so that drift of a busy machine spreads
 * over all of them; the tables give medians over rounds. Run alone: `npx node bench/bus/index.ts`.
 */
import { pathToFileURL } from 'node:url';
import Emittery from 'emittery';
import { EventEmitter } from 'eventemitter3';
import { createLocalTransport } from '../../src/bus/local.ts';
import { createBus } from '../../src/core/bus.ts';
import type { Bus } from '../../src/core/bus-types.ts';
import type { EventEnvelope } from '../../src/core/events.ts';
import { formatTable, quantile } from '../report.ts';

/** Sizes of one run; the defaults keep the whole benchmark near 15 s on a small machine. */
export interface BusBenchOptions {
  /** Operations per round. */
  batch?: number;
  /** Measured rounds per subject (after the warm-up rounds). */
  rounds?: number;
  warmupRounds?: number;
}

/** One subject's figures. */
export interface SubjectResult {
  name: string;
  /** Operations per second, median over rounds, and the quartiles. */
  perSecond: { p25: number; p50: number; p75: number };
  /** Microseconds per operation, over every measured operation (request table only). */
  latencyMicros?: { p50: number; p99: number };
}

/** What `run()` measured, and the printed tables. */
export interface BusBenchResult {
  emit: SubjectResult[];
  request: SubjectResult[];
  /** parley work-subscription emit throughput ÷ emittery awaited emit throughput (goal ≥ 1). */
  emitRatio: number;
  /** parley request median latency ÷ direct await median latency. */
  requestRatio: number;
  table: string;
}

interface Subject {
  name: string;
  /** Runs `count` operations one after another; pushes per-operation latencies when given an array. */
  batch(count: number, latencies?: number[]): Promise<void>;
  /** Handler invocations so far, to check that every operation reached its handler. */
  handled(): number;
  close?(): Promise<void>;
}

const PAYLOAD = { sessionId: 's1', content: 'hello, parley', role: 'user' };

function busSubject(name: string, bus: Bus, mode: 'work' | 'local'): Subject {
  let handled = 0;
  bus.on(
    'bench.message',
    async (_event: EventEnvelope) => {
      handled++;
    },
    { mode, group: 'bench' },
  );
  return {
    name,
    async batch(count) {
      for (let index = 0; index < count; index++) await bus.emit('bench.message', PAYLOAD);
    },
    handled: () => handled,
    close: () => bus.close(),
  };
}

function emitSubjects(): Subject[] {
  const work = createBus({ transport: createLocalTransport() });
  const local = createBus({ transport: createLocalTransport() });
  let timedSeconds = 0;
  // Metrics hooks on: the handler is timed (two clock reads) and every call reports to the sink.
  const metered = createBus({
    transport: createLocalTransport(),
    metrics: {
      eventEmitted() {},
      handlerCompleted(_type, _group, seconds) {
        timedSeconds += seconds;
      },
      handlerError() {},
    },
  });

  const emittery = new Emittery();
  let emitteryHandled = 0;
  emittery.on('bench.message', async () => {
    emitteryHandled++;
  });

  const emitter = new EventEmitter();
  let emitterHandled = 0;
  emitter.on('bench.message', async () => {
    emitterHandled++;
  });

  return [
    busSubject('parley await emit (work subscription)', work, 'work'),
    busSubject('parley await emit (local listener)', local, 'local'),
    {
      ...busSubject('parley await emit (work, metrics on)', metered, 'work'),
      close: async () => {
        if (!(timedSeconds > 0)) throw new Error('the metrics hook never timed a handler');
        await metered.close();
      },
    },
    {
      name: 'emittery await emit',
      async batch(count) {
        for (let index = 0; index < count; index++) await emittery.emit('bench.message', PAYLOAD);
      },
      handled: () => emitteryHandled,
    },
    {
      name: 'eventemitter3 emit (handler not awaited)',
      async batch(count) {
        for (let index = 0; index < count; index++) emitter.emit('bench.message', PAYLOAD);
      },
      handled: () => emitterHandled,
    },
  ];
}

/** The same handler for both request subjects (what a module's request handler looks like), counted. */
function echoHandler() {
  let handled = 0;
  const handler = async (event: EventEnvelope) => {
    handled++;
    return { echoed: (event.data as typeof PAYLOAD).content };
  };
  return { handler, handled: () => handled };
}

function requestSubjects(): Subject[] {
  const viaBus = echoHandler();
  const direct = echoHandler();
  const bus = createBus({ transport: createLocalTransport(), requestTimeoutMs: 5000 });
  bus.on('bench.echo', viaBus.handler, { mode: 'work', group: 'bench' });
  // The direct call gets a ready-made envelope: it measures the handler and the await, nothing else.
  const envelope: EventEnvelope = {
    id: '0',
    type: 'bench.echo',
    source: 'bench',
    time: new Date().toISOString(),
    data: PAYLOAD,
  };
  const timedLoop = async (count: number, latencies: number[] | undefined, call: () => Promise<unknown>) => {
    if (latencies === undefined) {
      for (let index = 0; index < count; index++) await call();
      return;
    }
    for (let index = 0; index < count; index++) {
      const started = performance.now();
      await call();
      latencies.push(performance.now() - started);
    }
  };
  return [
    {
      name: 'parley await request → reply',
      batch: (count, latencies) => timedLoop(count, latencies, () => bus.request('bench.echo', PAYLOAD)),
      handled: viaBus.handled,
      close: () => bus.close(),
    },
    {
      name: 'direct await of the same handler',
      batch: (count, latencies) => timedLoop(count, latencies, () => direct.handler(envelope)),
      handled: direct.handled,
    },
  ];
}

/** Runs the rounds, interleaving subjects, and returns each subject's rates (and latencies if asked). */
async function measure(
  subjects: Subject[],
  options: Required<BusBenchOptions>,
  withLatencies: boolean,
): Promise<SubjectResult[]> {
  const rates = subjects.map(() => [] as number[]);
  const latencies = subjects.map(() => [] as number[]);
  const totalRounds = options.warmupRounds + options.rounds;
  for (let round = 0; round < totalRounds; round++) {
    for (let offset = 0; offset < subjects.length; offset++) {
      const index = (round + offset) % subjects.length;
      const subject = subjects[index]!;
      const measured = round >= options.warmupRounds;
      const started = performance.now();
      await subject.batch(options.batch, measured && withLatencies ? latencies[index] : undefined);
      const seconds = (performance.now() - started) / 1000;
      if (measured) rates[index]!.push(options.batch / seconds);
    }
  }
  for (const subject of subjects) {
    // Every operation must have reached its handler, or the subject measured something else.
    const expected = totalRounds * options.batch;
    if (subject.handled() !== expected) {
      throw new Error(`${subject.name}: ${subject.handled()} handler calls, expected ${expected}`);
    }
    await subject.close?.();
  }
  return subjects.map((subject, index) => {
    const sortedRates = [...rates[index]!].sort((a, b) => a - b);
    const result: SubjectResult = {
      name: subject.name,
      perSecond: {
        p25: quantile(sortedRates, 0.25),
        p50: quantile(sortedRates, 0.5),
        p75: quantile(sortedRates, 0.75),
      },
    };
    if (withLatencies) {
      const sorted = latencies[index]!.sort((a, b) => a - b);
      result.latencyMicros = { p50: quantile(sorted, 0.5) * 1000, p99: quantile(sorted, 0.99) * 1000 };
    }
    return result;
  });
}

/** Measures emit throughput and request latency and formats the tables. */
export async function run(options: BusBenchOptions = {}): Promise<BusBenchResult> {
  const settings: Required<BusBenchOptions> = {
    batch: options.batch ?? 50_000,
    rounds: options.rounds ?? 15,
    warmupRounds: options.warmupRounds ?? 3,
  };
  const emit = await measure(emitSubjects(), settings, false);
  const request = await measure(requestSubjects(), settings, true);
  const parleyEmit = emit[0]!.perSecond.p50;
  const emitteryEmit = emit.find((subject) => subject.name.startsWith('emittery'))!.perSecond.p50;
  const emitRatio = parleyEmit / emitteryEmit;
  const requestRatio = request[0]!.latencyMicros!.p50 / request[1]!.latencyMicros!.p50;

  const rate = (value: number) => `${(value / 1e6).toFixed(2)} M/s`;
  const micros = (value: number) => `${value.toFixed(2)} µs`;
  const emitTable = formatTable(
    ['emit → async handler', 'events/s (median)', 'p25 – p75', 'vs emittery'],
    emit.map((subject) => [
      subject.name,
      rate(subject.perSecond.p50),
      `${rate(subject.perSecond.p25)} – ${rate(subject.perSecond.p75)}`,
      `× ${(subject.perSecond.p50 / emitteryEmit).toFixed(2)}`,
    ]),
  );
  const directMedian = request[1]!.latencyMicros!.p50;
  const requestTable = formatTable(
    ['request → reply', 'latency p50', 'latency p99', 'requests/s (median)', 'vs direct await'],
    request.map((subject) => [
      subject.name,
      micros(subject.latencyMicros!.p50),
      micros(subject.latencyMicros!.p99),
      rate(subject.perSecond.p50),
      `× ${(subject.latencyMicros!.p50 / directMedian).toFixed(2)}`,
    ]),
  );
  const table = [
    `${settings.rounds} rounds of ${settings.batch} sequential operations per subject ` +
      `(${settings.warmupRounds} warm-up rounds), Node ${process.version}`,
    '',
    emitTable,
    '',
    `goal: parley emit (work subscription, envelopes included) ≥ emittery awaited emit — ` +
      `${emitRatio >= 1 ? 'met' : 'NOT met'} (× ${emitRatio.toFixed(2)})`,
    '',
    requestTable,
    '',
    `request → reply costs × ${requestRatio.toFixed(2)} a direct await of the handler ` +
      `(latencies include ~${micros(timerOverheadMicros())} of timer overhead each)`,
  ].join('\n');
  return { emit, request, emitRatio, requestRatio, table };
}

function timerOverheadMicros(): number {
  const samples: number[] = [];
  for (let index = 0; index < 10_000; index++) {
    const started = performance.now();
    samples.push(performance.now() - started);
  }
  return (
    quantile(
      samples.sort((a, b) => a - b),
      0.5,
    ) * 1000
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const result = await run();
  console.log(result.table);
}
