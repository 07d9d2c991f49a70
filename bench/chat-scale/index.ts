/**
 * Does a chat turn cost the same however long and however many the chats are? In-process turns
 * (`message.send` on the bus, the real text_chat, the zero-latency mock model of bench/chat), the figure of
 * each stage beside the first stage's, measured in the same run:
 *
 * 1. Many sessions of long messages on flatfile: 1,000 sessions, 1 KB user messages, 16 turns at once, in
 *    stages of 25 turns a session. Turns/s of each stage ÷ the first stage's (goal: about 1 — no cliff
 *    when the sessions outgrow a cache), and the heap and the memory of byte arrays after each stage
 *    (bounded by `history_cache.max_bytes` and `storage.cache.max_bytes`, not by the chats' length).
 * 2. One long chat on redis (several nodes share it; no node-local read cache): sequential turns in stages
 *    of 500, time per turn of each stage ÷ the first stage's (goal: about 1 — a turn reads the log's new
 *    bytes, not the whole log). Skipped with a message when no Redis answers at CHAT_STORAGE__REDIS__URL
 *    (default redis://127.0.0.1:6379).
 *
 * 3. Paging back through one chat of 10,000 messages (`messages.list`, 50 a page): ms a page (p50) beside
 *    the slowest page, the first one older than the cache holds, which reads the whole log (the pages
 *    after it should find it parsed).
 * 4. `session.list` of one user's 3,000 sessions on flatfile, beside reading their 3,000 metadata files
 *    with plain `fs` (a listing of the folders, then every file at once): the floor for that answer.
 *
 * Run alone: `npx node bench/chat-scale/index.ts`; with the others: `npm run bench -- chat-scale`.
 */

import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Redis } from 'ioredis';
import { newId } from '../../src/core/ids.ts';
import { createPlatform, type Platform } from '../../src/platform/create-platform.ts';
import { redisAnswers } from '../../test/helpers/redis-server.ts';
import { createMockRegistry } from '../chat/mock-model.ts';
import { formatTable } from '../report.ts';

const MIB = 1024 * 1024;

// A full collection before each memory reading, so it shows what is held, not garbage not yet collected.
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

async function startPlatform(env: Record<string, string>): Promise<Platform> {
  return createPlatform({
    llm: (observer) => createMockRegistry(undefined, observer),
    env: {
      NODE_ENV: 'production',
      CHAT_LOGGING__LEVEL: 'warn',
      // The benchmark sends far more than a person would: no per-user message limit.
      CHAT_TEXT_CHAT__RATE_LIMITING__ENABLED: 'false',
      ...env,
    },
  });
}

async function startSessions(platform: Platform, userId: string, count: number): Promise<string[]> {
  const sessions: string[] = [];
  for (let index = 0; index < count; index++) {
    const session = await platform.bus.request<{ id: string }>('session.start', { userId }, { userId });
    sessions.push(session.id);
  }
  return sessions;
}

function turn(platform: Platform, userId: string, sessionId: string, content: string): Promise<unknown> {
  return platform.bus.request(
    'message.send',
    { userId, sessionId, content, stream: false },
    { correlationId: newId(), userId, sessionId, timeout: 60_000 },
  );
}

/** Stage by stage: turns/s over 1,000 sessions of 1 KB messages, and memory after each stage. */
async function manySessions(): Promise<string> {
  const sessionsCount = 1000;
  const turnsPerStage = 25;
  const stages = 4;
  const concurrency = 16;
  const dataDir = await mkdtemp(join(tmpdir(), 'parley-bench-chat-scale-'));
  const platform = await startPlatform({ CHAT_DATA_DIR: dataDir });
  const rows: string[][] = [];
  try {
    const userId = `bench-${newId()}`;
    const sessions = await startSessions(platform, userId, sessionsCount);
    const content = 'Tell me more about that. '.repeat(40); // 1,000 characters
    let next = 0;
    let first = 0;
    for (let stage = 1; stage <= stages; stage++) {
      let left = sessionsCount * turnsPerStage;
      const started = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (left-- > 0) await turn(platform, userId, sessions[next++ % sessionsCount]!, content);
        }),
      );
      const perSecond = (sessionsCount * turnsPerStage) / ((performance.now() - started) / 1000);
      if (stage === 1) first = perSecond;
      collectGarbage();
      const memory = process.memoryUsage();
      rows.push([
        `${stage * turnsPerStage} turns (${stage * turnsPerStage * 2} messages) a session`,
        perSecond.toFixed(0),
        `${(perSecond / first).toFixed(2)}×`,
        (memory.heapUsed / MIB).toFixed(0),
        (memory.arrayBuffers / MIB).toFixed(0),
      ]);
    }
  } finally {
    await platform.close();
    await rm(dataDir, { recursive: true, force: true });
  }
  return [
    `${sessionsCount} sessions on flatfile, 1 KB user messages, ${concurrency} turns at once, in stages of ${turnsPerStage} turns a session`,
    formatTable(['by the end of the stage', 'turns/s', '× stage 1', 'heap MB', 'byte arrays MB'], rows),
    'goal: turns/s about 1× stage 1 (no cliff as the sessions outgrow the caches), memory bounded',
  ].join('\n');
}

/** Stage by stage: ms per sequential turn of one chat on redis. */
async function longChatOnRedis(): Promise<string> {
  const url = process.env.CHAT_STORAGE__REDIS__URL ?? 'redis://127.0.0.1:6379';
  if (!(await redisAnswers(url))) return `one long chat on redis: skipped, no Redis answers at ${url}`;
  const prefix = `parley-bench-chat-scale-${newId()}:`;
  const platform = await startPlatform({
    CHAT_STORAGE__BACKEND: 'redis',
    CHAT_STORAGE__REDIS__URL: url,
    CHAT_STORAGE__REDIS__PREFIX: prefix,
  });
  const rows: string[][] = [];
  try {
    const userId = `bench-${newId()}`;
    const [sessionId] = await startSessions(platform, userId, 1);
    const content = 'Hello, parley! How are you today? '.repeat(4);
    const perStage = 500;
    let first = 0;
    for (let stage = 1; stage <= 8; stage++) {
      const started = performance.now();
      for (let index = 0; index < perStage; index++) await turn(platform, userId, sessionId!, content);
      const msPerTurn = (performance.now() - started) / perStage;
      if (stage === 1) first = msPerTurn;
      rows.push([
        `turns ${(stage - 1) * perStage + 1}–${stage * perStage}`,
        msPerTurn.toFixed(2),
        `${(msPerTurn / first).toFixed(2)}×`,
      ]);
    }
  } finally {
    await platform.close();
    // The benchmark's own keys only.
    const cleaner = new Redis(url);
    const keys = await cleaner.keys(`${prefix}*`);
    if (keys.length > 0) await cleaner.del(...keys);
    await cleaner.quit();
  }
  return [
    'one chat on redis (no node-local read cache), sequential turns, 140-character user messages',
    formatTable(['turns', 'ms a turn', '× stage 1'], rows),
    'goal: ms a turn about 1× stage 1 (a turn reads the log’s new bytes, not the whole log)',
  ].join('\n');
}

/** Paging back through a chat of 10,000 messages: the first page (a whole read) and the rest. */
async function pagingBack(): Promise<string> {
  const dataDir = await mkdtemp(join(tmpdir(), 'parley-bench-chat-scale-'));
  const platform = await startPlatform({ CHAT_DATA_DIR: dataDir });
  try {
    const userId = `bench-${newId()}`;
    const [sessionId] = await startSessions(platform, userId, 1);
    const content = 'Hello, parley! How are you today? '.repeat(4);
    for (let index = 0; index < 5000; index++) await turn(platform, userId, sessionId!, content);
    const times: number[] = [];
    let before: string | undefined;
    do {
      const started = performance.now();
      const page = await platform.bus.request<{ nextCursor?: string }>(
        'messages.list',
        { userId, sessionId, limit: 50, ...(before === undefined ? {} : { before }) },
        { userId },
      );
      times.push(performance.now() - started);
      before = page.nextCursor;
    } while (before !== undefined);
    const sorted = [...times].sort((a, b) => a - b);
    return [
      `paging back through one chat of 10,000 messages, 50 a page (${times.length} pages)`,
      formatTable(
        ['page', 'ms'],
        [
          [
            'the slowest (the first older than the cache holds: it reads the whole log)',
            sorted.at(-1)!.toFixed(2),
          ],
          ['every page, p50', sorted[Math.floor(sorted.length / 2)]!.toFixed(2)],
          ['all pages', times.reduce((sum, time) => sum + time, 0).toFixed(0)],
        ],
      ),
      'goal: one page reads the whole log, the others cost a page (not a parse of the whole log each)',
    ].join('\n');
  } finally {
    await platform.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** session.list of 3,000 sessions on flatfile, beside reading their metadata files with plain fs. */
async function listingSessions(): Promise<string> {
  const count = 3000;
  const dataDir = await mkdtemp(join(tmpdir(), 'parley-bench-chat-scale-'));
  const platform = await startPlatform({ CHAT_DATA_DIR: dataDir });
  try {
    const userId = `bench-${newId()}`;
    await Promise.all(
      Array.from({ length: 16 }, async (_, worker) => {
        for (let index = worker; index < count; index += 16) {
          await platform.bus.request('session.start', { userId }, { userId });
        }
      }),
    );
    const median = async (work: () => Promise<unknown>) => {
      const times: number[] = [];
      for (let round = 0; round < 7; round++) {
        const started = performance.now();
        await work();
        times.push(performance.now() - started);
      }
      return times.sort((a, b) => a - b)[3]!;
    };
    const parley = await median(() => platform.bus.request('session.list', { userId }, { userId }));
    const folder = join(dataDir, 'sessions', encodeURIComponent(userId));
    const raw = await median(async () => {
      const sessions = await readdir(folder);
      return Promise.all(sessions.map((id) => readFile(join(folder, id, 'metadata.json'), 'utf8')));
    });
    return [
      `session.list of one user's ${count} sessions on flatfile, medians of 7`,
      formatTable(
        ['subject', 'ms', '× plain fs'],
        [
          ['parley session.list', parley.toFixed(1), `${(parley / raw).toFixed(2)}×`],
          ['plain fs: the folders, then every metadata.json at once', raw.toFixed(1), '1.00×'],
        ],
      ),
    ].join('\n');
  } finally {
    await platform.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  console.log(await manySessions());
  console.log('');
  console.log(await longChatOnRedis());
  console.log('');
  console.log(await pagingBack());
  console.log('');
  console.log(await listingSessions());
}
