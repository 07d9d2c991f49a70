import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNatsTransport } from '../../src/bus/nats.ts';
import { createBus } from '../../src/core/bus.ts';
import type { Bus } from '../../src/core/bus-types.ts';
import { isPlatformError } from '../../src/core/errors.ts';
import {
  natsTestConfig,
  type OwnNatsServer,
  requireNatsServerBinary,
  startOwnNatsServer,
  uniquePrefix,
} from '../helpers/nats.ts';

// NATS crashes (SIGKILL) and comes back while events flow: calls during the outage fail at once with a
// 503, the nodes reconnect by themselves, and every event whose emit resolved is handled. The server is
// this test's own (a free port, a temporary store): the shared one on 4222 is never touched.
const available = requireNatsServerBinary('nats restart');

describe.skipIf(!available)('nats transport: NATS restarted while traffic runs', () => {
  let server: OwnNatsServer;
  beforeAll(async () => {
    server = await startOwnNatsServer();
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('fails calls fast with 503 during the outage, recovers without a restart, loses no acknowledged event', async () => {
    const config = natsTestConfig(uniquePrefix(), {
      servers: server.url,
      reconnect_wait_ms: 100,
      ack_wait_ms: 2000,
      // File storage: what an acknowledged event must survive is the server's crash.
      stream: { storage: 'file' },
    });
    const publisher = createBus({ transport: await createNatsTransport(config, { name: 'publisher' }) });
    const worker = createBus({ transport: await createNatsTransport(config, { name: 'worker' }) });
    const buses: Bus[] = [publisher, worker];
    try {
      const handledCount = new Map<string, number>();
      worker.on(
        'traffic.job',
        (event) => {
          handledCount.set(event.id, (handledCount.get(event.id) ?? 0) + 1);
        },
        { mode: 'work', group: 'store' },
      );
      worker.on('traffic.echo', (event) => event.data, { mode: 'work', group: 'store' });
      const listened: number[] = [];
      publisher.on('traffic.job', (event) => void listened.push((event.data as { n: number }).n));
      await worker.emit('traffic.ready', {}); // the worker's work set now exists on the server
      // A second work set whose only node is down for the whole test: its events wait in the stream's
      // files, through the crash.
      const archiveNode = createBus({ transport: await createNatsTransport(config, { name: 'archive' }) });
      archiveNode.on('traffic.job', () => {}, { mode: 'work', group: 'archive' });
      await archiveNode.emit('traffic.ready', {});
      await archiveNode.close();

      // Traffic: one emit after another, recording what was acknowledged and what failed, and how.
      const acknowledged: string[] = [];
      const failures: { code: string; status: number; milliseconds: number }[] = [];
      let n = 0;
      let running = true;
      const traffic = (async () => {
        while (running) {
          const id = crypto.randomUUID();
          const started = performance.now();
          try {
            await publisher.emit('traffic.job', { n: n++ }, { id });
            acknowledged.push(id);
          } catch (error) {
            if (!isPlatformError(error)) throw error;
            failures.push({
              code: error.code,
              status: error.status,
              milliseconds: performance.now() - started,
            });
          }
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })();
      await until(() => acknowledged.length >= 20);
      await expect(publisher.request('traffic.echo', 'before')).resolves.toBe('before');

      await server.kill();
      await until(() => failures.length >= 5);
      // During the outage: emit and request are refused at once with a 503, not left hanging until a timeout.
      const emitError = await settleWithin(publisher.emit('traffic.job', { n: -1 }), 1000);
      expect(emitError).toMatchObject({ code: 'CHAT_ERR_BUS_UNAVAILABLE', status: 503 });
      const requestError = await settleWithin(
        publisher.request('traffic.echo', 'during', { timeout: 30_000 }),
        1000,
      );
      expect(requestError).toMatchObject({ code: 'CHAT_ERR_BUS_UNAVAILABLE', status: 503 });
      const gatherError = await settleWithin(
        publisher.gather('traffic.echo', 'during', { timeout: 30_000 }),
        1000,
      );
      expect(gatherError).toMatchObject({ code: 'CHAT_ERR_BUS_UNAVAILABLE', status: 503 });
      const acknowledgedBeforeRestart = acknowledged.length;

      await sleep(1000); // a real outage: the nodes keep trying to reconnect meanwhile
      await server.start();
      await until(
        () => acknowledged.length >= acknowledgedBeforeRestart + 20,
        15_000,
        'emits after the restart',
      );
      running = false;
      await traffic;

      // Every failure was the clear 503, none a 500 or a timeout.
      expect(new Set(failures.map((failure) => `${failure.code} ${failure.status}`))).toEqual(
        new Set(['CHAT_ERR_BUS_UNAVAILABLE 503']),
      );
      // Every acknowledged event is handled, once (this worker remembers what it handled).
      await until(
        () => acknowledged.every((id) => handledCount.has(id)),
        15_000,
        'every acknowledged event handled',
      );
      expect(acknowledged.filter((id) => handledCount.get(id) !== 1)).toEqual([]);
      // The work set that was down all along finds every acknowledged event in the restarted stream.
      const archived = new Set<string>();
      const archive = createBus({ transport: await createNatsTransport(config, { name: 'archive' }) });
      buses.push(archive);
      archive.on('traffic.job', (event) => void archived.add(event.id), { mode: 'work', group: 'archive' });
      await until(
        () => acknowledged.every((id) => archived.has(id)),
        15_000,
        'every acknowledged event archived',
      );
      // Requests and local listeners work again.
      await expect(publisher.request('traffic.echo', 'after')).resolves.toBe('after');
      const last = n - 1;
      await until(() => listened.includes(last), 10_000, 'local listener after the restart');
    } finally {
      await Promise.all(buses.map((bus) => bus.close()));
    }
  });

  it('re-creates the stream and the work sets when NATS comes back without them (memory storage)', async () => {
    const config = natsTestConfig(uniquePrefix(), {
      servers: server.url,
      reconnect_wait_ms: 100,
      stream: { storage: 'memory' },
    });
    const publisher = createBus({ transport: await createNatsTransport(config, { name: 'publisher' }) });
    const worker = createBus({ transport: await createNatsTransport(config, { name: 'worker' }) });
    try {
      const handled: number[] = [];
      worker.on('memory.job', (event) => void handled.push(event.data as number), {
        mode: 'work',
        group: 'mem',
      });
      await worker.emit('memory.ready', {});
      await publisher.emit('memory.job', 1);
      await until(() => handled.includes(1));

      await server.kill();
      await server.start(); // an empty server: memory streams and their consumers are gone
      // Emits are refused until a node has re-created the stream; then every one stored is handled.
      for (let next = 2; next <= 4; ) {
        try {
          await publisher.emit('memory.job', next);
          next++;
        } catch (error) {
          expect(error).toMatchObject({ code: 'CHAT_ERR_BUS_UNAVAILABLE' });
          await sleep(50);
        }
      }
      await until(() => handled.length >= 4, 15_000, 'events handled after the restart');
      await sleep(200);
      expect(handled).toEqual([1, 2, 3, 4]);
    } finally {
      await Promise.all([publisher.close(), worker.close()]);
    }
  });
});

function sleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}

async function until(condition: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The rejection of `promise`, or a failure if it neither resolves nor rejects within `milliseconds`. */
async function settleWithin(promise: Promise<unknown>, milliseconds: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${milliseconds} ms`)), milliseconds);
  });
  try {
    await Promise.race([promise, hung]);
    return undefined;
  } catch (error) {
    return error;
  } finally {
    clearTimeout(timer);
  }
}
