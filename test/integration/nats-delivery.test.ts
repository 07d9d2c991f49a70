import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, nanos } from '@nats-io/transport-node';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createTransport } from '../../src/bus/index.ts';
import { createNatsTransport } from '../../src/bus/nats.ts';
import { natsNames } from '../../src/bus/nats-stream.ts';
import { createBus } from '../../src/core/bus.ts';
import type { Bus } from '../../src/core/bus-types.ts';
import type { NatsBusConfig } from '../../src/core/config-types.ts';
import type { EventEnvelope } from '../../src/core/events.ts';
import { deleteStreams, NATS_URL, natsTestConfig, requireNats, uniquePrefix } from '../helpers/nats.ts';

// What the NATS transport promises beyond the bus contract: redelivery when a node dies, deduplication
// on both sides of JetStream, the trace context on the wire, streams made from config, clear failures.
const available = await requireNats('nats delivery');
const prefixes: string[] = [];
const buses: Bus[] = [];
const children: ChildProcess[] = [];

function freshPrefix(): string {
  const prefix = uniquePrefix();
  prefixes.push(prefix);
  return prefix;
}

async function node(config: NatsBusConfig, name = 'test-node'): Promise<Bus> {
  const bus = createBus({ transport: await createNatsTransport(config, { name }) });
  buses.push(bus);
  return bus;
}

async function eventually(check: () => void | Promise<void>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/**
 * Waits until `bus`'s work subscriptions exist on the server: an emit waits for the node's pending work
 * sets. Another node's emit does not, so a test subscribing on one node and emitting on another syncs.
 */
const subscribed = (bus: Bus) => bus.emit('test.subscribed', {});

const sleep = (milliseconds: number) => new Promise((resolve) => setTimeout(resolve, milliseconds));

async function withManager<T>(use: (manager: Awaited<ReturnType<typeof jetstreamManager>>) => Promise<T>) {
  const connection = await connect({ servers: NATS_URL });
  try {
    return await use(await jetstreamManager(connection));
  } finally {
    await connection.close();
  }
}

afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  await Promise.all(buses.splice(0).map((bus) => bus.close()));
});

afterAll(() => deleteStreams(prefixes));

describe.skipIf(!available)('nats transport: delivery guarantees', () => {
  it('gives a work event to another node when the node handling it dies before acknowledging it', async () => {
    const config = natsTestConfig(freshPrefix(), { ack_wait_ms: 1000 });
    const survivor = await node(config, 'survivor');
    // Node A: another process whose handler never finishes.
    const child = spawn(process.execPath, [join(import.meta.dirname, 'fixtures', 'nats-stuck-worker.ts')], {
      env: { ...process.env, PARLEY_NATS_CONFIG: JSON.stringify(config) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    const lines: string[] = [];
    createInterface({ input: child.stdout! }).on('line', (line) => lines.push(line));
    await eventually(() => expect(lines).toContain('ready'), 15_000);

    await survivor.emit('work.job', { n: 1 });
    await eventually(() => expect(lines.some((line) => line.startsWith('got '))).toBe(true));
    const eventId = lines.find((line) => line.startsWith('got '))!.slice(4);

    // Node B joins the same work set while A is still handling the event.
    const received: EventEnvelope[] = [];
    survivor.on('work.job', (event) => void received.push(event), { mode: 'work', group: 'workers' });
    // A reports progress while its handler runs: twice the ack wait later, the event is still A's.
    await sleep(2000);
    expect(received).toEqual([]);

    child.kill('SIGKILL');
    await eventually(() => expect(received.map((event) => event.id)).toEqual([eventId]), 10_000);
    expect(received[0]!.data).toEqual({ n: 1 });
  });

  it('deduplicates by event id: JetStream within its duplicate window, the work set after it', async () => {
    const prefix = freshPrefix();
    // Limits retention keeps handled events, so the test can count what the stream stored.
    const config = natsTestConfig(prefix, { stream: { retention: 'limits', duplicate_window_ms: 300 } });
    const bus = await node(config);
    const handled: string[] = [];
    bus.on('dedup.job', (event) => void handled.push(event.id), { mode: 'work', group: 'dedup' });
    const id = '01900000-0000-7000-8000-00000000d0d0';
    const names = natsNames(prefix);
    const streamed = () => withManager(async (manager) => (await manager.streams.info(names.stream)).state);
    const acknowledged = () =>
      withManager(async (manager) => {
        const info = await manager.consumers.info(names.stream, names.workSet('dedup', 'dedup.job'));
        return info.ack_floor.stream_seq;
      });

    await bus.emit('dedup.job', { copy: 1 }, { id });
    await bus.emit('dedup.job', { copy: 2 }, { id });
    expect((await streamed()).messages).toBe(1); // the second publish was dropped by JetStream
    await eventually(async () => expect(await acknowledged()).toBe(1));

    await sleep(400); // past the duplicate window: JetStream stores the same id again…
    await bus.emit('dedup.job', { copy: 3 }, { id });
    expect((await streamed()).messages).toBe(2);
    // …and the work set acknowledges it without calling the handler again.
    await eventually(async () => expect(await acknowledged()).toBe(2));
    expect(handled).toEqual([id]);
  });

  it('acknowledges a failed handler (the bus reported it) instead of redelivering it', async () => {
    const prefix = freshPrefix();
    const bus = await node(natsTestConfig(prefix, { ack_wait_ms: 300 }));
    let calls = 0;
    bus.on(
      'failing.job',
      () => {
        calls++;
        throw new Error('always fails');
      },
      { mode: 'work', group: 'failing' },
    );
    await bus.emit('failing.job', {});
    await eventually(() => expect(calls).toBe(1));
    await sleep(1000); // more than three ack waits
    expect(calls).toBe(1);
  });

  it('keeps events for a work set while none of its nodes is running', async () => {
    const config = natsTestConfig(freshPrefix());
    const publisher = await node(config, 'publisher');
    const first = await node(config, 'worker-1');
    const seen: number[] = [];
    first.on('durable.job', (event) => void seen.push(event.data as number), { mode: 'work', group: 'late' });
    await subscribed(first);
    await publisher.emit('durable.job', 1);
    await eventually(() => expect(seen).toEqual([1]));
    await first.close();

    for (const n of [2, 3, 4]) await publisher.emit('durable.job', n);
    const second = await node(config, 'worker-2');
    second.on('durable.job', (event) => void seen.push(event.data as number), {
      mode: 'work',
      group: 'late',
    });
    await eventually(() => expect(seen).toEqual([1, 2, 3, 4]));
  });

  it('carries traceparent end to end: in the envelope across nodes, and as a NATS header', async () => {
    const prefix = freshPrefix();
    const config = natsTestConfig(prefix);
    const [first, second] = [await node(config, 'a'), await node(config, 'b')];
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const headers: (string | undefined)[] = [];
    const raw = await connect({ servers: NATS_URL });
    raw.subscribe(`${prefix}.events.trace.check`, {
      callback: (_error, message) => {
        headers.push(message.headers?.get('traceparent'));
      },
    });
    await raw.flush();
    const handled: EventEnvelope[] = [];
    second.on('trace.check', (event) => void handled.push(event), { mode: 'work', group: 'tracer' });
    second.on('trace.lookup', (event) => event.traceparent, { mode: 'work', group: 'tracer' });
    await subscribed(second);

    await first.emit('trace.check', {}, { traceparent });
    await eventually(() => expect(handled.map((event) => event.traceparent)).toEqual([traceparent]));
    await eventually(() => expect(headers).toEqual([traceparent]));
    await expect(first.request('trace.lookup', {}, { traceparent })).resolves.toBe(traceparent);
    await raw.close();
  });
});

describe.skipIf(!available)('nats transport: streams from config and startup failures', () => {
  it('creates the stream from bus.nats.stream, updates what JetStream can change, refuses what it cannot', async () => {
    const prefix = freshPrefix();
    const stream = {
      retention: 'limits',
      max_age_ms: 60_000,
      duplicate_window_ms: 5000,
      max_bytes: 1 << 20,
    } as const;
    const transport = await createNatsTransport(natsTestConfig(prefix, { stream }));
    const info = () =>
      withManager(async (manager) => (await manager.streams.info(`${prefix}_EVENTS`)).config);
    expect(await info()).toMatchObject({
      subjects: [`${prefix}.events.>`],
      retention: 'limits',
      storage: 'memory',
      num_replicas: 1,
      max_age: nanos(60_000),
      duplicate_window: nanos(5000),
      max_bytes: 1 << 20,
      discard: 'old',
    });
    await transport.close();

    const longer = await createNatsTransport(
      natsTestConfig(prefix, { stream: { ...stream, max_age_ms: 120_000 } }),
    );
    expect((await info()).max_age).toBe(nanos(120_000));
    await longer.close();

    const error = await createNatsTransport(
      natsTestConfig(prefix, { stream: { ...stream, retention: 'interest' } }),
    ).catch((caught: unknown) => caught);
    expect(error).toMatchObject({
      code: 'CHAT_ERR_CONFIG_INVALID',
      details: { path: 'bus.nats.stream.retention' },
    });
    expect((error as Error).message).toContain(`${prefix}_EVENTS`);

    await expect(
      createNatsTransport(
        natsTestConfig(freshPrefix(), { stream: { max_age_ms: 1000, duplicate_window_ms: 2000 } }),
      ),
    ).rejects.toMatchObject({ code: 'CHAT_ERR_CONFIG_INVALID' });
  });

  it('fails startup with CHAT_ERR_BUS_UNAVAILABLE (503) naming the server when NATS is unreachable', async () => {
    const config = natsTestConfig(freshPrefix(), { servers: 'nats://127.0.0.1:9', connect_timeout_ms: 1000 });
    const error = await createNatsTransport(config).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'CHAT_ERR_BUS_UNAVAILABLE', status: 503 });
    expect((error as Error).message).toContain('nats://127.0.0.1:9');
  });

  it('createTransport picks the transport bus.transport names', async () => {
    const nats = natsTestConfig(freshPrefix());
    const local = await createTransport({
      transport: 'local',
      request_timeout_ms: 1,
      gather_timeout_ms: 1,
      nats,
    });
    expect(local.name).toBe('local');
    await local.close();
    const remote = await createTransport({
      transport: 'nats',
      request_timeout_ms: 1,
      gather_timeout_ms: 1,
      nats,
    });
    expect(remote.name).toBe('nats');
    await remote.close();
  });
});
