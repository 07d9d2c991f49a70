/**
 * Search across a user's chats (text_chat's message-search.ts, the BM25 index of src/retrieval): one user
 * with 200 sessions of 50 messages each (10,000 messages, 25–60 words each, words drawn Zipf-like from a
 * vocabulary of 4,000) in flatfile storage, as text_chat lays them out. Measured:
 *
 * - the index's build: the user's first search (a listing, 200 logs read and parsed, 10,000 messages
 *   indexed), 5 times on a fresh node;
 * - a query on the built index (1–3 words), with the snippets of its 20 hits — what text_chat does for a
 *   search besides reading the hits' session titles: p50 / p99 of 300 queries;
 * - the same with the index resynced with storage before every query (`resync_ms: 0`: a listing and 200
 *   reads of nothing new) — what a search costs at most every `resync_ms`;
 * - the heap the index holds, per message (what `MESSAGE_OVERHEAD_BYTES` estimates);
 * - beside them, in the same run, the search a user would otherwise get: every log read and scanned for the
 *   words (substring, unranked), and the same scan over messages already parsed in memory.
 *
 * `npm run bench -- chat-search`.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { newId } from '../../src/core/ids.ts';
import type { Message } from '../../src/core/types.ts';
import { createMessageSearch } from '../../src/modules/text_chat/message-search.ts';
import { queryTerms, snippetOf } from '../../src/modules/text_chat/message-snippet.ts';
import { createFlatfileStorage } from '../../src/storage/drivers/flatfile.ts';
import { parseJsonLines } from '../../src/storage/json-lines.ts';
import { formatTable, quantile } from '../report.ts';

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

const SESSIONS = 200;
const MESSAGES_PER_SESSION = 50;
const VOCABULARY = 4000;
const QUERIES = 300;
const BUILDS = 5;
const HITS = 20;
const USER = 'bench-user';

// A fixed sequence, so every run searches the same text.
let seed = 42;
function random(): number {
  seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
  return seed / 2 ** 31;
}

const SYLLABLES = [
  'ka',
  'lo',
  'mi',
  'ne',
  'ru',
  'sa',
  'ti',
  'vo',
  'pe',
  'da',
  'gu',
  'ri',
  'bo',
  'fe',
  'zu',
  'an',
];
const words = Array.from({ length: VOCABULARY }, (_, rank) => {
  let word = '';
  for (let value = rank + SYLLABLES.length; value > 0; value = Math.floor(value / SYLLABLES.length)) {
    word += SYLLABLES[value % SYLLABLES.length];
  }
  return word;
});
// Zipf: the word of rank r is drawn with weight 1/r.
const cumulative: number[] = [];
let total = 0;
for (let rank = 1; rank <= VOCABULARY; rank++) {
  total += 1 / rank;
  cumulative.push(total);
}
function word(): string {
  const target = random() * total;
  let low = 0;
  let high = cumulative.length - 1;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (cumulative[middle]! < target) low = middle + 1;
    else high = middle;
  }
  return words[low]!;
}
function sentence(length: number): string {
  return Array.from({ length }, word).join(' ');
}

/** Writes the user's sessions as text_chat does: `{user}/{session}/metadata.json` and `messages.jsonl`. */
async function writeChats(storage: ReturnType<typeof createFlatfileStorage>): Promise<Message[]> {
  const all: Message[] = [];
  for (let session = 0; session < SESSIONS; session++) {
    const sessionId = newId();
    const messages: Message[] = Array.from({ length: MESSAGES_PER_SESSION }, (_, index) => ({
      id: newId(),
      role: index % 2 === 0 ? 'user' : 'assistant',
      content: sentence(25 + Math.floor(random() * 36)),
      timestamp: new Date(Date.UTC(2026, 0, 1, 0, session, index)).toISOString(),
      metadata: { sessionId },
    }));
    all.push(...messages);
    const session_ = {
      id: sessionId,
      userId: USER,
      createdAt: messages[0]!.timestamp,
      metadata: { title: `chat ${session}` },
    };
    await storage.write(
      `${USER}/${sessionId}/metadata.json`,
      new TextEncoder().encode(JSON.stringify(session_)),
    );
    const lines = messages.map((message) => `${JSON.stringify(message)}\n`).join('');
    await storage.write(`${USER}/${sessionId}/messages.jsonl`, new TextEncoder().encode(lines));
  }
  return all;
}

// Queries of one to three words, from the middle of the vocabulary (the very commonest match everything).
const queries = Array.from({ length: QUERIES }, () =>
  Array.from({ length: 1 + Math.floor(random() * 3) }, () => words[20 + Math.floor(random() * 1500)]).join(
    ' ',
  ),
);

function summary(times: number[]): { p50: number; p99: number } {
  const sorted = [...times].sort((a, b) => a - b);
  return { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99) };
}

const ms = (value: number) => `${value.toFixed(2)} ms`;

const folder = await mkdtemp(join(tmpdir(), 'parley-bench-search-'));
try {
  const storage = createFlatfileStorage({ root: folder });
  const written = await writeChats(storage);
  console.log(
    `one user, ${SESSIONS} sessions × ${MESSAGES_PER_SESSION} messages = ${written.length} messages, ` +
      `${(written.reduce((sum, message) => sum + message.content.length, 0) / 1e6).toFixed(1)} M characters`,
  );

  // The build: the first search on a fresh node.
  const builds: number[] = [];
  for (let round = 0; round < BUILDS; round++) {
    const fresh = createMessageSearch({ maxBytes: 1 << 30, resyncMs: 60_000 });
    const started = performance.now();
    await fresh.search(storage, USER, queries[0]!, HITS);
    builds.push(performance.now() - started);
  }

  // Heap held by one user's index.
  collectGarbage();
  const heapBefore = process.memoryUsage().heapUsed;
  const search = createMessageSearch({ maxBytes: 1 << 30, resyncMs: 60_000 });
  await search.search(storage, USER, queries[0]!, HITS);
  collectGarbage();
  const heapPerMessage = (process.memoryUsage().heapUsed - heapBefore) / written.length;
  const estimated = search.size().bytes / written.length;

  async function timeQueries(run: (query: string) => Promise<unknown>): Promise<number[]> {
    for (const query of queries.slice(0, 20)) await run(query); // warm-up
    const times: number[] = [];
    for (const query of queries) {
      const started = performance.now();
      await run(query);
      times.push(performance.now() - started);
    }
    return times;
  }

  let hitsFound = 0;
  const warm = await timeQueries(async (query) => {
    const ranked = await search.search(storage, USER, query, HITS);
    const terms = queryTerms(search.tokenize, query);
    for (const hit of ranked) snippetOf(hit.content, terms, search.tokenize, 200);
    hitsFound += ranked.length;
  });

  const resyncing = createMessageSearch({ maxBytes: 1 << 30, resyncMs: 0 });
  await resyncing.search(storage, USER, queries[0]!, HITS);
  const resynced = await timeQueries((query) => resyncing.search(storage, USER, query, HITS));

  // Baselines: no index — every log read and scanned for the words, or the scan alone over parsed messages.
  const sessionKeys = (await storage.list(`${USER}/`)).filter((key) => key.endsWith('/messages.jsonl'));
  const scanFiles = await timeQueries(async (query) => {
    const needles = query.split(' ');
    const found: Message[] = [];
    for (const key of sessionKeys) {
      const bytes = await storage.read(key);
      if (bytes === undefined) continue;
      for (const message of parseJsonLines<Message>(bytes, key)) {
        const text = message.content.toLowerCase();
        if (needles.some((needle) => text.includes(needle))) found.push(message);
      }
    }
    return found.length;
  });
  const parsed = written.map((message) => message.content.toLowerCase());
  const scanMemory = await timeQueries(async (query) => {
    const needles = query.split(' ');
    return parsed.filter((text) => needles.some((needle) => text.includes(needle))).length;
  });

  const build = summary(builds);
  const rows = [
    ['index build (first search on a node)', `${ms(build.p50)} (median of ${BUILDS})`, '', ''],
    [
      'query + 20 snippets, index built',
      ms(summary(warm).p50),
      ms(summary(warm).p99),
      `${(hitsFound / QUERIES).toFixed(1)} hits a query`,
    ],
    [
      'query, index resynced first (resync_ms 0)',
      ms(summary(resynced).p50),
      ms(summary(resynced).p99),
      'a listing + 200 reads of nothing new',
    ],
    [
      'baseline: read every log and scan it (no index, unranked)',
      ms(summary(scanFiles).p50),
      ms(summary(scanFiles).p99),
      '',
    ],
    [
      'baseline: scan parsed messages in memory (unranked)',
      ms(summary(scanMemory).p50),
      ms(summary(scanMemory).p99),
      '',
    ],
    [
      'heap per message indexed',
      `${Math.round(heapPerMessage)} B`,
      '',
      `estimate used for max_bytes: ${Math.round(estimated)} B`,
    ],
  ];
  console.log(formatTable(['what', 'p50', 'p99', 'note'], rows));
} finally {
  await rm(folder, { recursive: true, force: true });
}
