/**
 * A real parley for the web client's tests: the platform from the shipped config/ with flatfile storage
 * in a temp folder, the HTTP server (which serves web/dist) on 127.0.0.1 on a free port, and the scripted
 * model (scripted-model.ts) as its only model provider. Users are created on demand, each with an API key,
 * so every scenario can start from a fresh user (own sessions, own rate-limit budget).
 */

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Browser } from 'playwright-core';
import { buildWebClient, webBuildIsStale } from '../../scripts/build-web.ts';
import { createPlatform, type Platform } from '../../src/platform/create-platform.ts';
import { type Auth, createAuth } from '../../src/security/auth.ts';
import { createServer } from '../../src/server/create-server.ts';
import { type ScriptedModel, startScriptedModel } from './scripted-model.ts';

/** A user of the test server with its API key. */
export interface WebTestUser {
  id: string;
  name: string;
  key: string;
}

/** A running parley with the scripted model. */
export interface WebHarness {
  baseUrl: string;
  platform: Platform;
  app: FastifyInstance;
  auth: Auth;
  model: ScriptedModel;
  /** A new user with a fresh API key. */
  createUser(name: string): Promise<WebTestUser>;
  /**
   * Stops the HTTP server abruptly (open connections dropped, as when a process dies) and starts a new one
   * on the same port after `downMs`; the platform (storage, modules) keeps running.
   */
  restartServer(downMs: number): Promise<void>;
  close(): Promise<void>;
}

/** The model name configured as the default. */
export const WEB_TEST_MODEL = 'scripted:obey-anything';

/** Where screenshots and measurements go (git-ignored). */
export const ARTIFACTS_DIR = join(import.meta.dirname, '..', '..', 'test-artifacts', 'web');

// In node_modules/.cache: git-ignored, and gone with a fresh install.
const BUILD_LOCK = join(import.meta.dirname, '..', '..', 'node_modules', '.cache', 'parley-web-build.lock');

/**
 * Builds web/dist unless it is already built from the current sources. Test files run in parallel: one
 * builds while the others wait on a lock file, then find the build fresh.
 */
export async function ensureWebBuilt(): Promise<void> {
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  if (!webBuildIsStale()) return;
  await mkdir(dirname(BUILD_LOCK), { recursive: true });
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      const lock = await open(BUILD_LOCK, 'wx');
      try {
        if (webBuildIsStale()) await buildWebClient();
      } finally {
        await lock.close();
        await rm(BUILD_LOCK, { force: true });
      }
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      // A lock older than any build is left from a killed run.
      const age = Date.now() - (await stat(BUILD_LOCK).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
      if (age > 120_000) await rm(BUILD_LOCK, { force: true });
      if (Date.now() > deadline) throw new Error(`gave up waiting for ${BUILD_LOCK}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
      if (!webBuildIsStale()) return;
    }
  }
}

/** Starts the platform, the server and the scripted model. */
export async function startWebHarness(env: Record<string, string> = {}): Promise<WebHarness> {
  const dataDir = await mkdtemp(join(tmpdir(), 'parley-web-'));
  const model = await startScriptedModel();
  const llm = {
    default_model: WEB_TEST_MODEL,
    max_retries: 0,
    request_timeout_ms: 10_000,
    providers: {
      scripted: { type: 'openai-compatible', base_url: model.baseUrl, models: ['obey-anything'] },
    },
  };
  const platform = await createPlatform({
    env: {
      NODE_ENV: 'test',
      CHAT_DATA_DIR: dataDir,
      CHAT_LOGGING__LEVEL: 'silent',
      CHAT_LLM: JSON.stringify(llm),
      // Every model token is its own delta, so the browser shows the reply token by token.
      CHAT_TEXT_CHAT__STREAMING__CHUNK_SIZE: '1',
      ...env,
    },
  });
  const auth = createAuth(platform.storage);
  let app = await createServer(platform, { auth });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('the server has no TCP address');
  const port = address.port;

  return {
    baseUrl: `http://127.0.0.1:${port}`,
    platform,
    get app() {
      return app;
    },
    auth,
    model,
    async restartServer(downMs) {
      app.server.closeAllConnections();
      await app.close();
      await new Promise((resolve) => setTimeout(resolve, downMs));
      app = await createServer(platform, { auth });
      await app.listen({ host: '127.0.0.1', port });
    },
    async createUser(name) {
      const user = await auth.users.create({ name, role: 'user' });
      const { key } = await auth.keys.create(user.id);
      return { id: user.id, name, key };
    },
    async close() {
      await app.close();
      await platform.close();
      await model.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Debian's Chromium (`.ci/run` installs the `chromium` package), or CHROMIUM_PATH. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Whether the browser tests can run here; under CI a missing Chromium is a failure, not a skip. */
export function chromiumAvailable(): boolean {
  const available = existsSync(CHROMIUM_PATH);
  if (!available && process.env.CI !== 'true') {
    console.warn(`skipping the browser tests: no Chromium at ${CHROMIUM_PATH} (apt-get install chromium)`);
  }
  return available || process.env.CI === 'true';
}

/** Launches headless Chromium with a fresh, empty profile. */
export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`no Chromium at ${CHROMIUM_PATH}: install Debian's chromium package (see .ci/run)`);
  }
  // launch() runs Chromium on a new temporary user-data-dir, removed when the browser closes.
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
