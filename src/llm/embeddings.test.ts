import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type FakeEmbeddingsServer,
  hashedBagOfWords,
  startFakeEmbeddingsServer,
} from '../../test/helpers/fake-embeddings-server.ts';
import { isPlatformError } from '../core/errors.ts';
import { createEmbedder, createEmbeddingRegistry } from './embeddings.ts';
import { LOCAL_RUNTIME_INSTALL } from './local.ts';
import { createModelRegistry } from './registry.ts';

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  return isPlatformError(error) ? error.code : `not a PlatformError: ${String(error)}`;
}

function thrownBy(action: () => unknown): { code: string | undefined; message: string } {
  try {
    action();
  } catch (error) {
    return { code: isPlatformError(error) ? error.code : undefined, message: (error as Error).message };
  }
  throw new Error('expected a throw');
}

let server: FakeEmbeddingsServer;

beforeAll(async () => {
  server = await startFakeEmbeddingsServer(24);
});

afterAll(async () => {
  await server.close();
});

function config(extra: Record<string, unknown> = {}) {
  return {
    max_retries: 0,
    providers: {
      ollama: { type: 'openai-compatible', base_url: server.baseUrl },
      keyed: { type: 'openai-compatible', base_url: server.baseUrl, api_key: 'sk-compatible' },
      openai: { base_url: server.baseUrl, api_key: 'sk-test' },
      claude: { type: 'anthropic', api_key: 'x' },
    },
    ...extra,
  };
}

describe('remote embedders (AI SDK embedMany against a real HTTP server)', () => {
  it('sends texts in batches of batchSize and returns one vector per text, in order', async () => {
    const registry = createEmbeddingRegistry(config(), { env: {} });
    const embedder = registry.embedder('ollama:nomic-embed-text', { batchSize: 64 });
    server.respond({ kind: 'embed' });
    const texts = Array.from(
      { length: 150 },
      (_, index) => `chunk number ${index} about wing flutter ${index % 7}`,
    );
    const vectors = await embedder.embed(texts);
    expect(server.requests.map((request) => request.body.input.length)).toEqual([64, 64, 22]);
    expect(server.requests.every((request) => request.body.model === 'nomic-embed-text')).toBe(true);
    // Ollama needs no key: no Authorization header is sent.
    expect(server.requests[0]!.authorization).toBeUndefined();
    expect(vectors).toHaveLength(150);
    expect(vectors[0]).toBeInstanceOf(Float32Array);
    expect([...vectors[149]!]).toEqual(hashedBagOfWords(texts[149]!, 24).map(Math.fround));
    expect(await embedder.dimension()).toBe(24);
    expect(embedder.name).toBe('ollama:nomic-embed-text');
    expect(await embedder.embed([])).toEqual([]);
  });

  it('learns the dimension with one short request when nothing was embedded yet', async () => {
    const embedder = createEmbeddingRegistry(config(), { env: {} }).embedder('keyed:bge-m3');
    server.respond({ kind: 'embed' });
    expect(await embedder.dimension()).toBe(24);
    expect(await embedder.dimension()).toBe(24);
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]!.authorization).toBe('Bearer sk-compatible');
  });

  it('serves openai embedding models with the configured key and base URL', async () => {
    const registry = createModelRegistry(config(), { env: {} });
    const embedder = registry.embedder('openai:text-embedding-3-small', { batchSize: 2 });
    server.respond({ kind: 'embed' });
    const [vector] = await embedder.embed(['lift and drag']);
    expect(vector).toHaveLength(24);
    expect(server.requests[0]).toMatchObject({
      authorization: 'Bearer sk-test',
      body: { model: 'text-embedding-3-small' },
    });
    expect(registry.embedder('openai:text-embedding-3-small', { batchSize: 2 })).toBe(embedder);
    await registry.dispose();
  });

  it('reports failures as the LLM errors chat calls use', async () => {
    const registry = createEmbeddingRegistry(config({ max_retries: 1 }), { env: {} });
    const embedder = registry.embedder('ollama:nomic-embed-text');
    server.respond({ kind: 'error', status: 401, message: 'bad key' });
    expect(await codeOf(embedder.embed(['x']))).toBe('CHAT_ERR_LLM_AUTH');
    // retry-after-ms keeps the AI SDK's backoff (2 s by default) out of the test's time.
    server.respond({ kind: 'error', status: 500, message: 'boom', headers: { 'retry-after-ms': '5' } });
    expect(await codeOf(embedder.embed(['x']))).toBe('CHAT_ERR_LLM_PROVIDER_FAILED');
    expect(server.requests).toHaveLength(2); // one retry
    server.respond({ kind: 'short' });
    expect(await codeOf(embedder.embed(['a', 'b']))).toBe('CHAT_ERR_LLM_PROVIDER_FAILED');
    server.respond({ kind: 'embed' });
    const controller = new AbortController();
    controller.abort();
    expect(await codeOf(embedder.embed(['x'], { signal: controller.signal }))).toBe('CHAT_ERR_LLM_CANCELLED');

    const refused = createEmbeddingRegistry(
      {
        max_retries: 0,
        providers: { gone: { type: 'openai-compatible', base_url: 'http://127.0.0.1:9/v1' } },
      },
      { env: {} },
    ).embedder('gone:model');
    expect(await codeOf(refused.embed(['x']))).toBe('CHAT_ERR_LLM_UNAVAILABLE');
  });

  it('rejects names it cannot serve, saying what to do', () => {
    const registry = createEmbeddingRegistry(config(), { env: {} });
    expect(thrownBy(() => registry.embedder('nomic-embed-text')).code).toBe('CHAT_ERR_LLM_UNKNOWN_MODEL');
    expect(thrownBy(() => registry.embedder('nope:model')).message).toMatch(
      /known providers: claude, keyed, ollama, openai/,
    );
    expect(thrownBy(() => registry.embedder('claude:any')).message).toMatch(/has no embedding models/);
    expect(thrownBy(() => registry.embedder('ollama:x', { batchSize: 0 })).code).toBe(
      'CHAT_ERR_CONFIG_INVALID',
    );
    const keyless = createEmbeddingRegistry({}, { env: {} });
    const missingKey = thrownBy(() => keyless.embedder('openai:text-embedding-3-small'));
    expect(missingKey).toEqual({
      code: 'CHAT_ERR_LLM_AUTH',
      message: expect.stringMatching(/OPENAI_API_KEY/),
    });
    expect(createEmbeddingRegistry({}, { env: { OPENAI_API_KEY: 'sk-env' } }).embedder('openai:x').name).toBe(
      'openai:x',
    );
  });

  it('createEmbedder takes a model registry or a raw llm config', async () => {
    server.respond({ kind: 'embed' });
    const fromConfig = createEmbedder(config(), 'ollama:nomic-embed-text', { batchSize: 5, env: {} });
    expect(fromConfig.batchSize).toBe(5);
    expect(await fromConfig.embed(['a b c'])).toHaveLength(1);
    await fromConfig.dispose();
    const registry = createModelRegistry(config(), { env: {} });
    const fromRegistry = createEmbedder(registry, 'ollama:nomic-embed-text');
    expect(await fromRegistry.dimension()).toBe(24);
    await registry.dispose();
  });
});

const modelPath = path.resolve(import.meta.dirname, '../../../shared/models/stories260K.gguf');
const runtimeInstalled = await import('node-llama-cpp').then(
  () => true,
  () => false,
);
const inCi = process.env.CI === 'true';
const canRun = runtimeInstalled && existsSync(modelPath);
if (!canRun && !inCi) {
  console.warn(
    `skipping the local GGUF embedding tests: ${runtimeInstalled ? `no model at ${modelPath}` : `node-llama-cpp is not installed (${LOCAL_RUNTIME_INSTALL})`}`,
  );
}

describe.skipIf(!canRun && !inCi)('local embedders (node-llama-cpp on a real GGUF model)', () => {
  // One thread: on 2 cores llama.cpp's default is dramatically slower.
  const registry = createEmbeddingRegistry(
    { providers: { local: { models: { stories: { path: modelPath, max_threads: 1, context_size: 256 } } } } },
    { env: {} },
  );
  afterAll(async () => {
    await registry.dispose();
  });

  it('embeds with the model’s own width, the same text to the same vector, and cuts long texts to the context', async () => {
    expect(existsSync(modelPath), `the test model is missing: ${modelPath}`).toBe(true);
    const embedder = registry.embedder('local:stories', { batchSize: 2 });
    expect(await embedder.dimension()).toBe(64);
    const long = 'Once upon a time there was a little girl. '.repeat(100);
    const [first, second, third, fourth, empty] = await embedder.embed([
      'Once upon a time',
      'The cat sat on the mat.',
      'Once upon a time',
      long,
      '',
    ]);
    expect([...empty!]).toEqual(new Array(64).fill(0));
    expect(first).toHaveLength(64);
    expect([...first!]).toEqual([...third!]);
    expect([...first!]).not.toEqual([...second!]);
    expect(fourth!.every(Number.isFinite)).toBe(true);
    // Concurrent calls share the one context, one after the other.
    const both = await Promise.all([embedder.embed(['a dog']), embedder.embed(['a dog'])]);
    expect([...both[0][0]!]).toEqual([...both[1][0]!]);
  });

  it('names the missing runtime and the missing file', async () => {
    const missing = createEmbeddingRegistry(
      { providers: { local: { models: { stories: { path: modelPath } } } } },
      {
        env: {},
        importRuntime: () =>
          Promise.reject(Object.assign(new Error('nope'), { code: 'ERR_MODULE_NOT_FOUND' })),
      },
    );
    const error = await missing
      .embedder('local:stories')
      .embed(['x'])
      .catch((caught: unknown) => caught);
    expect(isPlatformError(error) && error.code).toBe('CHAT_ERR_LLM_UNAVAILABLE');
    expect((error as Error).message).toContain(LOCAL_RUNTIME_INSTALL);
    const noFile = createEmbeddingRegistry(
      { providers: { local: { models: { gone: { path: '/nonexistent/model.gguf', max_threads: 1 } } } } },
      { env: {} },
    );
    const fileError = await noFile
      .embedder('local:gone')
      .embed(['x'])
      .catch((caught: unknown) => caught);
    expect(isPlatformError(fileError) && fileError.code).toBe('CHAT_ERR_LLM_UNAVAILABLE');
    expect((fileError as Error).message).toMatch(/nonexistent\/model\.gguf/);
    await noFile.dispose();
  });
});
