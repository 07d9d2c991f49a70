/**
 * OpenTelemetry tracing over real HTTP, exported over OTLP/HTTP to a receiver: a chat turn whose request
 * carries a W3C `traceparent` is one trace — the HTTP request's span under the caller's, the text_chat
 * handler under the request, the model call and the storage append under the handler, and the events the
 * turn emits handled in the same trace — while health checks leave no spans, and a turn that fails marks
 * its spans as errors.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/cluster.ts';
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from '../helpers/otlp-receiver.ts';
import { type HttpHarness, startHttpHarness, TEST_MODEL } from './http-harness.ts';

const SERVER = 2;
const CLIENT = 3;
const CONSUMER = 5;
const ERROR = 2;

let receiver: OtlpReceiver;
let harness: HttpHarness;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  harness = await startHttpHarness({
    env: {
      CHAT_OBSERVABILITY__TRACING__ENABLED: 'true',
      CHAT_OBSERVABILITY__TRACING__ENDPOINT: receiver.url,
      CHAT_OBSERVABILITY__TRACING__EXPORT_DELAY_MS: '20',
      CHAT_OBSERVABILITY__TRACING__SERVICE_NAME: 'parley-test',
    },
  });
});

afterAll(async () => {
  await harness?.close();
  await receiver?.close();
});

/** A random W3C traceparent, as a caller's tracer would send it. */
function callerTraceparent(): { header: string; traceId: string; parentId: string } {
  const hex = (bytes: number) => Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString('hex');
  const traceId = hex(16);
  const parentId = hex(8);
  return { header: `00-${traceId}-${parentId}-01`, traceId, parentId };
}

/** The one span of `trace` named `name` (fails the test when there is none or several). */
function only(trace: ReceivedSpan[], name: string): ReceivedSpan {
  const found = trace.filter((span) => span.name === name);
  expect(
    found.map((span) => span.name),
    `spans named "${name}"`,
  ).toEqual([name]);
  return found[0] as ReceivedSpan;
}

describe('tracing a chat turn', () => {
  it('makes the turn one trace under the caller’s span: request, handler, model call, storage, events', async () => {
    const { call, alice, model } = harness;
    model.respond({ kind: 'stream', chunks: ['Hello', ' there'] });
    const session = await call('POST', '/v1/sessions', { key: alice.key, body: {} });
    const caller = callerTraceparent();
    const turn = await call('POST', `/v1/sessions/${session.body.id}/messages`, {
      key: alice.key,
      body: { content: 'trace me' },
      headers: { traceparent: caller.header },
    });
    expect(turn.status).toBe(200);
    const trace = () => receiver.spans.filter((span) => span.traceId === caller.traceId);
    await waitFor(() => trace().some((span) => span.name === `chat ${TEST_MODEL}`), 'the model call’s span');
    await waitFor(() => trace().some((span) => span.name === 'chat.response.end http'), 'the gateway’s span');

    const request = only(trace(), 'POST /v1/sessions/:id/messages');
    expect(request).toMatchObject({ kind: SERVER, parentSpanId: caller.parentId, service: 'parley-test' });
    expect(request.attributes).toMatchObject({
      'http.request.method': 'POST',
      'http.route': '/v1/sessions/:id/messages',
      'http.response.status_code': 200,
    });
    const handler = only(trace(), 'message.send text_chat');
    expect(handler).toMatchObject({ kind: CONSUMER, parentSpanId: request.spanId });
    const modelCall = only(trace(), `chat ${TEST_MODEL}`);
    expect(modelCall).toMatchObject({ kind: CLIENT, parentSpanId: handler.spanId });
    expect(modelCall.attributes).toMatchObject({
      'gen_ai.request.model': 'test-model',
      'gen_ai.usage.input_tokens': 7,
      'gen_ai.usage.output_tokens': 2,
    });
    // When the reply's first text came, within the call.
    const firstText = modelCall.attributes['parley.llm.time_to_first_token_seconds'] as number;
    expect(firstText).toBeGreaterThan(0);
    expect(firstText * 1000).toBeLessThanOrEqual(modelCall.durationMs + 1);
    const appends = trace().filter((span) => span.name === 'storage append');
    expect(appends.length).toBeGreaterThanOrEqual(1);
    for (const append of appends) {
      expect(append.parentSpanId).toBe(handler.spanId);
      expect(append.attributes['parley.storage.backend']).toBe('flatfile');
    }
    // An event text_chat emitted, handled by the HTTP gateway, continues the handler's span.
    expect(only(trace(), 'chat.response.end http').parentSpanId).toBe(handler.spanId);
    // Nothing of the message's text or the user's key is in any span.
    const everything = JSON.stringify(trace());
    expect(everything).not.toContain('trace me');
    expect(everything).not.toContain(alice.key);
  });

  it('starts a new trace for a request without traceparent, and leaves health checks untraced', async () => {
    const { call, alice } = harness;
    const before = receiver.spans.length;
    expect((await call('GET', '/healthz')).status).toBe(200);
    expect((await call('GET', '/readyz')).status).toBe(200);
    const listed = await call('GET', '/v1/sessions', { key: alice.key });
    expect(listed.status).toBe(200);
    await waitFor(
      () => receiver.spans.slice(before).some((span) => span.name === 'GET /v1/sessions'),
      'the span',
    );
    const spans = receiver.spans.slice(before);
    expect(spans.filter((span) => span.name.includes('/healthz') || span.name.includes('/readyz'))).toEqual(
      [],
    );
    const listing = spans.find((span) => span.name === 'GET /v1/sessions') as ReceivedSpan;
    expect(listing.parentSpanId).toBe('');
    expect(listing.traceId).toMatch(/^[0-9a-f]{32}$/);
  });

  it('marks a failed model call and its handler as errors, with the error code', async () => {
    const { call, alice, model } = harness;
    model.respond({ kind: 'error', status: 401, message: 'bad key' });
    const session = await call('POST', '/v1/sessions', { key: alice.key, body: {} });
    const caller = callerTraceparent();
    const failed = await call('POST', `/v1/sessions/${session.body.id}/messages`, {
      key: alice.key,
      body: { content: 'hello' },
      headers: { traceparent: caller.header },
    });
    expect(failed.body.error.code).toBe('CHAT_ERR_LLM_AUTH');
    const trace = () => receiver.spans.filter((span) => span.traceId === caller.traceId);
    await waitFor(() => trace().some((span) => span.name === 'POST /v1/sessions/:id/messages'), 'the spans');
    await waitFor(() => trace().some((span) => span.name === 'message.send text_chat'), 'the handler span');
    const modelCall = only(trace(), `chat ${TEST_MODEL}`);
    expect(modelCall.statusCode).toBe(ERROR);
    expect(modelCall.attributes['error.type']).toBe('CHAT_ERR_LLM_AUTH');
    const handler = only(trace(), 'message.send text_chat');
    expect(handler.statusCode).toBe(ERROR);
    expect(handler.attributes['error.type']).toBe('CHAT_ERR_LLM_AUTH');
  });
});
