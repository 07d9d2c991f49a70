/**
 * The OpenAI-compatible API driven by the official `openai` npm client, over real HTTP: completions
 * whole and streamed (with usage, and include_usage), /v1/models, the errors an OpenAI client must be
 * able to read (401, 400 unknown model, 502 provider failure, 429 rate limit with Retry-After), and a
 * streaming client that goes away (the model call is aborted).
 */

import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type HttpHarness, readSse, startHttpHarness, TEST_MODEL } from './http-harness.ts';

let harness: HttpHarness;
let client: OpenAI;

beforeAll(async () => {
  harness = await startHttpHarness({ env: { CHAT_SERVER__COMPLETIONS_PER_MINUTE: '1000' } });
  client = new OpenAI({ apiKey: harness.alice.key, baseURL: `${harness.baseUrl}/v1`, maxRetries: 0 });
});

afterAll(async () => {
  await harness?.close();
});

describe('POST /v1/chat/completions', () => {
  it('answers a whole completion with usage, through the default model', async () => {
    harness.model.respond({ kind: 'stream', chunks: ['Paris', '.'] });
    const completion = await client.chat.completions.create({
      model: 'parley',
      messages: [
        { role: 'system', content: 'Answer in one word.' },
        { role: 'user', content: 'Capital of France?' },
      ],
      temperature: 0.2,
      max_tokens: 20,
    });
    expect(completion.object).toBe('chat.completion');
    expect(completion.model).toBe(TEST_MODEL);
    expect(completion.choices).toHaveLength(1);
    expect(completion.choices[0]?.message).toMatchObject({ role: 'assistant', content: 'Paris.' });
    expect(completion.choices[0]?.finish_reason).toBe('stop');
    expect(completion.usage).toEqual({ prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 });

    // The provider got the conversation, the system prompt and the settings.
    const sent = harness.model.requests[0]?.body as {
      messages: Array<{ role: string; content: string }>;
      temperature: number;
      max_tokens: number;
    };
    expect(sent.messages).toEqual([
      { role: 'system', content: 'Answer in one word.' },
      { role: 'user', content: 'Capital of France?' },
    ]);
    expect(sent.temperature).toBe(0.2);
    expect(sent.max_tokens).toBe(20);
  });

  it('streams OpenAI chunks, ending with usage when include_usage is set', async () => {
    harness.model.respond({ kind: 'stream', chunks: ['one', ' two', ' three'] });
    const stream = await client.chat.completions.create({
      model: TEST_MODEL,
      messages: [{ role: 'user', content: 'count' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const text = chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join('');
    expect(text).toBe('one two three');
    expect(chunks[0]?.choices[0]?.delta.role).toBe('assistant');
    expect(
      chunks.every((chunk) => chunk.object === 'chat.completion.chunk' && chunk.id === chunks[0]?.id),
    ).toBe(true);
    const finish = chunks.find((chunk) => chunk.choices[0]?.finish_reason != null);
    expect(finish?.choices[0]?.finish_reason).toBe('stop');
    const last = chunks.at(-1);
    expect(last?.choices).toEqual([]);
    expect(last?.usage).toEqual({ prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 });
  });

  it('streams without a usage chunk by default, and ends with [DONE]', async () => {
    harness.model.respond({ kind: 'stream', chunks: ['hi'] });
    const response = await fetch(`${harness.baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${harness.alice.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], stream: true }),
    });
    const events = await readSse(response);
    expect(events.at(-1)?.data).toBe('[DONE]');
    expect(events.some((event) => typeof event.data === 'object' && 'usage' in (event.data as object))).toBe(
      false,
    );
  });

  it('accepts content as text parts, and rejects images with 400', async () => {
    harness.model.respond({ kind: 'stream', chunks: ['ok'] });
    const completion = await client.chat.completions.create({
      model: 'parley',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'parts ' },
            { type: 'text', text: 'work' },
          ],
        },
      ],
    });
    expect(completion.choices[0]?.message.content).toBe('ok');
    expect(JSON.stringify(harness.model.requests[0]?.body.messages)).toContain('parts work');

    const image = client.chat.completions.create({
      model: 'parley',
      messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x/y.png' } }] }],
    });
    await expect(image).rejects.toMatchObject({ status: 400 });
    await expect(image).rejects.toThrow(/only text parts/);
  });

  it('passes function calling through: the model’s call goes to the client, the client’s result to the model', async () => {
    const weather = {
      type: 'function' as const,
      function: {
        name: 'get_weather',
        description: 'The weather in a city',
        parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
      },
    };
    harness.model.respond({
      kind: 'tool-call',
      name: 'get_weather',
      arguments: { city: 'Lisbon' },
      afterwards: { kind: 'stream', chunks: ['Sunny, ', '24 °C.'] },
    });
    const first = await client.chat.completions.create({
      model: 'parley',
      messages: [{ role: 'user', content: 'Weather in Lisbon?' }],
      tools: [weather],
    });
    const choice = first.choices[0];
    expect(choice?.finish_reason).toBe('tool_calls');
    const call = choice?.message.tool_calls?.[0];
    expect(call).toMatchObject({ type: 'function', function: { name: 'get_weather' } });
    expect(JSON.parse((call as { function: { arguments: string } }).function.arguments)).toEqual({
      city: 'Lisbon',
    });
    // The provider was offered the client's function.
    expect(JSON.stringify(harness.model.requests[0]?.body.tools)).toContain('get_weather');

    const second = await client.chat.completions.create({
      model: 'parley',
      messages: [
        { role: 'user', content: 'Weather in Lisbon?' },
        { role: 'assistant', content: null, tool_calls: [call as never] },
        { role: 'tool', tool_call_id: (call as { id: string }).id, content: '{"sky":"sunny","celsius":24}' },
      ],
      tools: [weather],
    });
    expect(second.choices[0]?.message.content).toBe('Sunny, 24 °C.');
    const sent = (harness.model.requests[1]?.body.messages ?? []) as { role: string; content: string }[];
    const toolMessage = sent.find((message) => message.role === 'tool');
    expect(toolMessage?.content).toContain('celsius');

    // Streamed, the call comes as a tool_calls delta.
    harness.model.respond({
      kind: 'tool-call',
      name: 'get_weather',
      arguments: { city: 'Porto' },
      afterwards: { kind: 'stream', chunks: ['x'] },
    });
    const stream = await client.chat.completions.create({
      model: 'parley',
      messages: [{ role: 'user', content: 'And Porto?' }],
      tools: [weather],
      stream: true,
    });
    const deltas = [];
    for await (const chunk of stream) deltas.push(chunk.choices[0]);
    expect(deltas.some((delta) => delta?.delta.tool_calls?.[0]?.function?.name === 'get_weather')).toBe(true);
    expect(deltas.at(-1)?.finish_reason).toBe('tool_calls');

    // A tool result that answers no call is a 400.
    await expect(
      client.chat.completions.create({
        model: 'parley',
        messages: [
          { role: 'user', content: 'x' },
          { role: 'tool', tool_call_id: 'nope', content: '{}' },
        ],
      }),
    ).rejects.toMatchObject({ status: 400 });
  });

  it('turns bad requests into 400 errors an OpenAI client reads', async () => {
    await expect(
      client.chat.completions.create({ model: 'nosuch:model', messages: [{ role: 'user', content: 'hi' }] }),
    ).rejects.toMatchObject({ status: 400 });
    await expect(client.chat.completions.create({ model: 'parley', messages: [] })).rejects.toMatchObject({
      status: 400,
    });
    const wrongType = await harness.call('POST', '/v1/chat/completions', {
      key: harness.alice.key,
      body: { messages: [{ role: 'user', content: 5 }] },
    });
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.error.code).toBe('CHAT_ERR_VALIDATION_INVALID');
    const malformed = await harness.call('POST', '/v1/chat/completions', {
      key: harness.alice.key,
      body: '{"messages": [',
    });
    expect(malformed.status).toBe(400);
  });

  it('needs a valid key (401, as OpenAI answers)', async () => {
    const stranger = new OpenAI({
      apiKey: `pk_${'C'.repeat(43)}`,
      baseURL: `${harness.baseUrl}/v1`,
      maxRetries: 0,
    });
    await expect(
      stranger.chat.completions.create({ model: 'parley', messages: [{ role: 'user', content: 'hi' }] }),
    ).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    await expect(stranger.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it('reports provider failures with their status, streamed or not', async () => {
    harness.model.respond({ kind: 'error', status: 500, message: 'provider down' });
    const whole = client.chat.completions.create({
      model: 'parley',
      messages: [{ role: 'user', content: 'x' }],
    });
    await expect(whole).rejects.toMatchObject({ status: 502 });

    const streamed = client.chat.completions.create({
      model: 'parley',
      messages: [{ role: 'user', content: 'x' }],
      stream: true,
    });
    await expect(streamed).rejects.toMatchObject({ status: 502 });

    harness.model.respond({
      kind: 'error',
      status: 429,
      message: 'slow down',
      headers: { 'retry-after': '0' },
    });
    const limited = await harness.call('POST', '/v1/chat/completions', {
      key: harness.alice.key,
      body: { messages: [{ role: 'user', content: 'x' }] },
    });
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe('CHAT_ERR_LLM_RATE_LIMITED');
    expect(limited.headers.get('retry-after')).toMatch(/^\d+$/);
  });

  it('aborts the model call when a streaming client goes away', async () => {
    harness.model.respond({ kind: 'stall', chunks: ['started'] });
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      { model: 'parley', messages: [{ role: 'user', content: 'long' }], stream: true },
      { signal: controller.signal },
    );
    const seen: string[] = [];
    for await (const chunk of stream) {
      seen.push(chunk.choices[0]?.delta.content ?? '');
      if (seen.join('') === 'started') controller.abort();
    }
    expect(seen.join('')).toBe('started');
    const call = harness.llmCalls.at(-1);
    expect(call?.messages).toEqual([{ role: 'user', content: 'long' }]);
    await vi.waitFor(() => expect(call?.signal?.aborted).toBe(true), { timeout: 3000 });
    // The server stays healthy for the next call.
    harness.model.respond({ kind: 'stream', chunks: ['next'] });
    const next = await client.chat.completions.create({
      model: 'parley',
      messages: [{ role: 'user', content: 'x' }],
    });
    expect(next.choices[0]?.message.content).toBe('next');
  });
});

describe('GET /v1/models', () => {
  it('lists the configured models, marking the default', async () => {
    const models = await client.models.list();
    const ids = models.data.map((model) => model.id);
    expect(ids).toContain(TEST_MODEL);
    const entry = models.data.find((model) => model.id === TEST_MODEL) as unknown as { default: boolean };
    expect(entry.default).toBe(true);
    expect(models.data.every((model) => model.object === 'model')).toBe(true);
  });
});

describe('the completions rate limit', () => {
  it('answers 429 with Retry-After once server.completions_per_minute is used up', async () => {
    const limited = await startHttpHarness({ env: { CHAT_SERVER__COMPLETIONS_PER_MINUTE: '2' } });
    try {
      limited.model.respond({ kind: 'stream', chunks: ['ok'] });
      const body = { messages: [{ role: 'user', content: 'hi' }] };
      for (let call = 0; call < 2; call++) {
        expect(
          (await limited.call('POST', '/v1/chat/completions', { key: limited.alice.key, body })).status,
        ).toBe(200);
      }
      const refused = await limited.call('POST', '/v1/chat/completions', { key: limited.alice.key, body });
      expect(refused.status).toBe(429);
      expect(refused.body.error.code).toBe('CHAT_ERR_RATE_LIMITED');
      expect(refused.body.error.message).toContain('server.completions_per_minute');
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      // Per user: bob still has his own allowance…
      expect(
        (await limited.call('POST', '/v1/chat/completions', { key: limited.bob.key, body })).status,
      ).toBe(200);
      // …less what other nodes let through (their announcements; this node's own it counted once).
      expect(limited.events('completions.rate_limit.used')).toHaveLength(3);
      await limited.platform.bus.emit(
        'completions.rate_limit.used',
        { userId: limited.bob.id, node: 'another-node' },
        { userId: limited.bob.id },
      );
      const bobRefused = await limited.call('POST', '/v1/chat/completions', { key: limited.bob.key, body });
      expect(bobRefused.status).toBe(429);
    } finally {
      await limited.close();
    }
  });
});
