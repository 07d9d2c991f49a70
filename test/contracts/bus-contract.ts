import { afterEach, describe, expect, it } from 'vitest';
import { createBus } from '../../src/core/bus.ts';
import type { Bus, BusHandlerErrorEvent, BusLogger } from '../../src/core/bus-types.ts';
import {
  isPlatformError,
  NoHandlerError,
  NotFoundError,
  PlatformError,
  TimeoutError,
  ValidationError,
} from '../../src/core/errors.ts';
import type { EventEnvelope } from '../../src/core/events.ts';
import type { BusTransport } from '../../src/core/transport.ts';

// Payload types for the contract's own events, declared the way every module declares its events.
declare module '../../src/core/events.ts' {
  interface EventMap {
    'contract.typed': { count: number; label: string };
  }
}

/** Options of the bus contract suite. */
export interface BusContractOptions {
  /** How long to wait for a delivery that must come. Default 2000 ms. */
  deliveryTimeoutMs?: number;
  /**
   * How long to wait before asserting that something did NOT happen (a duplicate, a call after
   * unsubscribing). Default 30 ms; a networked transport needs more.
   */
  quietMs?: number;
}

/**
 * The behaviour every bus transport must give the bus (see `src/core/transport.ts`). `makeTransports(n)`
 * returns `n` fresh transports connected to each other, as `n` nodes of one deployment; each test asks
 * for new ones and the suite closes them. Tests never assume that `emit` waits for handlers.
 */
export function describeBusContract(
  name: string,
  makeTransports: (count: number) => Promise<BusTransport[]>,
  options: BusContractOptions = {},
): void {
  const deliveryTimeoutMs = options.deliveryTimeoutMs ?? 2000;
  const quietMs = options.quietMs ?? 30;
  const buses: Bus[] = [];

  interface TestBus {
    bus: Bus;
    errors: { object: Record<string, unknown>; message: string }[];
    /** What the bus logged at debug level. */
    debugs: { object: Record<string, unknown>; message: string }[];
    failures: { type: string; group: string }[];
  }

  /** `count` buses, one per node, each with a recording logger and metrics. */
  async function nodes(count: number): Promise<TestBus[]> {
    const transports = await makeTransports(count);
    return transports.map((transport, index) => {
      const errors: TestBus['errors'] = [];
      const failures: TestBus['failures'] = [];
      const debugs: TestBus['debugs'] = [];
      const log: BusLogger = {
        error: (object, message) => errors.push({ object, message }),
        debug: (object, message) => debugs.push({ object, message }),
      };
      const bus = createBus({
        transport,
        source: `node-${index + 1}`,
        requestTimeoutMs: deliveryTimeoutMs,
        gatherTimeoutMs: deliveryTimeoutMs,
        log,
        metrics: { handlerError: (type, group) => failures.push({ type, group }) },
      });
      buses.push(bus);
      return { bus, errors, debugs, failures };
    });
  }

  async function node(): Promise<TestBus> {
    const [only] = await nodes(1);
    return only!;
  }

  /** Retries `check` until it stops throwing or the delivery timeout passes. */
  async function eventually(check: () => void): Promise<void> {
    const deadline = Date.now() + deliveryTimeoutMs;
    for (;;) {
      try {
        check();
        return;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await sleep(5);
      }
    }
  }

  const quiet = () => sleep(quietMs);

  afterEach(async () => {
    await Promise.all(buses.splice(0).map((bus) => bus.close()));
  });

  describe(`bus contract: ${name}`, () => {
    describe('broadcast', () => {
      it('delivers an emitted event to every subscriber, in an envelope carrying the given attributes', async () => {
        const { bus } = await node();
        const first: EventEnvelope[] = [];
        const second: EventEnvelope[] = [];
        bus.on('contract.status_changed', (event) => {
          first.push(event);
        });
        bus.on('contract.status_changed', (event) => {
          second.push(event);
        });
        await bus.emit(
          'contract.status_changed',
          { userId: 'u1', status: 'online' },
          { userId: 'u1', sessionId: 's1', correlationId: 'c1', traceparent: '00-abc-def-01' },
        );
        await eventually(() => expect(first).toHaveLength(1));
        await eventually(() => expect(second).toHaveLength(1));
        const event = first[0]!;
        expect(event).toMatchObject({
          type: 'contract.status_changed',
          source: 'node-1',
          data: { userId: 'u1', status: 'online' },
          userId: 'u1',
          sessionId: 's1',
          correlationId: 'c1',
          traceparent: '00-abc-def-01',
        });
        expect(event.id).toMatch(/^[0-9a-f-]{36}$/);
        expect(Number.isNaN(Date.parse(event.time))).toBe(false);
        expect(second[0]!.id).toBe(event.id);
      });

      it('uses the caller-given source over the bus default', async () => {
        const { bus } = await node();
        const seen: string[] = [];
        bus.on('contract.ping', (event) => {
          seen.push(event.source);
        });
        await bus.emit('contract.ping', {}, { source: 'presence' });
        await eventually(() => expect(seen).toEqual(['presence']));
      });

      it('matches wildcards like NATS subjects: * is one segment, > one or more', async () => {
        const { bus } = await node();
        const seen: Record<string, string[]> = { star: [], tail: [], middle: [], exact: [], all: [] };
        const record = (key: string) => (event: EventEnvelope) => {
          seen[key]!.push(event.type);
        };
        bus.on('chat.*', record('star'));
        bus.on('chat.>', record('tail'));
        bus.on('*.message', record('middle'));
        bus.on('chat.message', record('exact'));
        bus.on('>', record('all'));
        for (const type of [
          'chat.message',
          'chat.message.delta',
          'chat',
          'user.message',
          'chatter.message',
        ]) {
          await bus.emit(type, {});
        }
        await eventually(() => expect(seen.all).toHaveLength(5));
        await quiet();
        expect(seen.star).toEqual(['chat.message']);
        expect(seen.tail).toEqual(['chat.message', 'chat.message.delta']);
        expect(seen.middle).toEqual(['chat.message', 'user.message', 'chatter.message']);
        expect(seen.exact).toEqual(['chat.message']);
      });

      it('stops delivering after the unsubscribe function is called', async () => {
        const { bus } = await node();
        const seen: number[] = [];
        const unsubscribe = bus.on('contract.tick', (event) => {
          seen.push(event.data as number);
        });
        await bus.emit('contract.tick', 1);
        await eventually(() => expect(seen).toEqual([1]));
        unsubscribe();
        unsubscribe(); // a second call is harmless
        await bus.emit('contract.tick', 2);
        await quiet();
        expect(seen).toEqual([1]);
      });

      it('unsubscribes when the AbortSignal aborts, and never subscribes with an aborted one', async () => {
        const { bus } = await node();
        const controller = new AbortController();
        const seen: number[] = [];
        const never: number[] = [];
        bus.on('contract.tick', (event) => void seen.push(event.data as number), {
          signal: controller.signal,
        });
        bus.on('contract.tick', (event) => void never.push(event.data as number), {
          signal: AbortSignal.abort(),
        });
        await bus.emit('contract.tick', 1);
        await eventually(() => expect(seen).toEqual([1]));
        controller.abort();
        await bus.emit('contract.tick', 2);
        await quiet();
        expect(seen).toEqual([1]);
        expect(never).toEqual([]);
      });

      it('rejects malformed event types and patterns with a ValidationError', async () => {
        const { bus } = await node();
        await expect(bus.emit('Chat.Message', {})).rejects.toBeInstanceOf(ValidationError);
        await expect(bus.emit('chat.*', {})).rejects.toBeInstanceOf(ValidationError);
        await expect(bus.emit('chat..message', {})).rejects.toBeInstanceOf(ValidationError);
        await expect(bus.request('chat.>', {})).rejects.toBeInstanceOf(ValidationError);
        expect(() => bus.on('chat.>.x', () => {})).toThrow(ValidationError);
        expect(() => bus.on('chat.mess*', () => {})).toThrow(ValidationError);
        expect(() => bus.on('', () => {})).toThrow(ValidationError);
      });

      it('type-checks payloads through the EventMap that modules extend by declaration merging', async () => {
        const { bus } = await node();
        const labels: string[] = [];
        bus.on('contract.typed', (event) => {
          const count: number = event.data.count; // typed: no cast needed
          labels.push(`${event.data.label}:${count}`);
        });
        await bus.emit('contract.typed', { count: 2, label: 'two' });
        // @ts-expect-error — a declared event's payload is checked
        await bus.emit('contract.typed', { count: 'two', label: 'two' }).catch(() => {});
        // Undeclared types stay open.
        await bus.emit('contract.untyped', { anything: true });
        await eventually(() => expect(labels).toContain('two:2'));
      });
    });

    describe('failing handlers', () => {
      it('never stop the other handlers nor reject emit; they are logged, counted and announced', async () => {
        const { bus, errors, failures } = await node();
        const announced: BusHandlerErrorEvent[] = [];
        const reached: string[] = [];
        bus.on('bus.handler.error', (event) => {
          announced.push(event.data);
        });
        bus.on(
          'contract.order_placed',
          () => {
            throw new Error('sync boom');
          },
          { mode: 'work', group: 'billing' },
        );
        bus.on(
          'contract.order_placed',
          async () => {
            throw new ValidationError('async boom');
          },
          { mode: 'work', group: 'shipping' },
        );
        bus.on('contract.order_placed', () => void reached.push('work'), { mode: 'work', group: 'email' });
        bus.on('contract.order_placed', () => void reached.push('local'));
        await expect(bus.emit('contract.order_placed', { orderId: 'o1' })).resolves.toBeUndefined();
        await eventually(() => expect(reached.sort()).toEqual(['local', 'work']));
        await eventually(() => expect(announced).toHaveLength(2));
        const byGroup = Object.fromEntries(announced.map((event) => [event.group, event]));
        expect(byGroup.billing).toMatchObject({
          type: 'contract.order_placed',
          error: { code: 'CHAT_ERR_BUS_HANDLER_FAILED' },
        });
        expect(byGroup.billing!.error.message).toContain('sync boom');
        expect(byGroup.shipping).toMatchObject({
          type: 'contract.order_placed',
          error: { code: 'CHAT_ERR_VALIDATION_INVALID', message: 'async boom' },
        });
        expect(byGroup.billing!.eventId).toBe(byGroup.shipping!.eventId);
        expect(failures.map((failure) => failure.group).sort()).toEqual(['billing', 'shipping']);
        expect(errors).toHaveLength(2);
        expect(errors[0]!.object).toMatchObject({ type: 'contract.order_placed' });
      });

      it('does not loop when a handler of bus.handler.error itself fails', async () => {
        const { bus, errors } = await node();
        let errorHandlerCalls = 0;
        let wildcardCalls = 0;
        bus.on('bus.handler.error', () => {
          errorHandlerCalls++;
          throw new Error('the error handler fails too');
        });
        // A catch-all that fails on everything, including the announcements of its own failures.
        bus.on('>', () => {
          wildcardCalls++;
          throw new Error('catch-all fails');
        });
        await bus.emit('contract.order_placed', {});
        await eventually(() => expect(errors.length).toBeGreaterThanOrEqual(3));
        await quiet();
        // One announcement for the catch-all's failure on order.placed; its handlers fail once each.
        expect(errorHandlerCalls).toBe(1);
        expect(wildcardCalls).toBe(2);
        expect(errors).toHaveLength(3);
      });
    });

    describe('work subscriptions and local listeners', () => {
      it('gives each event to one member of a work group, and to every group', async () => {
        const { bus } = await node();
        const calls: string[] = [];
        bus.on('contract.job', () => void calls.push('a1'), { mode: 'work', group: 'a' });
        bus.on('contract.job', () => void calls.push('a2'), { mode: 'work', group: 'a' });
        bus.on('contract.job', () => void calls.push('b'), { mode: 'work', group: 'b' });
        for (let index = 0; index < 10; index++) await bus.emit('contract.job', index);
        await eventually(() => expect(calls.filter((call) => call === 'b')).toHaveLength(10));
        await eventually(() => expect(calls.filter((call) => call.startsWith('a'))).toHaveLength(10));
        await quiet();
        expect(calls).toHaveLength(20);
      });

      it('delivers to every local listener', async () => {
        const { bus } = await node();
        const calls: string[] = [];
        bus.on('contract.job', () => void calls.push('one'), { mode: 'local', group: 'sse' });
        bus.on('contract.job', () => void calls.push('two'), { mode: 'local', group: 'sse' });
        await bus.emit('contract.job', 1);
        await bus.emit('contract.job', 2);
        await eventually(() => expect(calls.sort()).toEqual(['one', 'one', 'two', 'two']));
      });

      it('handles a redelivered envelope (same id) once per work group', async () => {
        const { bus } = await node();
        const handled: string[] = [];
        bus.on('contract.job', (event) => void handled.push(event.id), { mode: 'work', group: 'worker' });
        const id = '01900000-0000-7000-8000-000000000001';
        await bus.emit('contract.job', { n: 1 }, { id });
        await bus.emit('contract.job', { n: 1 }, { id });
        await bus.emit('contract.job', { n: 2 });
        await eventually(() => expect(handled).toHaveLength(2));
        await quiet();
        expect(handled).toHaveLength(2);
        expect(handled.filter((handledId) => handledId === id)).toHaveLength(1);
      });

      it('across nodes: a work group with members on both nodes handles each event once', async () => {
        const [first, second] = await nodes(2);
        const calls: string[] = [];
        first!.bus.on('contract.job', (event) => void calls.push(`n1:${event.data}`), {
          mode: 'work',
          group: 'worker',
        });
        second!.bus.on('contract.job', (event) => void calls.push(`n2:${event.data}`), {
          mode: 'work',
          group: 'worker',
        });
        for (let index = 0; index < 10; index++) {
          await (index % 2 === 0 ? first! : second!).bus.emit('contract.job', index);
        }
        await eventually(() => expect(calls).toHaveLength(10));
        await quiet();
        expect(calls).toHaveLength(10);
        const handled = calls.map((call) => Number(call.split(':')[1])).sort((a, b) => a - b);
        expect(handled).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      });

      it('across nodes: local listeners on every node see every event', async () => {
        const [first, second] = await nodes(2);
        const calls: string[] = [];
        first!.bus.on('contract.job', (event) => void calls.push(`n1:${event.data}`));
        second!.bus.on('contract.job', (event) => void calls.push(`n2:${event.data}`));
        await first!.bus.emit('contract.job', 1);
        await second!.bus.emit('contract.job', 2);
        await eventually(() => expect(calls.sort()).toEqual(['n1:1', 'n1:2', 'n2:1', 'n2:2']));
      });
    });

    describe('request', () => {
      it('resolves with the reply of a sync or async handler', async () => {
        const { bus } = await node();
        bus.on('contract.double', (event) => (event.data as number) * 2, { mode: 'work', group: 'math' });
        bus.on(
          'contract.square',
          async (event) => {
            await sleep(1);
            return (event.data as number) ** 2;
          },
          { mode: 'work', group: 'math' },
        );
        await expect(bus.request('contract.double', 21)).resolves.toBe(42);
        await expect(bus.request('contract.square', 9)).resolves.toBe(81);
      });

      it("logs a handler's client error (status < 500) at debug, and any other failure at error", async () => {
        const { bus, errors, debugs } = await node();
        bus.on(
          'contract.find',
          (event) => {
            if (event.data === 'missing') throw new NotFoundError('no such thing');
            throw new Error('disk on fire');
          },
          { mode: 'work', group: 'finder' },
        );
        // The requester gets the refusal as its answer: an operator's error log must not fill with them.
        await expect(bus.request('contract.find', 'missing')).rejects.toBeInstanceOf(NotFoundError);
        expect(errors).toEqual([]);
        expect(debugs).toHaveLength(1);
        expect(debugs[0]!.object).toMatchObject({ type: 'contract.find', code: 'CHAT_ERR_NOT_FOUND' });
        await expect(bus.request('contract.find', 'other')).rejects.toMatchObject({
          code: 'CHAT_ERR_BUS_HANDLER_FAILED',
        });
        expect(errors).toHaveLength(1);
        expect(errors[0]!.message).toBe('bus handler failed');
      });

      it('reaches a handler on another node', async () => {
        const [first, second] = await nodes(2);
        second!.bus.on('contract.double', (event) => ({ doubled: (event.data as number) * 2 }), {
          mode: 'work',
          group: 'math',
        });
        await expect(first!.bus.request('contract.double', 4)).resolves.toEqual({ doubled: 8 });
      });

      it('goes to one handler only, a work subscription rather than a local listener', async () => {
        const { bus } = await node();
        const calls: string[] = [];
        bus.on('contract.lookup', () => {
          calls.push('listener');
          return 'from listener';
        });
        bus.on(
          'contract.lookup',
          () => {
            calls.push('a');
            return 'from a';
          },
          { mode: 'work', group: 'users' },
        );
        bus.on(
          'contract.lookup',
          () => {
            calls.push('b');
            return 'from b';
          },
          { mode: 'work', group: 'users' },
        );
        const reply = await bus.request('contract.lookup', { id: 'u1' });
        await quiet();
        expect(calls).toHaveLength(1);
        expect(['from a', 'from b']).toContain(reply);
      });

      it('is answered by a local listener when no work subscription matches', async () => {
        const { bus } = await node();
        bus.on('contract.echo', (event) => event.data);
        await expect(bus.request('contract.echo', 'hello')).resolves.toBe('hello');
      });

      it('rejects with NoHandlerError when nobody handles the type', async () => {
        const { bus } = await node();
        bus.on('contract.other', () => 1);
        const error = await bus.request('contract.nobody', {}).catch((caught: unknown) => caught);
        expect(error).toBeInstanceOf(NoHandlerError);
        expect(error).toMatchObject({ code: 'CHAT_ERR_BUS_NO_HANDLER', status: 503 });
      });

      it('rejects with TimeoutError when the handler does not answer in time', async () => {
        const { bus } = await node();
        const release = deferred<void>();
        bus.on('contract.slow', () => release.promise, { mode: 'work', group: 'slow' });
        const error = await bus
          .request('contract.slow', {}, { timeout: 20 })
          .catch((caught: unknown) => caught);
        release.resolve();
        expect(error).toBeInstanceOf(TimeoutError);
        expect(error).toMatchObject({ code: 'CHAT_ERR_BUS_TIMEOUT', status: 504 });
      });

      it('rejects with the handler error as a PlatformError, across nodes too', async () => {
        const [first, second] = await nodes(2);
        second!.bus.on(
          'contract.check',
          (event) => {
            if (event.data === 'plain') throw new Error('database down');
            throw new ValidationError('email is not valid', { details: { field: 'email' } });
          },
          { mode: 'work', group: 'accounts' },
        );
        const plain = await first!.bus.request('contract.check', 'plain').catch((caught: unknown) => caught);
        expect(isPlatformError(plain, 'CHAT_ERR_BUS_HANDLER_FAILED')).toBe(true);
        expect((plain as PlatformError).message).toContain('database down');
        const invalid = await first!.bus.request('contract.check', 'bad').catch((caught: unknown) => caught);
        expect(invalid).toBeInstanceOf(ValidationError);
        expect(invalid).toMatchObject({
          code: 'CHAT_ERR_VALIDATION_INVALID',
          status: 400,
          message: 'email is not valid',
          details: { field: 'email' },
        });
        await eventually(() => expect(second!.failures).toHaveLength(2));
      });

      it('rejects with the abort reason when its signal aborts', async () => {
        const { bus } = await node();
        const release = deferred<void>();
        bus.on('contract.slow', () => release.promise, { mode: 'work', group: 'slow' });
        const controller = new AbortController();
        const pending = bus.request('contract.slow', {}, { signal: controller.signal, timeout: 60_000 });
        controller.abort(new Error('user went away'));
        await expect(pending).rejects.toThrow('user went away');
        release.resolve();
        await expect(bus.request('contract.slow', {}, { signal: AbortSignal.abort() })).rejects.toMatchObject(
          {
            name: 'AbortError',
          },
        );
      });
    });

    describe('pipeline', () => {
      it('runs the stages in order, each receiving the previous output', async () => {
        const [first, second] = await nodes(2);
        const order: string[] = [];
        const correlation = new Set<string | undefined>();
        const stage = (bus: Bus, name: string, change: (text: string) => string) =>
          bus.on(
            `pipeline.stage.${name}`,
            async (event) => {
              order.push(name);
              correlation.add(event.correlationId);
              return change(event.data as string);
            },
            { mode: 'work', group: name },
          );
        stage(first!.bus, 'parse', (text) => text.trim());
        stage(second!.bus, 'enrich', (text) => `${text} [enriched]`);
        stage(first!.bus, 'format', (text) => text.toUpperCase());
        const result = await first!.bus.pipeline(['parse', 'enrich', 'format'], '  hello ');
        expect(result).toBe('HELLO [ENRICHED]');
        expect(order).toEqual(['parse', 'enrich', 'format']);
        expect(correlation.size).toBe(1);
        expect([...correlation][0]).toBeTypeOf('string');
      });

      it('rejects with a PlatformError naming the failing stage, and runs no later stage', async () => {
        const { bus } = await node();
        const ran: string[] = [];
        bus.on('pipeline.stage.parse', (event) => {
          ran.push('parse');
          return event.data;
        });
        bus.on('pipeline.stage.enrich', () => {
          ran.push('enrich');
          throw new Error('enricher crashed');
        });
        bus.on('pipeline.stage.format', (event) => {
          ran.push('format');
          return event.data;
        });
        const error = await bus
          .pipeline(['parse', 'enrich', 'format'], 'x')
          .catch((caught: unknown) => caught);
        expect(error).toBeInstanceOf(PlatformError);
        expect(error).toMatchObject({ code: 'CHAT_ERR_BUS_HANDLER_FAILED', details: { stage: 'enrich' } });
        expect((error as Error).message).toContain('enrich');
        expect((error as Error).message).toContain('enricher crashed');
        expect(ran).toEqual(['parse', 'enrich']);
      });

      it('names a stage nobody handles, keeping the NoHandlerError', async () => {
        const { bus } = await node();
        bus.on('pipeline.stage.parse', (event) => event.data);
        const error = await bus.pipeline(['parse', 'missing'], 'x').catch((caught: unknown) => caught);
        expect(error).toBeInstanceOf(NoHandlerError);
        expect(error).toMatchObject({ details: { stage: 'missing', stageIndex: 1 } });
      });
    });

    describe('gather', () => {
      it('collects one reply per responder group, tagged with the group', async () => {
        const [first, second] = await nodes(2);
        first!.bus.on('contract.query', () => 'memory says hi', { mode: 'work', group: 'memory' });
        second!.bus.on('contract.query', async () => 'rag says hi', { mode: 'work', group: 'rag' });
        // Local listeners observe; they answer only when no work subscription matches.
        second!.bus.on('contract.query', () => 'listener');
        // A second member of the rag group, on the other node: the group still answers once.
        first!.bus.on('contract.query', async () => 'rag says hi', { mode: 'work', group: 'rag' });
        const result = await first!.bus.gather<string>('contract.query', { query: 'weather' });
        expect(result.timedOut).toBe(false);
        expect(result.failed).toEqual([]);
        expect(result.missing).toEqual([]);
        expect(result.replies.map((reply) => `${reply.responder}=${reply.data}`).sort()).toEqual([
          'memory=memory says hi',
          'rag=rag says hi',
        ]);
      });

      it('stops once the expected number of replies came', async () => {
        const { bus } = await node();
        const never = deferred<string>();
        bus.on('contract.query', () => 'fast', { mode: 'work', group: 'fast' });
        bus.on('contract.query', () => never.promise, { mode: 'work', group: 'stuck' });
        const result = await bus.gather('contract.query', {}, { expected: 1, timeout: 60_000 });
        never.resolve('late');
        expect(result.replies).toEqual([{ responder: 'fast', data: 'fast' }]);
        expect(result.timedOut).toBe(false);
        expect(result.missing).toEqual(['stuck']);
      });

      it('returns what came by the timeout and names the late responders', async () => {
        const { bus } = await node();
        const never = deferred<string>();
        bus.on('contract.query', () => 'fast', { mode: 'work', group: 'fast' });
        bus.on('contract.query', () => never.promise, { mode: 'work', group: 'stuck' });
        const result = await bus.gather('contract.query', {}, { expected: 2, timeout: 30 });
        never.resolve('late');
        expect(result.replies).toEqual([{ responder: 'fast', data: 'fast' }]);
        expect(result.timedOut).toBe(true);
        expect(result.missing).toEqual(['stuck']);
      });

      it('reports failed responders with their error, and still returns the others', async () => {
        const { bus } = await node();
        bus.on('contract.query', () => 'ok', { mode: 'work', group: 'good' });
        bus.on(
          'contract.query',
          () => {
            throw new Error('index unavailable');
          },
          { mode: 'work', group: 'broken' },
        );
        const result = await bus.gather('contract.query', {});
        expect(result.replies).toEqual([{ responder: 'good', data: 'ok' }]);
        expect(result.failed).toHaveLength(1);
        expect(result.failed[0]).toMatchObject({ responder: 'broken', code: 'CHAT_ERR_BUS_HANDLER_FAILED' });
        expect(result.failed[0]!.error).toContain('index unavailable');
        expect(result.timedOut).toBe(false);
        expect(result.missing).toEqual([]);
      });

      it('returns an empty result when nobody responds', async () => {
        const { bus } = await node();
        const result = await bus.gather('contract.query', {}, { timeout: 30 });
        expect(result.replies).toEqual([]);
        expect(result.failed).toEqual([]);
      });
    });

    describe('close', () => {
      it('waits for running handlers (which may still emit), then rejects new events with CHAT_ERR_BUS_CLOSED', async () => {
        const { bus } = await node();
        const started = deferred<void>();
        const release = deferred<void>();
        let finished = false;
        bus.on(
          'contract.job',
          async () => {
            started.resolve();
            await release.promise;
            // A handler finishing during shutdown can still report what it did.
            await bus.emit('contract.job_done', {});
            finished = true;
          },
          { mode: 'work', group: 'worker' },
        );
        void bus.emit('contract.job', {});
        await started.promise;
        let closed = false;
        const closing = bus.close().then(() => {
          closed = true;
        });
        await quiet();
        expect(closed).toBe(false);
        release.resolve();
        await closing;
        expect(finished).toBe(true);
        await expect(bus.emit('contract.job', {})).rejects.toMatchObject({ code: 'CHAT_ERR_BUS_CLOSED' });
        await expect(bus.request('contract.job', {})).rejects.toMatchObject({ code: 'CHAT_ERR_BUS_CLOSED' });
        expect(() => bus.on('contract.job', () => {})).toThrow(PlatformError);
      });
    });
  });
}

function sleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((settle) => {
    resolve = settle;
  });
  return { promise, resolve };
}
