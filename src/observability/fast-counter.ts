/**
 * A Prometheus counter whose `inc` is cheap enough for every bus event of every chat turn: its series is
 * found through label-series.ts, and counting is an addition. prom-client owns the registry and the text
 * format: the counter hands it the same values its Counter would at scrape time.
 */

import type { Metric, Registry } from 'prom-client';
import { createLabelSeries, type LabelledSeries } from './label-series.ts';

export interface FastCounterOptions {
  name: string;
  help: string;
  labelNames: readonly string[];
}

interface Series extends LabelledSeries {
  value: number;
}

export interface FastCounter {
  /** Adds `value` (1 by default) to the series of `labelValues` (in `labelNames` order). */
  inc(labelValues: readonly string[], value?: number): void;
}

/** Creates the counter and registers it in `registry`. */
export function createFastCounter(registry: Registry, options: FastCounterOptions): FastCounter {
  const { name, help, labelNames } = options;
  const series = createLabelSeries<Series>(labelNames, (labels) => ({ labels, value: 0 }));
  const metric = {
    name,
    help,
    type: 'counter',
    aggregator: 'sum',
    /** The values prom-client's own Counter gives the registry at scrape time. */
    async get() {
      const values = series.all().map(({ labels, value }) => ({ labels, value }));
      return { name, help, type: 'counter', aggregator: 'sum', values };
    },
    reset() {
      series.clear();
    },
  };
  registry.registerMetric(metric as unknown as Metric);
  return {
    inc(labelValues, value = 1) {
      series.of(labelValues).value += value;
    },
  };
}
