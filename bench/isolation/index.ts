/**
 * What `isolation: "worker"` costs a bus request: the same module loaded twice, once in-process and once
 * in a worker thread, asked in the same run. `ping` is a request and its reply (one crossing each way);
 * `read` also reads the module's storage from its handler (in a worker, one more round trip to the main
 * thread, where the scoped storage is). Rounds alternate between the subjects so a busy machine's drift
 * falls on both; the table gives the median and p99 over every request. Run alone:
 * `npx node bench/isolation/index.ts`.
 */
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createLocalTransport } from '../../src/bus/local.ts';
import { createBus } from '../../src/core/bus.ts';
import { allowAllPolicy } from '../../src/core/context.ts';
import type { ModuleLogger } from '../../src/core/module.ts';
import { loadModules } from '../../src/core/module-loader.ts';
import { createMemoryStorage } from '../../src/storage/drivers/memory.ts';
import { scopeStorage } from '../../src/storage/scoped.ts';
import { formatTable, quantile } from '../report.ts';
import echo from './echo/index.ts';

export interface IsolationBenchOptions {
  /** Requests per round. */
  batch?: number;
  /** Measured rounds per subject (after one warm-up round each). */
  rounds?: number;
}

export interface IsolationBenchResult {
  /** Microseconds per request by subject ("in-process ping", "worker ping", …). */
  medians: Record<string, number>;
  table: string;
}

const silent: ModuleLogger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

/** Loads the two copies of the module, measures, and disposes them. */
export async function run(options: IsolationBenchOptions = {}): Promise<IsolationBenchResult> {
  const batch = options.batch ?? 2000;
  const rounds = options.rounds ?? 10;
  const bus = createBus({ transport: createLocalTransport() });
  const storage = createMemoryStorage();
  const file = fileURLToPath(new URL('./echo/index.ts', import.meta.url));
  const registry = await loadModules({
    definitions: new Map([
      ['inline', echo],
      ['isolated', echo],
    ]),
    moduleFiles: new Map([['isolated', file]]),
    moduleConfig: (name) => (name === 'isolated' ? { isolation: 'worker' } : {}),
    bus,
    storageFor: (name) => scopeStorage(storage, name),
    log: silent,
    policy: allowAllPolicy,
  });

  const subjects = [
    { name: 'in-process ping', type: 'inline.ping' },
    { name: 'worker ping', type: 'isolated.ping' },
    { name: 'in-process read', type: 'inline.read' },
    { name: 'worker read', type: 'isolated.read' },
  ];
  const samples = new Map<string, number[]>(subjects.map((subject) => [subject.name, []]));
  const payload = { text: 'hello', n: 1 };
  for (let round = -1; round < rounds; round++) {
    for (const subject of round % 2 === 0 ? subjects : [...subjects].reverse()) {
      const times: number[] = [];
      for (let index = 0; index < batch; index++) {
        const started = performance.now();
        await bus.request(subject.type, payload);
        times.push((performance.now() - started) * 1000);
      }
      if (round >= 0) samples.get(subject.name)!.push(...times);
    }
  }
  await registry.dispose();
  await bus.close();

  const medians: Record<string, number> = {};
  const rows = subjects.map((subject) => {
    const sorted = samples.get(subject.name)!.sort((a, b) => a - b);
    medians[subject.name] = quantile(sorted, 0.5);
    return [subject.name, quantile(sorted, 0.5).toFixed(1), quantile(sorted, 0.99).toFixed(1)];
  });
  const table = [
    formatTable(['bus.request to the module', 'median µs', 'p99 µs'], rows),
    '',
    `worker ÷ in-process, median: ping ${(medians['worker ping']! / medians['in-process ping']!).toFixed(1)}×, ` +
      `read ${(medians['worker read']! / medians['in-process read']!).toFixed(1)}× ` +
      `(${rounds} rounds × ${batch} requests each, sequential)`,
  ].join('\n');
  return { medians, table };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log((await run()).table);
}
