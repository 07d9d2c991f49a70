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
 * Run alone: `npx node bench/chat-scale/index.ts`; with the others: `npm run bench -- chat-scale`.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Redis } from 'ioredis';
import { newId } from '../../src/core/ids.ts';
import { createPlatform, type Platform } from '../../src/platform/create-platform.ts';
import { createMockRegistry } from '../chat/mock-model.ts';
import { formatTable } from '../report.ts';

const MIB = 1024 * 1024;

// A full collection before each memory reading, so it shows what is held, not garbage not yet collected.
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

async function startPlatform(env: Record<string, string>): Promise<Platform> {
  return createPlatform({
    llm: createMockRegistry(),
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
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2000 });
  const reachable = await probe.connect().then(
    () => probe.ping().then(() => true),
    () => false,
  );
  probe.disconnect();
  if (!reachable) return `one long chat on redis: skipped, no Redis answers at ${url}`;
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

if (import.meta.main) {
  console.log(await manySessions());
  console.log('');
  console.log(await longChatOnRedis());
}
