/**
 * Agent conversations over real HTTP with a real OpenAI-compatible provider: two agents discuss a topic
 * for two rounds, each told its part and what the other said; the transcript is stored and read back by
 * its owner only; SSE streams it utterance by utterance; bad requests get 400s that say what is wrong.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpHarness, readSse, startHttpHarness } from './http-harness.ts';

let harness: HttpHarness;

beforeAll(async () => {
  harness = await startHttpHarness();
});

afterAll(async () => {
  await harness?.close();
});

interface ModelRequestBody {
  messages: { role: string; content: string }[];
}

describe('agent conversations', () => {
  it('runs the rounds, each agent told its part and what the others said, and stores the transcript', async () => {
    const { call, alice, bob, model } = harness;
    model.respond({ kind: 'stream', chunks: ['I think', ' so.'] });
    const started = await call('POST', '/v1/agent-conversations', {
      key: alice.key,
      body: {
        topic: 'Should the city close its main street to cars?',
        participants: [
          'optimist',
          { name: 'Shopkeeper', systemPrompt: 'You run a shop on the main street.' },
        ],
        rounds: 2,
      },
    });
    expect(started.status).toBe(201);
    const { conversation, transcript } = started.body;
    expect(conversation).toMatchObject({ status: 'done', rounds: 2, ownerId: alice.id });
    expect(transcript.map((u: { name: string; round: number }) => [u.round, u.name])).toEqual([
      [1, 'Optimist'],
      [1, 'Shopkeeper'],
      [2, 'Optimist'],
      [2, 'Shopkeeper'],
    ]);
    expect(transcript[0].content).toBe('I think so.');

    // Four model calls: the fourth is the Shopkeeper's second, which sees both of the Optimist's turns as
    // said to it, and its own first as its own.
    expect(model.requests).toHaveLength(4);
    const last = model.requests[3]?.body as unknown as ModelRequestBody;
    expect(last.messages[0]).toMatchObject({ role: 'system' });
    expect(last.messages[0]?.content).toContain('You run a shop on the main street.');
    expect(last.messages[0]?.content).toContain('You are Shopkeeper, in a conversation with Optimist');
    expect(last.messages.slice(1).map((message) => [message.role, message.content])).toEqual([
      ['user', 'The topic: Should the city close its main street to cars?'],
      ['user', 'Optimist: I think so.'],
      ['assistant', 'I think so.'],
      ['user', 'Optimist: I think so.'],
    ]);

    const read = await call('GET', `/v1/agent-conversations/${conversation.id}`, { key: alice.key });
    expect(read.status).toBe(200);
    expect(read.body.transcript).toHaveLength(4);
    expect((await call('GET', `/v1/agent-conversations/${conversation.id}`, { key: bob.key })).status).toBe(
      404,
    );
    const listed = await call('GET', '/v1/agent-conversations', { key: alice.key });
    expect(listed.body.conversations.map((c: { id: string }) => c.id)).toContain(conversation.id);
    expect((await call('GET', '/v1/agent-conversations', { key: bob.key })).body.conversations).toEqual([]);
  });

  it('streams a conversation over SSE: start, each utterance as it is written and once done, end', async () => {
    const { alice, model, baseUrl } = harness;
    model.respond({ kind: 'stream', chunks: ['Yes', '.'] });
    const response = await fetch(`${baseUrl}/v1/agent-conversations?stream=sse`, {
      method: 'POST',
      headers: { authorization: `Bearer ${alice.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ topic: 'Tea or coffee?', participants: ['optimist', 'skeptic'], rounds: 1 }),
    });
    const events = await readSse(response);
    const names = events.map((event) => event.event);
    expect(names[0]).toBe('start');
    expect(names.at(-1)).toBe('end');
    expect(names.filter((name) => name === 'utterance')).toHaveLength(2);
    const firstUtterance = names.indexOf('utterance');
    expect(names.indexOf('delta')).toBeLessThan(firstUtterance);
    expect(events.find((event) => event.event === 'utterance')?.data).toMatchObject({
      name: 'Optimist',
      content: 'Yes.',
    });
    expect(events.at(-1)?.data).toMatchObject({ conversation: { status: 'done' } });
  });

  it('answers a bad request with a 400 that says what is wrong', async () => {
    const { call, alice, baseUrl } = harness;
    // Streamed or not: refused before any stream starts, never an `error` event after a 200.
    const streamed = await fetch(`${baseUrl}/v1/agent-conversations?stream=sse`, {
      method: 'POST',
      headers: { authorization: `Bearer ${alice.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ topic: 'x', participants: ['optimist', 'skeptic'], rounds: 99 }),
    });
    expect(streamed.status).toBe(400);
    expect(((await streamed.json()) as { error: { message: string } }).error.message).toContain('rounds');
    const one = await call('POST', '/v1/agent-conversations', {
      key: alice.key,
      body: { topic: 'x', participants: ['optimist'] },
    });
    expect(one.status).toBe(400);
    expect(one.body.error.message).toContain('participants');
    const unknown = await call('POST', '/v1/agent-conversations', {
      key: alice.key,
      body: { topic: 'x', participants: ['optimist', 'nobody'] },
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toContain('no agent "nobody"');
    const tooLong = await call('POST', '/v1/agent-conversations', {
      key: alice.key,
      body: { topic: 'x', participants: ['optimist', 'skeptic'], rounds: 11 },
    });
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.error.message).toContain('multi_agent.max_rounds');
    expect(
      (await call('GET', '/v1/agents', { key: alice.key })).body.agents.map((a: { id: string }) => a.id),
    ).toEqual(['optimist', 'skeptic']);
  });
});

describe('agent conversations that stopped without finishing', () => {
  let short: HttpHarness;
  const AFTER_MS = 1_000;

  beforeAll(async () => {
    short = await startHttpHarness({ env: { CHAT_MULTI_AGENT__INTERRUPTED_AFTER_MS: String(AFTER_MS) } });
  });

  afterAll(async () => {
    await short?.close();
  });

  it('shows one whose node stopped mid-way as failed (interrupted), keeping its transcript', async () => {
    const { call, alice, bob, platform } = short;
    // What a node that crashed after the first utterance leaves behind: a `running` record, untouched since.
    const id = '01900000-0000-7000-8000-00000000abcd';
    const then = new Date(Date.now() - 2 * AFTER_MS).toISOString();
    const record = {
      id,
      ownerId: alice.id,
      topic: 'Tea or coffee?',
      participants: [
        { id: 'optimist', name: 'Optimist', systemPrompt: 'o' },
        { id: 'skeptic', name: 'Skeptic', systemPrompt: 's' },
      ],
      rounds: 2,
      status: 'running',
      createdAt: then,
      updatedAt: then,
    };
    const utterance = {
      id: 'u1',
      round: 1,
      agentId: 'optimist',
      name: 'Optimist',
      content: 'Tea.',
      time: then,
    };
    const encode = (value: unknown) => new TextEncoder().encode(`${JSON.stringify(value)}\n`);
    await platform.storage.write(`agents/conversations/${id}/participants.json`, encode(record));
    await platform.storage.append(`agents/conversations/${id}/transcript.jsonl`, encode(utterance));
    await platform.storage.append(`agents/owners/${alice.id}.jsonl`, encode({ id, createdAt: then }));

    const read = await call('GET', `/v1/agent-conversations/${id}`, { key: alice.key });
    expect(read.status).toBe(200);
    expect(read.body.conversation).toMatchObject({
      status: 'failed',
      error: { code: 'CHAT_ERR_AGENT_CONVERSATION_INTERRUPTED' },
    });
    expect(read.body.conversation.error.message).toContain('multi_agent.interrupted_after_ms');
    expect(read.body.transcript.map((u: { content: string }) => u.content)).toEqual(['Tea.']);
    const listed = await call('GET', '/v1/agent-conversations', { key: alice.key });
    expect(listed.body.conversations.find((c: { id: string }) => c.id === id)?.status).toBe('failed');
    // Still nobody else's.
    expect((await call('GET', `/v1/agent-conversations/${id}`, { key: bob.key })).status).toBe(404);
  });

  it('shows one under way on this node as running however slow, and refreshes its record at every utterance', async () => {
    const { call, alice, model, platform } = short;
    // Each utterance takes about 1.2 s, longer than interrupted_after_ms: four of them.
    model.respond({ kind: 'stream', chunks: ['Slow', ' words.'], delayMs: 600 });
    const running = call('POST', '/v1/agent-conversations', {
      key: alice.key,
      body: { topic: 'Tea or coffee?', participants: ['optimist', 'skeptic'], rounds: 2 },
    });
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    // Newest first: the one under way.
    const newest = async () =>
      (await call('GET', '/v1/agent-conversations', { key: alice.key })).body.conversations[0] as {
        id: string;
        status: string;
      };
    // Before its first utterance is done its record is older than the limit: this node knows it runs it.
    await sleep(AFTER_MS + 100);
    const first = await newest();
    expect(first.status).toBe('running');
    // What another node reads (it runs nothing): the stored record changed at the last utterance.
    await sleep(1_900);
    const bytes = await platform.storage.read(`agents/conversations/${first.id}/participants.json`);
    const stored = JSON.parse(new TextDecoder().decode(bytes)) as { status: string; updatedAt: string };
    expect(stored.status).toBe('running');
    expect(Date.now() - Date.parse(stored.updatedAt)).toBeLessThan(1_500);
    const done = await running;
    expect(done.body.conversation.status).toBe('done');
    expect(done.body.transcript).toHaveLength(4);
  }, 15_000);
});
