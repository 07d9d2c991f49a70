import { existsSync } from 'node:fs';
import path from 'node:path';
import { generateText, streamText } from 'ai';
import { afterAll, describe, expect, it } from 'vitest';
import { isPlatformError } from '../core/errors.ts';
import type { LocalModelSettings } from './config.ts';
import { createLocalRuntime, LOCAL_RUNTIME_INSTALL } from './local.ts';
import { createModelRegistry } from './registry.ts';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const modelPath = path.resolve(repoRoot, '../shared/models/stories260K-chat.gguf');
const messages = [{ role: 'user' as const, content: 'Tell me a story about a cat.' }];

const runtimeInstalled = await import('node-llama-cpp').then(
  () => true,
  () => false,
);
const inCi = process.env.CI === 'true';
const canRun = runtimeInstalled && existsSync(modelPath);
if (!canRun && !inCi) {
  console.warn(
    `skipping the local GGUF tests: ${runtimeInstalled ? `no model at ${modelPath}` : `node-llama-cpp is not installed (${LOCAL_RUNTIME_INSTALL})`}`,
  );
}

// One registry, so the model is loaded once for the whole file. One thread: on 2 cores llama.cpp's default
// of 4 threads is about a thousand times slower.
const registry = createModelRegistry(
  {
    default_model: 'local:stories',
    providers: { local: { models: { stories: { path: modelPath, max_threads: 1, context_size: 512 } } } },
  },
  { env: {} },
);

afterAll(async () => {
  await registry.dispose();
});

describe.skipIf(!canRun && !inCi)('local provider on a real GGUF model', () => {
  it('streams real tokens through streamText, then a finish', async () => {
    expect(existsSync(modelPath), `the test model is missing: ${modelPath}`).toBe(true);
    const result = streamText({
      model: registry.resolve('local:stories'),
      messages,
      maxOutputTokens: 24,
      temperature: 0,
    });
    const deltas: string[] = [];
    for await (const delta of result.textStream) deltas.push(delta);
    expect(deltas.length).toBeGreaterThan(3);
    expect(deltas.join('').trim()).not.toBe('');
    expect(await result.finishReason).toBe('length');
    const usage = await result.usage;
    expect(usage.outputTokens).toBe(24);
    expect(usage.inputTokens).toBeGreaterThan(0);
  });

  it('streams through the registry, and answers generateText with the same text at temperature 0', async () => {
    const parts = [];
    for await (const part of registry.stream({ messages, maxOutputTokens: 16, temperature: 0 }))
      parts.push(part);
    const deltas = parts.flatMap((part) => (part.type === 'text-delta' ? [part.text] : []));
    const finish = parts.at(-1);
    expect(deltas.length).toBeGreaterThan(3);
    expect(finish).toMatchObject({ type: 'finish', model: 'local:stories', text: deltas.join('') });
    const generated = await generateText({
      model: registry.resolve('local:stories'),
      messages,
      maxOutputTokens: 16,
      temperature: 0,
    });
    expect(generated.text).toBe(deltas.join(''));
  });

  it('queues calls beyond the parallel sequences and frees a sequence when a reader stops early', async () => {
    for await (const part of registry.stream({ messages, maxOutputTokens: 200 })) {
      if (part.type === 'text-delta') break;
    }
    const both = await Promise.all([
      registry.generate({ messages, maxOutputTokens: 8, temperature: 0 }),
      registry.generate({ messages, maxOutputTokens: 8, temperature: 0 }),
    ]);
    expect(both[0].text).not.toBe('');
    expect(both[1].text).toBe(both[0].text);
  });
});

describe('local provider failures', () => {
  const settings: LocalModelSettings = {
    path: modelPath,
    contextSize: 512,
    maxThreads: 1,
    gpu: false,
    parallel: 1,
  };

  it('says how to install node-llama-cpp when it is missing', async () => {
    const missing = 'parley-test-package-that-is-not-installed';
    const runtime = createLocalRuntime({ importRuntime: () => import(missing) });
    const model = runtime.languageModel('local', 'stories', settings);
    const error = await generateText({ model, messages, maxRetries: 0 }).catch((caught: unknown) => caught);
    expect(isPlatformError(error, 'CHAT_ERR_LLM_UNAVAILABLE')).toBe(true);
    expect((error as Error).message).toContain(LOCAL_RUNTIME_INSTALL);
  });

  it.skipIf(!runtimeInstalled && !inCi)(
    'names the config key when the GGUF file does not exist',
    async () => {
      const broken = createModelRegistry(
        { providers: { local: { models: { gone: { path: '/nonexistent/model.gguf', max_threads: 1 } } } } },
        { env: {} },
      );
      const error = await broken
        .generate({ model: 'local:gone', messages })
        .catch((caught: unknown) => caught);
      expect(isPlatformError(error, 'CHAT_ERR_LLM_UNAVAILABLE')).toBe(true);
      expect((error as Error).message).toContain('llm.providers.local.models.gone.path');
      expect((error as Error).message).toContain('/nonexistent/model.gguf');
    },
  );
});
