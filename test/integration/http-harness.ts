/**
 * A real parley for HTTP tests: the platform from the shipped config/ (every module, the real
 * text_chat), flatfile storage in a temp folder, the server listening on 127.0.0.1 on a free port, and a
 * model provider that is a real OpenAI-compatible HTTP server (test/helpers/fake-openai-server.ts), so a
 * provider's failures reach the API the way they would in production. Three users: an admin, alice, bob.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { EventEnvelope } from '../../src/core/events.ts';
import type { LlmCallObserver } from '../../src/core/observers.ts';
import type { LlmRequest } from '../../src/llm/call.ts';
import { createModelRegistry, type ModelRegistry } from '../../src/llm/registry.ts';
import { createPlatform, type Platform } from '../../src/platform/create-platform.ts';
import { type Auth, createAuth } from '../../src/security/auth.ts';
import { createServer } from '../../src/server/create-server.ts';
import { type FakeOpenAIServer, startFakeOpenAIServer } from '../helpers/fake-openai-server.ts';

/** A user of the test server and its API key. */
export interface TestUser {
  id: string;
  name: string;
  key: string;
}

/** What `call` returns: status, headers and the parsed JSON body (or the text when it is not JSON). */
export interface CallResult {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary response bodies
  body: any;
}

export interface CallOptions {
  /** Sent as `Authorization: Bearer <key>`. */
  key?: string;
  /** Sent as JSON, or as-is when a string. */
  body?: unknown;
  headers?: Record<string, string>;
}

/** A running server with its platform, users and model. */
export interface HttpHarness {
  baseUrl: string;
  platform: Platform;
  app: FastifyInstance;
  auth: Auth;
  /** The model provider: set what it answers next. */
  model: FakeOpenAIServer;
  /** Every request made of the model registry (by text_chat and by the OpenAI routes), oldest first. */
  llmCalls: LlmRequest[];
  dataDir: string;
  admin: TestUser;
  alice: TestUser;
  bob: TestUser;
  /** An HTTP call to the server. */
  call(method: string, path: string, options?: CallOptions): Promise<CallResult>;
  /** Events seen on the bus since the start whose type matches `type` exactly. */
  events(type: string): EventEnvelope[];
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** Extra `CHAT_*` variables (config overrides). */
  env?: Record<string, string>;
  /** `llm` settings over the harness's own (say, a shorter `request_timeout_ms`). */
  llm?: Record<string, unknown>;
}

/** The model name the harness configures as the default. */
export const TEST_MODEL = 'fake:test-model';

/** Starts the platform, the server and the model provider. */
export async function startHttpHarness(options: HarnessOptions = {}): Promise<HttpHarness> {
  const dataDir = await mkdtemp(join(tmpdir(), 'parley-http-'));
  const model = await startFakeOpenAIServer();
  const llm = {
    default_model: TEST_MODEL,
    max_retries: 0,
    request_timeout_ms: 5000,
    providers: { fake: { type: 'openai-compatible', base_url: model.baseUrl, models: ['test-model'] } },
    ...options.llm,
  };
  // The real registry from the same config (reporting to the platform's metrics), with every request
  // recorded (to see, say, its signal abort).
  const llmCalls: LlmRequest[] = [];
  const recorded = (observer: LlmCallObserver | undefined): ModelRegistry => {
    const registry = createModelRegistry(llm, { env: {}, ...(observer === undefined ? {} : { observer }) });
    return {
      ...registry,
      stream(request) {
        llmCalls.push(request);
        return registry.stream(request);
      },
      streamTo(request, onPart) {
        llmCalls.push(request);
        return registry.streamTo(request, onPart);
      },
      generate(request) {
        llmCalls.push(request);
        return registry.generate(request);
      },
    };
  };
  const platform = await createPlatform({
    llm: recorded,
    env: {
      NODE_ENV: 'test',
      CHAT_DATA_DIR: dataDir,
      CHAT_LOGGING__LEVEL: 'silent',
      CHAT_LLM: JSON.stringify(llm),
      ...options.env,
    },
  });
  const seen: EventEnvelope[] = [];
  platform.bus.on('>', (event) => {
    seen.push(event);
  });
  const auth = createAuth(platform.storage);
  const app = await createServer(platform, { auth });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('the server has no TCP address');
  const baseUrl = `http://127.0.0.1:${address.port}`;

  async function user(name: string, role: 'admin' | 'user'): Promise<TestUser> {
    const created = await auth.users.create({ name, role });
    const { key } = await auth.keys.create(created.id);
    return { id: created.id, name, key };
  }

  async function call(method: string, path: string, callOptions: CallOptions = {}): Promise<CallResult> {
    const headers: Record<string, string> = { ...callOptions.headers };
    if (callOptions.key !== undefined) headers.authorization = `Bearer ${callOptions.key}`;
    let body: string | undefined;
    if (callOptions.body !== undefined) {
      body = typeof callOptions.body === 'string' ? callOptions.body : JSON.stringify(callOptions.body);
      headers['content-type'] ??= 'application/json';
    }
    const response = await fetch(baseUrl + path, {
      method,
      headers,
      ...(body === undefined ? {} : { body }),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      // not JSON: the text is the body
    }
    return { status: response.status, headers: response.headers, body: parsed };
  }

  return {
    baseUrl,
    platform,
    app,
    auth,
    model,
    llmCalls,
    dataDir,
    admin: await user('root', 'admin'),
    alice: await user('alice', 'user'),
    bob: await user('bob', 'user'),
    call,
    events: (type) => seen.filter((event) => event.type === type),
    async close() {
      await app.close();
      await platform.close();
      await model.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Reads a server-sent event stream to its end: the events in order, with parsed data. */
export async function readSse(
  response: Response,
  onEvent?: (event: { event: string; data: unknown }) => void,
): Promise<Array<{ event: string; data: unknown }>> {
  const events: Array<{ event: string; data: unknown }> = [];
  if (response.body === null) return events;
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of response.body) {
    buffer += decoder.decode(chunk as Uint8Array, { stream: true });
    let boundary = buffer.indexOf('\n\n');
    while (boundary !== -1) {
      const block = buffer.slice(0, boundary);
      buffer = buffer.slice(boundary + 2);
      boundary = buffer.indexOf('\n\n');
      let name = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) name = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length === 0) continue;
      const text = data.join('\n');
      let value: unknown = text;
      try {
        value = JSON.parse(text);
      } catch {
        // [DONE] and other plain text
      }
      const event = { event: name, data: value };
      events.push(event);
      onEvent?.(event);
    }
  }
  return events;
}
