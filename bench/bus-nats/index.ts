/**
 * The NATS JetStream transport beside the in-process transport, in one run:
 *
 * 1. emit → work handler: events per second from the first emit until the handler has run for every
 *    one of them. In-process, `await bus.emit()` already waits for the handler; over NATS it waits for
 *    JetStream to store the event (file storage, the default), and the handler runs on a consumer's pull.
 *    Over NATS: one emit at a time (each waits for its store ack), 64 emits in flight, and the handler on
 *    a second node (its own connection, as another process would have).
 * 2. request → reply latency: in-process, over NATS with the handler on the same node, and on another node.
 *
 * Two floors show what the NATS client alone costs on the same server: a JetStream publish awaited
 * one at a time, and a core request to a bare responder.
 *
 * Rounds are interleaved so drift of a busy machine spreads over every subject; tables give medians.
 * Needs NATS with JetStream at NATS_URL (default nats://127.0.0.1:4222); it uses a stream of its own
 * (`PARLEY_BENCH<random>_EVENTS`) and deletes it at the end. Run alone: `npx node bench/bus-nats/index.ts`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createLocalNetwork } from '../../src/bus/local.ts';
import { createNatsTransport } from '../../src/bus/nats.ts';
import { createBus } from '../../src/core/bus.ts';
import type { Bus } from '../../src/core/bus-types.ts';
import type { NatsBusConfig } from '../../src/core/config-types.ts';
import { formatTable, quantile } from '../report.ts';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const PAYLOAD = { sessionId: 's1', content: 'hello, parley', role: 'user' };

/** Sizes of one run; the defaults keep the whole benchmark near 30 s on a small machine. */
export interface NatsBenchOptions {
  /** Measured rounds per subject (after one warm-up round). */
  rounds?: number;
  /** Operations per round over NATS; in-process rounds do 20 times as many (they are that much faster). */
  batch?: number;
}

interface Subject {
  name: string;
  /** Operations per round. */
  batch: number;
  /** Runs one round; pushes per-operation latencies (ms) when given an array. */
  run(count: number, latencies?: number[]): Promise<void>;
}

interface Figures {
  name: string;
  perSecond: number;
  p50Micros: number;
  p99Micros: number;
}

/** A work handler that counts, and a way to wait until it has run `target` times in all. */
function countingHandler() {
  let handled = 0;
  let waiter: { target: number; resolve: () => void } | undefined;
  return {
    handler: async () => {
      handled++;
      if (waiter !== undefined && handled >= waiter.target) {
        waiter.resolve();
        waiter = undefined;
      }
    },
    handled: () => handled,
    until(target: number): Promise<void> {
      if (handled >= target) return Promise.resolve();
      return new Promise((resolve) => {
        waiter = { target, resolve };
      });
    },
  };
}

function emitSubject(name: string, batch: number, emitter: Bus, worker: Bus, inFlight: number): Subject {
  const counter = countingHandler();
  const type = `bench.${name.replace(/[^a-z0-9]+/gi, '_').toLowerCase()}`;
  worker.on(type, counter.handler, { mode: 'work', group: 'bench' });
  return {
    name,
    batch,
    async run(count) {
      const target = counter.handled() + count;
      if (inFlight <= 1) {
        for (let index = 0; index < count; index++) await emitter.emit(type, PAYLOAD);
      } else {
        let next = 0;
        const lane = async () => {
          while (next < count) {
            next++;
            await emitter.emit(type, PAYLOAD);
          }
        };
        await Promise.all(Array.from({ length: inFlight }, lane));
      }
      await counter.until(target);
    },
  };
}

function requestSubject(name: string, batch: number, requester: Bus, responder: Bus): Subject {
  const type = `bench.echo_${name.replace(/[^a-z0-9]+/gi, '_').toLowerCase()}`;
  responder.on(type, async (event) => ({ echoed: (event.data as typeof PAYLOAD).content }), {
    mode: 'work',
    group: 'bench',
  });
  return {
    name,
    batch,
    async run(count, latencies) {
      for (let index = 0; index < count; index++) {
        const started = performance.now();
        await requester.request(type, PAYLOAD);
        latencies?.push(performance.now() - started);
      }
    },
  };
}

async function measure(subjects: Subject[], rounds: number): Promise<Figures[]> {
  const rates = subjects.map(() => [] as number[]);
  const latencies = subjects.map(() => [] as number[]);
  for (let round = 0; round <= rounds; round++) {
    for (let offset = 0; offset < subjects.length; offset++) {
      const index = (round + offset) % subjects.length;
      const subject = subjects[index]!;
      const measured = round > 0; // round 0 warms up
      const started = performance.now();
      await subject.run(subject.batch, measured ? latencies[index] : undefined);
      if (measured) rates[index]!.push(subject.batch / ((performance.now() - started) / 1000));
    }
  }
  return subjects.map((subject, index) => {
    const sorted = latencies[index]!.sort((a, b) => a - b);
    return {
      name: subject.name,
      perSecond: quantile(
        rates[index]!.sort((a, b) => a - b),
        0.5,
      ),
      p50Micros: quantile(sorted, 0.5) * 1000,
      p99Micros: quantile(sorted, 0.99) * 1000,
    };
  });
}

/** The `bus.nats` defaults from config/default.json, on a stream of the benchmark's own. */
function benchConfig(prefix: string): NatsBusConfig {
  const path = join(import.meta.dirname, '..', '..', 'config', 'default.json');
  const defaults = (JSON.parse(readFileSync(path, 'utf8')) as { bus: { nats: NatsBusConfig } }).bus.nats;
  return { ...defaults, servers: NATS_URL, stream_prefix: prefix };
}

/** Measures both transports and formats the tables; undefined when NATS is not reachable. */
export async function run(options: NatsBenchOptions = {}): Promise<{ table: string } | undefined> {
  const rounds = options.rounds ?? 5;
  const batch = options.batch ?? 1000;
  const prefix = `PARLEY_BENCH${Math.random().toString(36).slice(2, 8).toUpperCase()}`;
  const config = benchConfig(prefix);
  let natsNodes: Bus[];
  try {
    natsNodes = [
      createBus({ transport: await createNatsTransport(config, { name: 'bench-1' }) }),
      createBus({ transport: await createNatsTransport(config, { name: 'bench-2' }) }),
    ];
  } catch (error) {
    console.log(`NATS is not reachable at ${NATS_URL} (${(error as Error).message}): bench skipped`);
    return undefined;
  }
  const [first, second] = natsNodes as [Bus, Bus];
  const raw: NatsConnection[] = [];
  const network = createLocalNetwork();
  const local = createBus({ transport: network.createTransport() });
  try {
    // Floors: the NATS client alone, without the bus (no envelope, no consumer, no dedup, no routing).
    const rawEmitter = await connect({ servers: NATS_URL });
    const rawResponder = await connect({ servers: NATS_URL });
    raw.push(rawEmitter, rawResponder);
    const rawJs = jetstream(rawEmitter);
    const rawPayload = JSON.stringify(PAYLOAD);
    rawResponder.subscribe(`${prefix}.raw.echo`, {
      callback: (_error, message) => {
        message.respond(message.data);
      },
    });
    await rawResponder.flush();
    let rawId = 0;
    const emits = [
      emitSubject('in-process, await emit', batch * 20, local, local, 1),
      emitSubject('NATS, one node, await emit', batch, first, first, 1),
      emitSubject('NATS, one node, 64 emits in flight', batch, first, first, 64),
      emitSubject('NATS, handler on another node, await emit', batch, first, second, 1),
      {
        name: 'floor: nats.js js.publish alone, await each (stored, no handler)',
        batch,
        async run(count: number) {
          for (let index = 0; index < count; index++) {
            await rawJs.publish(`${prefix}.events.bench.raw`, rawPayload, { msgID: `raw-${rawId++}` });
          }
        },
      },
    ];
    const requests = [
      requestSubject('in-process', batch * 20, local, local),
      requestSubject('NATS, handler on the same node', batch, first, first),
      requestSubject('NATS, handler on another node', batch, first, second),
      {
        name: 'floor: nats.js request → raw reply, another connection',
        batch,
        async run(count: number, latencies?: number[]) {
          for (let index = 0; index < count; index++) {
            const started = performance.now();
            await rawEmitter.request(`${prefix}.raw.echo`, rawPayload, { timeout: 5000 });
            latencies?.push(performance.now() - started);
          }
        },
      },
    ];
    // An emit waits for its node's work sets to exist; the second node's must exist before the first emits.
    await second.emit('bench.ready', {});
    const emitFigures = await measure(emits, rounds);
    const requestFigures = await measure(requests, rounds);

    const localEmit = emitFigures[0]!.perSecond;
    const localRequest = requestFigures[0]!.p50Micros;
    const rate = (value: number) =>
      value >= 1e5 ? `${(value / 1e6).toFixed(2)} M/s` : `${Math.round(value)} /s`;
    const emitTable = formatTable(
      ['emit → work handler ran', 'events/s (median)', 'vs in-process'],
      emitFigures.map((figures) => [
        figures.name,
        rate(figures.perSecond),
        `× ${(figures.perSecond / localEmit).toPrecision(2)}`,
      ]),
    );
    const requestTable = formatTable(
      ['request → reply', 'latency p50', 'latency p99', 'vs in-process p50'],
      requestFigures.map((figures) => [
        figures.name,
        `${figures.p50Micros.toFixed(1)} µs`,
        `${figures.p99Micros.toFixed(1)} µs`,
        `× ${(figures.p50Micros / localRequest).toFixed(0)}`,
      ]),
    );
    const table = [
      `${rounds} rounds per subject after a warm-up round; ${batch} operations per NATS round, ` +
        `${batch * 20} per in-process round; NATS at ${NATS_URL}, stream storage ${config.stream.storage}, ` +
        `retention ${config.stream.retention}; Node ${process.version}`,
      '',
      emitTable,
      '',
      requestTable,
    ].join('\n');
    return { table };
  } finally {
    await Promise.all([local, ...natsNodes].map((bus) => bus.close()));
    await Promise.all(raw.map((connection) => connection.close()));
    await deleteStream(`${prefix}_EVENTS`);
  }
}

async function deleteStream(name: string): Promise<void> {
  const connection = await connect({ servers: NATS_URL });
  try {
    await (await jetstreamManager(connection)).streams.delete(name);
  } catch {
    // already gone
  } finally {
    await connection.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const result = await run();
  if (result === undefined) process.exit(process.env.CI === 'true' ? 1 : 0);
  console.log(result.table);
}
