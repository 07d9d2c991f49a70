import { describe, expect, it } from 'vitest';
import { createLocalNetwork, createLocalTransport } from '../../src/bus/local.ts';
import { createBus, deliveredToNobody } from '../../src/core/bus.ts';
import { describeBusContract } from './bus-contract.ts';

describeBusContract('in-process transport', async (count) => {
  const network = createLocalNetwork();
  return Array.from({ length: count }, () => network.createTransport());
});

describe('in-process transport, beyond the contract', () => {
  it('resolves emit only after every async handler has finished', async () => {
    const bus = createBus({ transport: createLocalTransport() });
    const finished: string[] = [];
    bus.on(
      'job.created',
      async () => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        finished.push('work');
      },
      { mode: 'work', group: 'worker' },
    );
    bus.on('job.created', async () => {
      await Promise.resolve();
      finished.push('listener');
    });
    await bus.emit('job.created', {});
    expect(finished.sort()).toEqual(['listener', 'work']);
    await bus.close();
  });

  it('tells the bus when nobody listens to a type: such an event is counted, not published; a listener added later gets the next one', async () => {
    const network = createLocalNetwork();
    const transport = network.createTransport();
    const other = network.createTransport();
    const published: string[] = [];
    const publish = transport.publish.bind(transport);
    transport.publish = (envelope) => {
      published.push(envelope.type);
      return publish(envelope);
    };
    const emitted: string[] = [];
    const bus = createBus({ transport, metrics: { eventEmitted: (type) => emitted.push(type) } });
    expect(transport.hasListeners?.('job.finished')).toBe(false);
    const unheard = bus.emit('job.finished', { n: 1 });
    // Its caller may skip a failure handler: it is known to be delivered to nobody.
    expect(deliveredToNobody(unheard)).toBe(true);
    await unheard;
    expect(emitted).toEqual(['job.finished']);
    expect(published).toEqual([]);

    // A listener on another node of the network, by wildcard: the type has a listener now.
    const heard: unknown[] = [];
    const otherBus = createBus({ transport: other });
    const unsubscribe = otherBus.on('job.>', (event) => void heard.push(event.data));
    expect(transport.hasListeners?.('job.finished')).toBe(true);
    const heardOne = bus.emit('job.finished', { n: 2 });
    expect(deliveredToNobody(heardOne)).toBe(false);
    await heardOne;
    expect(published).toEqual(['job.finished']);
    expect(heard).toEqual([{ n: 2 }]);

    unsubscribe();
    expect(transport.hasListeners?.('job.finished')).toBe(false);
    await bus.close();
    // Closed: emit still refuses, as it did before the shortcut.
    await expect(bus.emit('job.finished', {})).rejects.toMatchObject({ code: 'CHAT_ERR_BUS_CLOSED' });
    await otherBus.close();
  });

  it('reports emitted events, handler durations and failures to the injected metrics and callback', async () => {
    const emitted: string[] = [];
    const completed: { type: string; group: string; seconds: number }[] = [];
    const failedGroups: string[] = [];
    const callbackCodes: string[] = [];
    const bus = createBus({
      transport: createLocalTransport(),
      metrics: {
        eventEmitted: (type) => emitted.push(type),
        handlerCompleted: (type, group, seconds) => completed.push({ type, group, seconds }),
        handlerError: (_type, group) => failedGroups.push(group),
      },
      onHandlerError: (error) => callbackCodes.push(error.code),
    });
    bus.on('job.created', async () => {}, { mode: 'work', group: 'fine' });
    bus.on(
      'job.created',
      () => {
        throw new Error('no');
      },
      { mode: 'work', group: 'broken' },
    );
    await bus.emit('job.created', {});
    expect(emitted).toEqual(['job.created']);
    expect(completed.map((entry) => entry.group).sort()).toEqual(['broken', 'fine']);
    expect(completed.every((entry) => entry.type === 'job.created' && entry.seconds >= 0)).toBe(true);
    expect(failedGroups).toEqual(['broken']);
    expect(callbackCodes).toEqual(['CHAT_ERR_BUS_HANDLER_FAILED']);
    await bus.close();
  });

  it('keeps only the newest ids of its dedup window', async () => {
    const bus = createBus({ transport: createLocalTransport({ dedupWindow: 2 }) });
    const handled: string[] = [];
    bus.on('job.created', (event) => void handled.push(event.data as string), { mode: 'work', group: 'w' });
    const ids = ['01900000-0000-7000-8000-000000000001', '01900000-0000-7000-8000-000000000002'];
    await bus.emit('job.created', 'a', { id: ids[0]! });
    await bus.emit('job.created', 'b', { id: ids[1]! });
    await bus.emit('job.created', 'a again', { id: ids[0]! });
    for (let index = 0; index < 5; index++) await bus.emit('job.created', `fill ${index}`);
    // Forgotten by now: a window of 2 ids no longer holds the first one.
    await bus.emit('job.created', 'a much later', { id: ids[0]! });
    expect(handled).toEqual(['a', 'b', 'fill 0', 'fill 1', 'fill 2', 'fill 3', 'fill 4', 'a much later']);
    await bus.close();
  });
});
