import { generateText, streamText } from 'ai';
import { describe, expect, it } from 'vitest';
import { createOfflineModel, offlineNotice } from './offline.ts';
import { createModelRegistry } from './registry.ts';

const messages = [{ role: 'user' as const, content: 'What is the capital of France?' }];

describe('offline model', () => {
  it('streams, through streamText, that no model is configured and how to configure one', async () => {
    const result = streamText({ model: createOfflineModel(), messages });
    const deltas: string[] = [];
    for await (const delta of result.textStream) deltas.push(delta);
    expect(deltas.length).toBeGreaterThan(10);
    const text = deltas.join('');
    expect(text).toBe(offlineNotice());
    expect(text).toContain('No language model is configured');
    expect(text).toContain('llm.default_model');
    expect(text).toContain('CHAT_LLM__DEFAULT_MODEL=openai:gpt-4o-mini');
    expect(text).toContain('OPENAI_API_KEY');
    expect(await result.finishReason).toBe('stop');
  });

  it('answers generateText with the same notice', async () => {
    const { text, finishReason } = await generateText({ model: createOfflineModel(), messages });
    expect(text).toBe(offlineNotice());
    expect(finishReason).toBe('stop');
  });

  it('says when a key is already set and only default_model is missing', async () => {
    const { text } = await generateText({
      model: createOfflineModel({ env: { OPENAI_API_KEY: 'sk-x' } }),
      messages,
    });
    expect(text).toContain('OPENAI_API_KEY is already set');
  });

  it('lists what memory and documents retrieved', async () => {
    const registry = createModelRegistry({}, { env: {} });
    const result = await registry.generate({
      messages,
      providerOptions: {
        offline: { retrieved: ['Paris is the capital of France.', 'The user likes maps.'] },
      },
    });
    expect(result.model).toBe('offline:offline');
    expect(result.text).toContain('No language model is configured');
    expect(result.text).toContain('found in memory and documents');
    expect(result.text).toContain('- Paris is the capital of France.');
    expect(result.text).toContain('- The user likes maps.');
  });
});
