/**
 * The Redis driver's per-key call order, against a model of Redis that applies each command when it is
 * sent — and, the worst case for a write, applies a write only when it returns (a create is its second
 * command). Whatever the timing, each key's operations must take effect in call order. The driver's own
 * tests (redis.test.ts) check the same against the real Redis.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRedisKeyOrder } from './redis-key-order.ts';

type Kind = 'plain' | 'write' | 'append';

/** Resolves after `ticks` turns of the event loop (a reply that takes a while). */
const turns = (ticks: number) =>
  new Promise<void>((resolve) => {
    let left = ticks;
    const turn = () => (left-- <= 0 ? resolve() : setImmediate(turn));
    turn();
  });

describe('redis key order', () => {
  it('applies every key’s operations in call order, whatever the reply times', async () => {
    const operation = fc.record({
      kind: fc.constantFrom<Kind>('plain', 'write', 'append'),
      key: fc.constantFrom('a', 'b'),
      ticks: fc.integer({ min: 0, max: 3 }),
      // Issue it only after this many earlier operations have returned (0: at once).
      awaitEarlier: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(operation, { maxLength: 40 }), async (operations) => {
        const applied: Record<string, number[]> = { a: [], b: [] };
        let batches = 0;
        const order = createRedisKeyOrder(async (key, chunks) => {
          batches += 1;
          for (const chunk of chunks) applied[key]!.push(chunk[0]!);
          await turns(1);
        });
        const called: Record<string, number[]> = { a: [], b: [] };
        const results: Promise<unknown>[] = [];
        for (const [index, { kind, key, ticks, awaitEarlier }] of operations.entries()) {
          if (awaitEarlier) await Promise.allSettled(results);
          called[key]!.push(index);
          if (kind === 'append') {
            results.push(order.append(key, Buffer.from([index])));
          } else if (kind === 'plain') {
            results.push(
              order.plain(key, async () => {
                applied[key]!.push(index);
                await turns(ticks);
              }),
            );
          } else {
            results.push(
              order.write(key, async () => {
                await turns(ticks);
                applied[key]!.push(index);
              }),
            );
          }
        }
        await Promise.all(results);
        expect(applied).toEqual(called);
        expect(batches).toBeLessThanOrEqual(operations.filter((op) => op.kind === 'append').length);
      }),
      { numRuns: 300 },
    );
  });

  it('copies the bytes of an append that has to wait, and batches the waiting ones', async () => {
    const sent: string[] = [];
    const order = createRedisKeyOrder(async (_key, chunks) => {
      sent.push(Buffer.concat(chunks).toString());
      await turns(1);
    });
    const first = Buffer.from('1');
    const second = Buffer.from('2');
    const third = Buffer.from('3');
    const appends = [order.append('k', first), order.append('k', second), order.append('k', third)];
    second.fill('x');
    third.fill('x');
    await Promise.all(appends);
    expect(sent).toEqual(['1', '23']);
  });

  it('lets a listing wait for the writes under its prefix, and only those', async () => {
    const order = createRedisKeyOrder(async () => undefined);
    expect(order.writesUnder('')).toBeUndefined();
    let finish = () => {};
    const write = order.write('logs/a', () => new Promise<void>((resolve) => (finish = resolve)));
    expect(order.writesUnder('docs/')).toBeUndefined();
    const waiting = order.writesUnder('logs/');
    expect(waiting).toBeDefined();
    let listed = false;
    void waiting?.then(() => (listed = true));
    await turns(2);
    expect(listed).toBe(false);
    finish();
    await write;
    await waiting;
    expect(listed).toBe(true);
    expect(order.writesUnder('logs/')).toBeUndefined();
  });
});
