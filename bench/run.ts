/**
 * Runs benchmarks: `npm run bench` runs every `bench/<name>/index.ts`, `npm run bench -- bus rag-eval` the
 * named ones. Each runs in a child process of its own (a fresh JIT and heap, so one benchmark's garbage
 * and optimisation state do not bend the next one's figures) and prints its own table.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const benchDirectory = import.meta.dirname;

function available(): string[] {
  return readdirSync(benchDirectory, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(benchDirectory, entry.name, 'index.ts')))
    .map((entry) => entry.name)
    .sort();
}

function runOne(name: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(benchDirectory, name, 'index.ts')], { stdio: 'inherit' });
    child.on('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128)));
    child.on('error', () => resolve(1));
  });
}

const names = available();
const requested = process.argv.slice(2).filter((argument) => !argument.startsWith('-'));
const unknown = requested.filter((name) => !names.includes(name));
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; available: ${names.join(', ')}`);
  process.exit(2);
}

let failed = 0;
for (const name of requested.length > 0 ? requested : names) {
  console.log(`\n=== bench/${name} ===`);
  const started = performance.now();
  const code = await runOne(name);
  console.log(`(bench/${name}: ${((performance.now() - started) / 1000).toFixed(1)} s, exit ${code})`);
  if (code !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
