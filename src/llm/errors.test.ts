import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeOpenAIServer, startFakeOpenAIServer } from '../../test/helpers/fake-openai-server.ts';
import { isPlatformError, type PlatformError } from '../core/errors.ts';
import type { LlmStreamPart } from './call.ts';
import { createModelRegistry, type ModelRegistry } from './registry.ts';

// Provider failures against a real HTTP server, through the real @ai-sdk/openai-compatible and
// @ai-sdk/openai clients. The server asks for a 10 ms Retry-After so the SDK's backoff stays short.
const FAST_RETRY = { 'retry-after-ms': '10' };
const messages = [{ role: 'user' as const, content: 'Hi' }];

let server: FakeOpenAIServer;
let registry: ModelRegistry;

beforeAll(async () => {
  server = await startFakeOpenAIServer();
  registry = createModelRegistry(
    {
      default_model: 'fake:tiny',
      max_retries: 2,
      request_timeout_ms: 5000,
      providers: {
        fake: { type: 'openai-compatible', base_url: server.baseUrl, api_key: 'test-key' },
        openai: { base_url: server.baseUrl, api_key: 'sk-wrong', api: 'chat' },
      },
    },
    { env: {} },
  );
});

afterAll(async () => {
  await server?.close();
});

async function collect(stream: AsyncIterable<LlmStreamPart>): Promise<LlmStreamPart[]> {
  const parts: LlmStreamPart[] = [];
  for await (const part of stream) parts.push(part);
  return parts;
}

async function failure(promise: Promise<unknown>): Promise<PlatformError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (!isPlatformError(error)) throw new Error(`expected a PlatformError, got ${String(error)}`);
  return error;
}

describe('calls through an OpenAI-compatible server', () => {
  it('streams the text deltas, then a finish with usage', async () => {
    server.respond({ kind: 'stream', chunks: ['Hel', 'lo', ' there'] });
    const parts = await collect(registry.stream({ messages }));
    const deltas = parts.filter((part) => part.type === 'text-delta').map((part) => part.text);
    expect(deltas).toEqual(['Hel', 'lo', ' there']);
    const finish = parts.at(-1);
    expect(finish).toMatchObject({
      type: 'finish',
      model: 'fake:tiny',
      text: 'Hello there',
      finishReason: 'stop',
    });
    expect(finish?.type === 'finish' && finish.usage.inputTokens).toBe(7);
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]?.authorization).toBe('Bearer test-key');
    expect(server.requests[0]?.body.model).toBe('tiny');
  });

  it('keeps the colons of a model id ("llama3.1:8b")', async () => {
    server.respond({ kind: 'stream', chunks: ['ok'] });
    const result = await registry.generate({ model: 'fake:llama3.1:8b', messages });
    expect(result.text).toBe('ok');
    expect(server.requests[0]?.body.model).toBe('llama3.1:8b');
  });

  it('retries a 429 max_retries times, then reports the rate limit', async () => {
    server.respond({ kind: 'error', status: 429, message: 'Rate limit reached', headers: FAST_RETRY });
    const error = await failure(registry.generate({ messages }));
    expect(server.requests).toHaveLength(3);
    expect(error.code).toBe('CHAT_ERR_LLM_RATE_LIMITED');
    expect(error.status).toBe(429);
    expect(error.message).toContain('"fake"');
    expect(error.message).toContain('Rate limit reached');
    expect(error.details).toMatchObject({
      provider: 'fake',
      model: 'fake:tiny',
      statusCode: 429,
      attempts: 3,
    });
  });

  it('retries a 500 and reports the provider failure as 502', async () => {
    server.respond({ kind: 'error', status: 500, message: 'upstream exploded', headers: FAST_RETRY });
    const error = await failure(registry.generate({ messages }));
    expect(server.requests).toHaveLength(3);
    expect(error.code).toBe('CHAT_ERR_LLM_PROVIDER_FAILED');
    expect(error.status).toBe(502);
    expect(error.message).toContain('HTTP 500');
  });

  it('does not retry a 401 and says which key to check', async () => {
    server.respond({
      kind: 'error',
      status: 401,
      message: 'Incorrect API key provided',
      headers: FAST_RETRY,
    });
    const error = await failure(registry.generate({ model: 'openai:gpt-4o-mini', messages }));
    expect(server.requests).toHaveLength(1);
    expect(error.code).toBe('CHAT_ERR_LLM_AUTH');
    expect(error.message).toContain('OPENAI_API_KEY');
    expect(error.message).toContain('llm.providers.openai.api_key');
    expect(JSON.stringify(error.toJSON())).not.toContain('sk-wrong');
  });

  it('reports a model the server does not have (404)', async () => {
    server.respond({ kind: 'error', status: 404, message: "model 'nope' not found, try pulling it first" });
    const error = await failure(registry.generate({ model: 'fake:nope', messages }));
    expect(error.code).toBe('CHAT_ERR_LLM_UNKNOWN_MODEL');
    expect(error.message).toContain('not found');
  });

  it('throws the error from the stream, after the deltas that did arrive', async () => {
    server.respond({ kind: 'error', status: 503, message: 'overloaded', headers: FAST_RETRY });
    const error = await failure(collect(registry.stream({ messages })));
    expect(error.code).toBe('CHAT_ERR_LLM_PROVIDER_FAILED');
    expect(error.details).toMatchObject({ attempts: 3, statusCode: 503 });
  });
});

describe('unreachable and slow providers', () => {
  it('reports a refused connection as unavailable, naming the base URL', async () => {
    // A port that was free a moment ago and has no listener now.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const baseUrl = `http://127.0.0.1:${port}/v1`;
    const down = createModelRegistry(
      { max_retries: 0, providers: { ollama: { type: 'openai-compatible', base_url: baseUrl } } },
      { env: {} },
    );
    const error = await failure(down.generate({ model: 'ollama:llama3', messages }));
    expect(error.code).toBe('CHAT_ERR_LLM_UNAVAILABLE');
    expect(error.status).toBe(503);
    expect(error.message).toContain(baseUrl);
    expect(error.details).toMatchObject({ networkCode: 'ECONNREFUSED' });
  });

  it('times out a server that never answers, without retrying', async () => {
    const slow = createModelRegistry(
      {
        request_timeout_ms: 300,
        providers: { fake: { type: 'openai-compatible', base_url: server.baseUrl } },
      },
      { env: {} },
    );
    server.respond({ kind: 'hang' });
    const error = await failure(slow.generate({ model: 'fake:tiny', messages }));
    expect(error.code).toBe('CHAT_ERR_LLM_TIMEOUT');
    expect(error.status).toBe(504);
    expect(error.message).toContain('300 ms');
    expect(error.message).toContain('llm.request_timeout_ms');
    expect(server.requests).toHaveLength(1);
  });

  it('times out a stream that stalls after its first chunks', async () => {
    const slow = createModelRegistry(
      {
        request_timeout_ms: 300,
        providers: { fake: { type: 'openai-compatible', base_url: server.baseUrl } },
      },
      { env: {} },
    );
    server.respond({ kind: 'stall', chunks: ['Once', ' upon'] });
    const seen: string[] = [];
    const error = await failure(
      (async () => {
        for await (const part of slow.stream({ model: 'fake:tiny', messages })) {
          if (part.type === 'text-delta') seen.push(part.text);
        }
      })(),
    );
    expect(seen).toEqual(['Once', ' upon']);
    expect(error.code).toBe('CHAT_ERR_LLM_TIMEOUT');
  });

  it('reports a call the caller cancelled as cancelled, not as a timeout', async () => {
    server.respond({ kind: 'hang' });
    const controller = new AbortController();
    const pending = failure(registry.generate({ messages, signal: controller.signal }));
    setTimeout(() => controller.abort(), 50);
    const error = await pending;
    expect(error.code).toBe('CHAT_ERR_LLM_CANCELLED');
  });
});
