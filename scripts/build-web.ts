/**
 * Builds the web client (web/ → web/dist) with Vite, and reports the JavaScript a first visit loads,
 * gzipped, against the 150 KB budget. `npm run build:web` always builds; `--if-stale` (what `npm install`
 * and `npm start` run) builds only when web/dist is missing or older than the client's sources, and never
 * fails the command that called it: the HTTP API works without the client, so a failed build is reported
 * loudly and the install or start goes on.
 */

import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, gzipSync, constants as zlibConstants } from 'node:zlib';

/** The web client's folder. */
export const WEB_DIR = fileURLToPath(new URL('../web/', import.meta.url));
/** Where the built client goes. */
export const WEB_DIST_DIR = join(WEB_DIR, 'dist');
/** Largest initial JavaScript, gzipped, in bytes (issue: ≤ 150 KB). */
export const INITIAL_JS_BUDGET_BYTES = 150 * 1024;

/** The size of what a first visit loads. */
export interface WebBuildSize {
  /** Every script the page loads at start (entry and preloaded chunks), relative to web/dist. */
  initialScripts: string[];
  /** Their total size, gzipped (level 9, as a server or CDN would send it). */
  initialJsGzipBytes: number;
  initialJsBytes: number;
  /** The stylesheet(s), gzipped. */
  cssGzipBytes: number;
  /** Scripts loaded later, on demand (the code highlighter), gzipped. */
  lazyJsGzipBytes: number;
}

function newestSourceTime(): number {
  let newest = 0;
  const visit = (path: string) => {
    const stat = statSync(path);
    if (stat.isDirectory()) {
      for (const entry of readdirSync(path)) visit(join(path, entry));
    } else {
      newest = Math.max(newest, stat.mtimeMs);
    }
  };
  for (const name of ['src', 'public', 'index.html', 'vite.config.ts']) {
    const path = join(WEB_DIR, name);
    if (existsSync(path)) visit(path);
  }
  return newest;
}

/** Whether web/dist is missing or older than a source of the client. */
export function webBuildIsStale(): boolean {
  const index = join(WEB_DIST_DIR, 'index.html');
  if (!existsSync(index)) return true;
  return statSync(index).mtimeMs < newestSourceTime();
}

/** Measures the built client: initial scripts from index.html, the rest as lazy. */
export function measureWebBuild(distDir = WEB_DIST_DIR): WebBuildSize {
  const html = readFileSync(join(distDir, 'index.html'), 'utf8');
  const referenced = [
    ...html.matchAll(/<script[^>]+src="([^"]+\.js)"/g),
    ...html.matchAll(/<link[^>]+rel="modulepreload"[^>]+href="([^"]+\.js)"/g),
  ].map((match) => (match[1] ?? '').replace(/^\//, ''));
  const gzip = (file: string) => gzipSync(readFileSync(join(distDir, file)), { level: 9 }).length;
  const assets = readdirSync(join(distDir, 'assets'))
    .filter((name) => !/\.(br|gz)$/.test(name))
    .map((name) => `assets/${name}`);
  const initialScripts = [...new Set(referenced)];
  return {
    initialScripts,
    initialJsGzipBytes: initialScripts.reduce((sum, file) => sum + gzip(file), 0),
    initialJsBytes: initialScripts.reduce((sum, file) => sum + statSync(join(distDir, file)).size, 0),
    cssGzipBytes: assets.filter((file) => file.endsWith('.css')).reduce((sum, file) => sum + gzip(file), 0),
    lazyJsGzipBytes: assets
      .filter((file) => file.endsWith('.js') && !initialScripts.includes(file))
      .reduce((sum, file) => sum + gzip(file), 0),
  };
}

/** Formats bytes as KB with one decimal. */
export function kilobytes(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KB`;
}

/**
 * Writes `.br` and `.gz` beside each script and stylesheet, so the server sends them compressed without
 * compressing on every request (@fastify/static `preCompressed`).
 */
function compressAssets(distDir = WEB_DIST_DIR): void {
  const assets = join(distDir, 'assets');
  for (const name of readdirSync(assets)) {
    if (!/\.(js|css|svg)$/.test(name)) continue;
    const bytes = readFileSync(join(assets, name));
    writeFileSync(join(assets, `${name}.gz`), gzipSync(bytes, { level: 9 }));
    writeFileSync(
      join(assets, `${name}.br`),
      brotliCompressSync(bytes, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 11 } }),
    );
  }
}

/** Builds the client with Vite (quietly unless `verbose`). */
export async function buildWebClient(options: { verbose?: boolean } = {}): Promise<WebBuildSize> {
  const { build } = await import('vite');
  // Vite takes the mode of React & co from NODE_ENV when it is set: under Vitest (`test`) that would
  // ship React's development build.
  const nodeEnv = process.env.NODE_ENV;
  process.env.NODE_ENV = 'production';
  try {
    await build({
      root: WEB_DIR,
      configFile: join(WEB_DIR, 'vite.config.ts'),
      mode: 'production',
      logLevel: options.verbose ? 'info' : 'warn',
    });
  } finally {
    if (nodeEnv === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = nodeEnv;
  }
  compressAssets();
  return measureWebBuild();
}

function report(size: WebBuildSize): string {
  const over = size.initialJsGzipBytes > INITIAL_JS_BUDGET_BYTES;
  return [
    `web client built in ${relative(process.cwd(), WEB_DIST_DIR) || WEB_DIST_DIR}:`,
    `  initial JavaScript ${kilobytes(size.initialJsGzipBytes)} gzipped (${kilobytes(size.initialJsBytes)} raw; budget ${kilobytes(INITIAL_JS_BUDGET_BYTES)})${over ? '  OVER BUDGET' : ''}`,
    `  CSS ${kilobytes(size.cssGzipBytes)} gzipped; loaded on demand (code highlighting) ${kilobytes(size.lazyJsGzipBytes)} gzipped`,
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const ifStale = argv.includes('--if-stale');
  if (ifStale && !webBuildIsStale()) return 0;
  if (ifStale) console.log('building the web client (web/dist is missing or older than web/src)…');
  try {
    const size = await buildWebClient({ verbose: !ifStale });
    console.log(report(size));
    return 0;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    console.error(
      [
        '',
        '!! The web client could not be built.',
        `!! ${message.split('\n').join('\n!! ')}`,
        '!! parley still runs and its HTTP API works; the browser client at / will say it is not built.',
        '!! Fix the cause, then run `npm run build:web`.',
        '',
      ].join('\n'),
    );
    // `npm install` and `npm start` go on (see the file comment); `npm run build:web` fails.
    return ifStale ? 0 : 1;
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = await main(process.argv.slice(2));
}
