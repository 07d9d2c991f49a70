/**
 * Tool use over real HTTP with a real OpenAI-compatible provider: the model is offered the tool_use
 * module's tools, asks for the calculator, gets its result and answers with it; the turn's events show the
 * call while it runs; the reply keeps what was called and what came back; a tool that fails is reported to
 * the model, which answers anyway; and with no module offering tools, the model is offered none.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpHarness, readSse, startHttpHarness } from './http-harness.ts';

let harness: HttpHarness;

beforeAll(async () => {
  harness = await startHttpHarness({ env: { CHAT_TOOL_USE__ENABLED: 'true' } });
});

afterAll(async () => {
  await harness?.close();
});

async function send(content: string) {
  const { call, alice } = harness;
  const sessionId = (await call('POST', '/v1/sessions', { key: alice.key, body: {} })).body.id;
  const reply = await call('POST', `/v1/sessions/${sessionId}/messages`, {
    key: alice.key,
    body: { content },
  });
  expect(reply.status).toBe(200);
  return reply.body;
}

describe('tool use', () => {
  it('runs the tool the model asks for and answers with its result', async () => {
    const { model } = harness;
    model.respond({
      kind: 'tool-call',
      name: 'calculator',
      arguments: { expression: '1250 * 0.21 + 17.5' },
      afterwards: { kind: 'stream', chunks: ['The total is ', '280.'] },
    });
    const reply = await send('What is 21% VAT on 1250, plus 17.50 shipping?');
    expect(reply.content).toBe('The total is 280.');
    expect(reply.metadata.toolCalls).toEqual([
      {
        name: 'calculator',
        input: { expression: '1250 * 0.21 + 17.5' },
        output: { expression: '1250 * 0.21 + 17.5', result: 280 },
      },
    ]);

    // The model was offered the tools, and its second call carried the tool's result.
    const [first, second] = model.requests as [
      (typeof model.requests)[number],
      (typeof model.requests)[number],
    ];
    const offered = (first.body.tools as { function: { name: string } }[]).map((tool) => tool.function.name);
    expect(offered.sort()).toEqual(['calculator', 'current_time']);
    const toolMessage = (second.body.messages as { role: string; content: string }[]).find(
      (m) => m.role === 'tool',
    );
    expect(JSON.parse(toolMessage?.content ?? '{}')).toEqual({
      expression: '1250 * 0.21 + 17.5',
      result: 280,
    });

    // While it ran, the turn said so.
    const toolEvents = harness
      .events('chat.response.tool')
      .map((event) => event.data as { turnId: string; phase: string; name: string })
      .filter((data) => data.turnId === reply.metadata.turnId);
    expect(toolEvents.map((data) => [data.phase, data.name])).toEqual([
      ['call', 'calculator'],
      ['result', 'calculator'],
    ]);
  });

  it('shows the tool call and its result in the SSE stream, before the answer', async () => {
    const { call, alice, model, baseUrl } = harness;
    model.respond({
      kind: 'tool-call',
      name: 'current_time',
      arguments: { timezone: 'Europe/Lisbon' },
      afterwards: { kind: 'stream', chunks: ['It is ', 'afternoon.'] },
    });
    const sessionId = (await call('POST', '/v1/sessions', { key: alice.key, body: {} })).body.id;
    const response = await fetch(`${baseUrl}/v1/sessions/${sessionId}/messages?stream=sse`, {
      method: 'POST',
      headers: { authorization: `Bearer ${alice.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ content: 'What time is it in Lisbon?' }),
    });
    const events = await readSse(response);
    const names = events.map((event) => event.event);
    // However the answer's text is chunked, the tool's events come first.
    expect(names.filter((name) => name !== 'delta')).toEqual(['start', 'tool', 'tool', 'end']);
    expect(names.indexOf('delta')).toBeGreaterThan(names.lastIndexOf('tool'));
    expect(events[1]?.data).toMatchObject({
      phase: 'call',
      name: 'current_time',
      input: { timezone: 'Europe/Lisbon' },
    });
    expect(events[2]?.data).toMatchObject({
      phase: 'result',
      name: 'current_time',
      output: { timezone: 'Europe/Lisbon', iso: expect.any(String) },
    });
  });

  it('tells the model a tool failed, and the model answers anyway', async () => {
    harness.model.respond({
      kind: 'tool-call',
      name: 'calculator',
      arguments: { expression: '1 / 0' },
      afterwards: { kind: 'stream', chunks: ['That cannot be calculated.'] },
    });
    const reply = await send('What is one divided by zero?');
    expect(reply.content).toBe('That cannot be calculated.');
    expect(reply.metadata.toolCalls[0]).toMatchObject({
      name: 'calculator',
      error: expect.stringContaining('not a finite number'),
    });
    expect(JSON.stringify(harness.model.requests[1]?.body.messages)).toContain('not a finite number');
  });
});

describe('no tools offered', () => {
  it('gives the model no tools when no module offers any (tool_use is off by default)', async () => {
    const plain = await startHttpHarness();
    try {
      const { call, alice, model } = plain;
      model.respond({ kind: 'stream', chunks: ['ok'] });
      const sessionId = (await call('POST', '/v1/sessions', { key: alice.key, body: {} })).body.id;
      const reply = await call('POST', `/v1/sessions/${sessionId}/messages`, {
        key: alice.key,
        body: { content: 'hi' },
      });
      expect(reply.status).toBe(200);
      expect(reply.body.metadata.toolCalls).toBeUndefined();
      expect(model.requests[0]?.body.tools).toBeUndefined();
    } finally {
      await plain.close();
    }
  });
});
