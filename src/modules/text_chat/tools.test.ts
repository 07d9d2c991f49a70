import { describe, expect, it } from 'vitest';
import { createToolCatalog } from './tools.ts';

const config = { enabled: true, max_steps: 5, call_timeout_ms: 1000, describe_cache_ms: 50 };
const turn = { userId: 'u1', sessionId: 's1', turnId: 't1' };

/** A context whose gather answers with `replies` (counting how often it is asked) and records requests. */
function fakeContext(replies: unknown[]) {
  const asked = { gathers: 0, requests: [] as { type: string; data: unknown; options: unknown }[] };
  const ctx = {
    gather: async () => {
      asked.gathers++;
      return { replies: replies.map((data) => ({ data })), failed: [], missing: [], timedOut: false };
    },
    request: async (type: string, data: unknown, options: unknown) => {
      asked.requests.push({ type, data, options });
      return { ok: true };
    },
    log: { warn() {}, info() {}, debug() {}, error() {} },
  };
  return { ctx: ctx as never, asked };
}

describe('the tool catalog', () => {
  it('offers the tools described, skips malformed ones and repeats, and calls a tool for the turn’s user', async () => {
    const { ctx, asked } = fakeContext([
      {
        tools: [
          { name: 'calculator', description: 'sums', inputSchema: { type: 'object' } },
          { name: 'Bad Name', description: 'x', inputSchema: { type: 'object' } },
          { name: 'no_schema', description: 'x' },
        ],
      },
      { tools: [{ name: 'calculator', description: 'another', inputSchema: { type: 'object' } }] },
    ]);
    const tools = await createToolCatalog(ctx, config).forTurn(turn);
    expect(Object.keys(tools ?? {})).toEqual(['calculator']);
    expect(tools?.calculator?.description).toBe('sums');
    await tools?.calculator?.execute?.({ expression: '1+1' }, { toolCallId: 'c1', signal: undefined });
    expect(asked.requests).toEqual([
      {
        type: 'tools.call.calculator',
        data: { userId: 'u1', sessionId: 's1', input: { expression: '1+1' } },
        options: { timeout: 1000, userId: 'u1', sessionId: 's1', correlationId: 't1' },
      },
    ]);
  });

  it('asks once per describe_cache_ms, and answers from the stale catalog while it asks again', async () => {
    const { ctx, asked } = fakeContext([]);
    const catalog = createToolCatalog(ctx, config);
    expect(await catalog.forTurn(turn)).toBeUndefined();
    await catalog.forTurn(turn);
    expect(asked.gathers).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(await catalog.forTurn(turn)).toBeUndefined();
    expect(asked.gathers).toBe(2);
  });

  it('offers nothing when tools are off', async () => {
    const { ctx, asked } = fakeContext([
      { tools: [{ name: 'calculator', description: 's', inputSchema: {} }] },
    ]);
    expect(await createToolCatalog(ctx, { ...config, enabled: false }).forTurn(turn)).toBeUndefined();
    expect(asked.gathers).toBe(0);
  });
});
