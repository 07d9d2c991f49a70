/**
 * The two servers bench/chat compares, each run in a child process of its own (`node subjects.ts parley`
 * or `… bare`) so the load generator in the parent does not share their event loop:
 *
 * - `parley`: the whole platform — config, flatfile storage (fsynced appends), the in-process bus, every
 *   module, the real text_chat, bearer-key auth — behind the real HTTP server, with an AI SDK mock model.
 * - `parley-http`: the same server and platform with text_chat replaced by an instant stand-in (no
 *   storage, no AI SDK): what the HTTP layer itself costs. A diagnostic row, not a competitor.
 * - `bare`: one Fastify route that validates the same body with the same schema and does one fsynced
 *   append of the message to a flatfile JSONL log (the same storage driver, its append journal off: each
 *   append is one `O_DSYNC` write of its own file), then answers — the floor any chat server that stores
 *   a message before acknowledging it, one fsync a request, sits on. parley's flatfile driver is as
 *   configured by default (the append journal on: many turns' appends share a flush, ADR 0008).
 *
 * - `one-handler`: a diagnostic row, not a competitor: the work of a chat turn written inline in one Fastify
 *   route — bearer check, the same validation, a history window kept in memory and cut to the same token
 *   budget with the same tokenizer, the same AI SDK mock model's stream, one fsynced append of the user
 *   message and the reply (as the bare route's: its own fsync) — without the platform (no bus, modules, events, knowledge, personas, storage
 *   layers, cancellation or multi-node guards). What a chat turn costs here before any platform.
 *
 * parley and bare have a streaming variant for the time-to-first-byte measure. The model waits a delay the parent
 * sets before its first token (0: the zero-latency mock); each call's real wait is recorded so the parent
 * can subtract it. The child reports `{ port, key, sessions }` over IPC once listening and answers
 * `{ type: 'model-waits' }` with the recorded waits and `{ type: 'cpu' }` with the CPU it has used (and the
 * milliseconds its event loop stood still for the garbage collector).
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import type { LanguageModelV3Prompt } from '@ai-sdk/provider';
import Fastify, { type FastifyInstance } from 'fastify';
import { NotFoundError } from '../../src/core/errors.ts';
import type { EventEnvelope } from '../../src/core/events.ts';
import { newId } from '../../src/core/ids.ts';
import { defineModule } from '../../src/core/module.ts';
import { TOKENS_PER_MESSAGE, TOKENS_PER_REPLY } from '../../src/modules/text_chat/history.ts';
import { createPlatform } from '../../src/platform/create-platform.ts';
import { createAuth } from '../../src/security/auth.ts';
import { createServer } from '../../src/server/create-server.ts';
import { createFlatfileStorage } from '../../src/storage/drivers/flatfile.ts';
import { shellConfigOverrides } from '../config-overrides.ts';
import { createMockModel, createMockRegistry, REPLY_TOKENS } from './mock-model.ts';

/** What a subject tells the parent once it listens. */
export interface SubjectReady {
  type: 'ready';
  port: number;
  /** The bearer key (parley only). */
  key?: string;
  /** Session ids to spread the turns over. */
  sessions: string[];
}

const SESSIONS = 100;

/** A subject's server, started on a free loopback port: what it tells the parent, and how it stops. */
type Started = SubjectReady & { close(): Promise<void> };

/** Listens on a free loopback port and says so as `ready`, with `close` stopping the server, then `after`. */
async function listening(
  app: FastifyInstance,
  ready: Omit<SubjectReady, 'type' | 'port'>,
  after: () => Promise<void>,
): Promise<Started> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return {
    type: 'ready',
    port: address.port,
    ...ready,
    async close() {
      await app.close();
      await after();
    },
  };
}

/** A message as the one-handler and bare subjects store it. */
function messageRecord(role: string, content: string, sessionId: string) {
  return { id: newId(), content, role, timestamp: new Date().toISOString(), metadata: { sessionId } };
}

const modelWaits: number[] = [];
/** How long the model waits before its first token; the parent sets it (`{ type: 'model-delay', ms }`). */
let modelDelayMs = 0;

/** A model that answers at once (or after the delay the parent set), recording how long it waited. */
function createBenchModel() {
  return createMockModel({ delay: () => modelDelayMs, onWait: (ms) => void modelWaits.push(ms) });
}

async function startParley(dataDir: string, instant: boolean): Promise<Started> {
  const platform = await createPlatform({
    ...(instant ? { definitions: new Map([['text_chat', instantTextChat as never]]) } : {}),
    llm: (observer) => createMockRegistry(createBenchModel(), observer),
    env: {
      NODE_ENV: 'production',
      CHAT_DATA_DIR: dataDir,
      CHAT_LOGGING__LEVEL: 'warn',
      // The benchmark sends far more than a person would: no per-user message limit, and room for what one
      // user stores at thousands of turns a second (the quota still counts every append).
      CHAT_TEXT_CHAT__RATE_LIMITING__ENABLED: 'false',
      CHAT_RESOURCE_LIMITS__MAX_STORAGE_PER_USER: '2GB',
      // Streaming as configured by default: the first text of a reply leaves at once, then chunk_size.
      ...shellConfigOverrides(),
    },
  });
  const auth = createAuth(platform.storage);
  const user = await auth.users.create({ name: 'bench', role: 'user' });
  const { key } = await auth.keys.create(user.id);
  const app = await createServer(platform, { auth });
  const sessions: string[] = [];
  for (let index = 0; index < SESSIONS; index++) {
    const response = await app.inject({
      method: 'POST',
      url: '/v1/sessions',
      headers: { authorization: `Bearer ${key}` },
      payload: {},
    });
    sessions.push((response.json() as { id: string }).id);
  }
  return listening(app, { key, sessions }, () => platform.close());
}

/**
 * A stand-in for text_chat that answers `message.send` at once — no storage, no AI SDK — streaming the
 * reply tokens as `chat.response.delta` events after the model delay. With it, the `parley-http` subject
 * measures what the HTTP layer alone (Fastify, auth, the bus round trip, SSE) costs per turn.
 */
const instantTextChat = defineModule({
  info: { name: 'text_chat', version: '0.0.0', capabilities: ['write_messages'], dependencies: [] },
  configSchema: { type: 'object' },
  setup(ctx) {
    const sessions = new Map<string, string>();
    return {
      handlers: {
        'session.start': (event: EventEnvelope<{ userId: string }>) => {
          const session = {
            id: newId(),
            userId: event.data.userId,
            createdAt: new Date().toISOString(),
            metadata: { title: '' },
          };
          sessions.set(session.id, session.userId);
          return session;
        },
        'message.send': async (
          event: EventEnvelope<{ userId: string; sessionId: string; content: string }>,
        ) => {
          const { sessionId, userId } = event.data;
          if (sessions.get(sessionId) !== userId) throw new NotFoundError(`no session "${sessionId}"`);
          const envelope = { correlationId: event.correlationId ?? '', userId, sessionId };
          const turnId = envelope.correlationId;
          const calledAt = performance.now();
          if (modelDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, modelDelayMs));
          modelWaits.push(performance.now() - calledAt);
          for (const text of REPLY_TOKENS)
            await ctx.emit('chat.response.delta', { turnId, sessionId, text }, envelope);
          const message = {
            id: newId(),
            content: REPLY_TOKENS.join(''),
            role: 'assistant' as const,
            timestamp: new Date().toISOString(),
            metadata: { sessionId, turnId },
          };
          await ctx.emit('chat.response.end', { turnId, sessionId, message }, envelope);
          return message;
        },
      },
    };
  },
});

/** The body parley's message route validates, and its path parameter. */
const body = {
  type: 'object',
  additionalProperties: false,
  required: ['content'],
  properties: {
    content: { type: 'string', minLength: 1 },
    model: { type: 'string', minLength: 1, maxLength: 200 },
    temperature: { type: 'number', minimum: 0, maximum: 2 },
  },
};
const params = {
  type: 'object',
  properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,128}$' } },
};
const encoder = new TextEncoder();

/** A message of the one-handler subject's history, with its token count. */
interface CountedMessage {
  role: 'user' | 'assistant';
  content: string;
  tokens: number;
}

/** The one-handler subject: a chat turn's work inline in one route (see the header). */
async function startOneHandler(dataDir: string): Promise<Started> {
  // Loaded here, not at the top: the other subjects load it only if they need it, as parley does.
  const { countTokens } = await import('gpt-tokenizer');
  const storage = createFlatfileStorage({ root: dataDir, journal: false });
  const model = createBenchModel();
  const key = newId();
  const budget = 3000; // text_chat.history_token_budget's default
  const histories = new Map<string, { messages: CountedMessage[]; tokens: number }>();
  const app = Fastify();

  app.post<{ Params: { id: string }; Body: { content: string } }>(
    '/one/sessions/:id/messages',
    { schema: { params, body } },
    async (request, reply) => {
      if (request.headers.authorization !== `Bearer ${key}`) {
        return reply.code(401).send({ error: { code: 'unauthorized', message: 'bad key' } });
      }
      const sessionId = request.params.id;
      let history = histories.get(sessionId);
      if (history === undefined) {
        history = { messages: [], tokens: TOKENS_PER_REPLY };
        histories.set(sessionId, history);
      }
      const add = (message: Omit<CountedMessage, 'tokens'>) => {
        const tokens = countTokens(message.content) + TOKENS_PER_MESSAGE;
        history.messages.push({ ...message, tokens });
        history.tokens += tokens;
        while (history.messages.length > 1 && history.tokens > budget) {
          history.tokens -= (history.messages.shift() as CountedMessage).tokens;
        }
      };
      const user = messageRecord('user', request.body.content, sessionId);
      add({ role: 'user', content: user.content });
      const prompt: LanguageModelV3Prompt = history.messages.map((message) => ({
        role: message.role,
        content: [{ type: 'text', text: message.content }],
      }));
      const { stream } = await model.doStream({ prompt });
      const parts = stream.getReader();
      let text = '';
      for (let part = await parts.read(); !part.done; part = await parts.read()) {
        if (part.value.type === 'text-delta') text += part.value.delta;
      }
      add({ role: 'assistant', content: text });
      const answer = messageRecord('assistant', text, sessionId);
      const lines = `${JSON.stringify(user)}\n${JSON.stringify(answer)}\n`;
      await storage.append(`one/${sessionId}/messages.jsonl`, encoder.encode(lines));
      return answer;
    },
  );
  const sessions = Array.from({ length: SESSIONS }, () => newId());
  return listening(app, { key, sessions }, () => storage.close());
}

async function startBare(dataDir: string): Promise<Started> {
  // One fsync an append, of the message's own log (see the header).
  const storage = createFlatfileStorage({ root: dataDir, journal: false });
  const app = Fastify();

  async function store(sessionId: string, content: string) {
    const message = messageRecord('user', content, sessionId);
    await storage.append(`bare/${sessionId}.jsonl`, encoder.encode(`${JSON.stringify(message)}\n`));
    return message;
  }

  app.post<{ Params: { id: string }; Body: { content: string } }>(
    '/bare/sessions/:id/messages',
    { schema: { params, body } },
    async (request) => store(request.params.id, request.body.content),
  );
  app.post<{ Params: { id: string }; Body: { content: string } }>(
    '/bare/sessions/:id/stream',
    { schema: { params, body } },
    async (request, reply) => {
      await store(request.params.id, request.body.content);
      const calledAt = performance.now();
      if (modelDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, modelDelayMs));
      modelWaits.push(performance.now() - calledAt);
      reply.hijack();
      reply.raw.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
      });
      for (const text of REPLY_TOKENS) reply.raw.write(`event: delta\ndata: ${JSON.stringify({ text })}\n\n`);
      reply.raw.end('event: end\ndata: {}\n\n');
    },
  );
  const sessions = Array.from({ length: SESSIONS }, () => newId());
  return listening(app, { sessions }, () => storage.close());
}

if (import.meta.main) {
  const [kind] = process.argv.slice(2);
  const dataDir = await mkdtemp(join(tmpdir(), `parley-bench-chat-${kind}-`));
  const subject =
    kind === 'bare'
      ? await startBare(dataDir)
      : kind === 'one-handler'
        ? await startOneHandler(dataDir)
        : await startParley(dataDir, kind === 'parley-http');
  const { close, ...ready } = subject;
  // Time the event loop spent stopped for the garbage collector (its helper threads' share is in the
  // process CPU, beside the event loop's): a turn whose objects outlive young collections shows here.
  let gcPauseMs = 0;
  new PerformanceObserver((entries) => {
    for (const entry of entries.getEntries()) gcPauseMs += entry.duration;
  }).observe({ entryTypes: ['gc'] });
  process.on('message', (message: { type: string; ms?: number }) => {
    if (message.type === 'model-delay') modelDelayMs = message.ms ?? 0;
    // CPU used so far: the whole process (its thread pool's fsyncs too) and the event loop's thread.
    if (message.type === 'cpu') {
      const cpu = { process: process.cpuUsage(), thread: process.threadCpuUsage(), gcPauseMs };
      process.send?.({ type: 'cpu', ...cpu });
    }
    if (message.type === 'model-waits') process.send?.({ type: 'model-waits', waits: modelWaits.splice(0) });
    if (message.type === 'stop') {
      // Turns whose client went away at the end of a round may still run: let them finish first.
      void new Promise((resolve) => setTimeout(resolve, 500))
        .then(close)
        .then(() => rm(dataDir, { recursive: true, force: true }))
        .then(() => process.exit(0));
    }
  });
  process.send?.(ready);
}
