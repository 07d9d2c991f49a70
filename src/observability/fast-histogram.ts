/**
 * A Prometheus histogram whose `observe` is cheap enough for every bus handler and every request: the
 * series of a label combination is found in nested Maps (no label object built, validated and hashed per
 * call, as prom-client's own Histogram does — about 0.4 µs a call, which summed to ~15 % of an in-process
 * chat turn's throughput at 50 concurrent in bench/peers), and the observation is a bucket count, a sum and
 * a count. prom-client still owns the registry and the text format: the histogram hands it the same values
 * its Histogram would (`_bucket` with `le`, `_sum`, `_count`) at scrape time.
 */

import type { Metric, Registry } from 'prom-client';

export interface FastHistogramOptions {
  name: string;
  help: string;
  labelNames: readonly string[];
  /** Upper bounds, ascending (seconds). */
  buckets: readonly number[];
}

/** What one label combination has seen. */
interface Series {
  labels: Record<string, string>;
  /** Observations per bucket (not cumulative); the last slot is above every bound. */
  counts: Float64Array;
  sum: number;
  count: number;
}

export interface FastHistogram {
  /** Records `value` in the series of `labelValues` (in `labelNames` order). */
  observe(labelValues: readonly string[], value: number): void;
}

/** Creates the histogram and registers it in `registry`. */
export function createFastHistogram(registry: Registry, options: FastHistogramOptions): FastHistogram {
  const { name, help, labelNames, buckets } = options;
  // Label values, level by level, down to the series.
  const root = new Map<string, unknown>();
  const all: Series[] = [];

  function seriesOf(labelValues: readonly string[]): Series {
    let level = root;
    for (let index = 0; index < labelValues.length - 1; index++) {
      const value = labelValues[index] as string;
      let next = level.get(value) as Map<string, unknown> | undefined;
      if (next === undefined) {
        next = new Map();
        level.set(value, next);
      }
      level = next;
    }
    const last = labelValues[labelValues.length - 1] as string;
    let series = level.get(last) as Series | undefined;
    if (series === undefined) {
      const labels = Object.fromEntries(
        labelNames.map((label, index) => [label, labelValues[index] as string]),
      );
      series = { labels, counts: new Float64Array(buckets.length + 1), sum: 0, count: 0 };
      level.set(last, series);
      all.push(series);
    }
    return series;
  }

  const metric = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    /** The values prom-client's own Histogram gives the registry at scrape time. */
    async get() {
      const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
      for (const series of all) {
        let cumulative = 0;
        buckets.forEach((bound, index) => {
          cumulative += series.counts[index] as number;
          values.push({
            labels: { le: bound, ...series.labels },
            value: cumulative,
            metricName: `${name}_bucket`,
          });
        });
        values.push({
          labels: { le: '+Inf', ...series.labels },
          value: series.count,
          metricName: `${name}_bucket`,
        });
        values.push({ labels: series.labels, value: series.sum, metricName: `${name}_sum` });
        values.push({ labels: series.labels, value: series.count, metricName: `${name}_count` });
      }
      return { name, help, type: 'histogram', aggregator: 'sum', values };
    },
    reset() {
      root.clear();
      all.length = 0;
    },
  };
  registry.registerMetric(metric as unknown as Metric);

  return {
    observe(labelValues, value) {
      const series = seriesOf(labelValues);
      let bucket = 0;
      while (bucket < buckets.length && value > (buckets[bucket] as number)) bucket++;
      series.counts[bucket] = (series.counts[bucket] as number) + 1;
      series.sum += value;
      series.count += 1;
    },
  };
}
