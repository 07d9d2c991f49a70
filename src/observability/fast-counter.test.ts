import { Counter, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createFastCounter } from './fast-counter.ts';

describe('createFastCounter', () => {
  it('exposes exactly what prom-client’s own Counter exposes for the same increments', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const fast = createFastCounter(ours, { name: 'c_total', help: 'help', labelNames: ['model', 'kind'] });
    const reference = new Counter({
      name: 'c_total',
      help: 'help',
      labelNames: ['model', 'kind'],
      registers: [theirs],
    });
    const increments: [string, string, number | undefined][] = [
      ['a', 'input', 12],
      ['a', 'output', undefined],
      ['a', 'input', 3],
      ['b', 'output', 1.5],
    ];
    for (const [model, kind, value] of increments) {
      fast.inc([model, kind], value);
      reference.inc({ model, kind }, value);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  it('shows no series before the first increment, as a labelled prom-client Counter', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    createFastCounter(ours, { name: 'c_total', help: 'help', labelNames: ['type'] });
    new Counter({ name: 'c_total', help: 'help', labelNames: ['type'], registers: [theirs] });
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });
});
