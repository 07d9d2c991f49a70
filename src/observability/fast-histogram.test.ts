import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createFastHistogram } from './fast-histogram.ts';

describe('createFastHistogram', () => {
  it('exposes exactly what prom-client’s own Histogram exposes for the same observations', async () => {
    const buckets = [0.001, 0.01, 0.1, 1];
    const ours = new Registry();
    const theirs = new Registry();
    const fast = createFastHistogram(ours, {
      name: 'h',
      help: 'help',
      labelNames: ['type', 'module'],
      buckets,
    });
    const reference = new Histogram({
      name: 'h',
      help: 'help',
      labelNames: ['type', 'module'],
      buckets,
      registers: [theirs],
    });
    const observations: [string, string, number][] = [
      ['a', 'm', 0.0005],
      ['a', 'm', 0.001], // on a bound: that bucket (le is "less or equal")
      ['a', 'm', 0.5],
      ['a', 'n', 3], // above every bound: only +Inf
      ['b', 'm', 0.01],
    ];
    for (const [type, module, value] of observations) {
      fast.observe([type, module], value);
      reference.observe({ type, module }, value);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });
});
