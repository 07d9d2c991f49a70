/**
 * GET /metrics over real HTTP: who may read it (an admin key or the metrics token by default; anyone when
 * public; nobody when metrics are off), and that a chat turn shows up in it — the HTTP request by its
 * route pattern, the handlers by event type and module, the model call with its tokens, the storage
 * backend's calls — with no session id, user id or message text anywhere in the scrape.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpHarness, readSse, startHttpHarness, TEST_MODEL } from './http-harness.ts';

const METRICS_TOKEN = 'scrape-token-0123456789abcdef';

/** The value of the first exposition line that starts with `series` (name and labels), or undefined. */
function sample(scrape: string, series: string): number | undefined {
  const line = scrape.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('/metrics, private by default', () => {
  let harness: HttpHarness;

  beforeAll(async () => {
    harness = await startHttpHarness({ env: { CHAT_OBSERVABILITY__METRICS__BEARER_TOKEN: METRICS_TOKEN } });
  });
  afterAll(async () => {
    await harness?.close();
  });

  it('answers an admin key and the metrics token; 401 without either, 403 for a user', async () => {
    const { call, admin, alice } = harness;
    const anonymous = await call('GET', '/metrics');
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error.code).toBe('CHAT_ERR_AUTH_UNAUTHENTICATED');
    expect((await call('GET', '/metrics', { key: 'wrong-token-0123456789abcdef' })).status).toBe(401);
    const user = await call('GET', '/metrics', { key: alice.key });
    expect(user.status).toBe(403);
    expect(user.body.error.code).toBe('CHAT_ERR_AUTH_FORBIDDEN');

    for (const key of [admin.key, METRICS_TOKEN]) {
      const scrape = await call('GET', '/metrics', { key });
      expect(scrape.status).toBe(200);
      expect(scrape.headers.get('content-type')).toContain('text/plain');
      expect(scrape.body).toContain('# TYPE parley_http_request_duration_seconds histogram');
      // Node's own process metrics, under the names dashboards expect.
      expect(scrape.body).toContain('process_cpu_seconds_total');
      expect(scrape.body).toContain('nodejs_eventloop_lag_seconds');
    }
    // The metrics token opens /metrics only: it is no API key.
    expect((await call('GET', '/v1/sessions', { key: METRICS_TOKEN })).status).toBe(401);
  });

  it('counts a chat turn by route pattern, handler, model and storage operation, naming no user data', async () => {
    const { call, admin, alice, model } = harness;
    // The fake provider reports 7 prompt tokens and one completion token per chunk.
    model.respond({ kind: 'stream', chunks: ['Hello', ' there'] });
    const session = await call('POST', '/v1/sessions', { key: alice.key, body: { title: 'secret title' } });
    const content = 'a private message about metrics';
    const turn = await call('POST', `/v1/sessions/${session.body.id}/messages`, {
      key: alice.key,
      body: { content },
    });
    expect(turn.status).toBe(200);
    await call('GET', `/v1/sessions/${session.body.id}`, { key: harness.bob.key });

    const scrape = (await call('GET', '/metrics', { key: admin.key })).body as string;
    const route = '/v1/sessions/:id/messages';
    expect(
      sample(
        scrape,
        `parley_http_request_duration_seconds_count{method="POST",route="${route}",status_code="200"}`,
      ),
    ).toBe(1);
    // Another user's session is a 404, counted under the route's pattern like any other.
    expect(
      sample(
        scrape,
        'parley_http_request_duration_seconds_count{method="GET",route="/v1/sessions/:id",status_code="404"}',
      ),
    ).toBe(1);
    expect(
      sample(scrape, 'parley_handler_duration_seconds_count{type="message.send",module="text_chat"}'),
    ).toBe(1);
    expect(sample(scrape, 'parley_events_emitted_total{type="chat.response"}')).toBe(1);
    expect(
      sample(scrape, `parley_llm_request_duration_seconds_count{model="${TEST_MODEL}",outcome="ok"}`),
    ).toBe(1);
    expect(sample(scrape, `parley_llm_time_to_first_token_seconds_count{model="${TEST_MODEL}"}`)).toBe(1);
    expect(sample(scrape, `parley_llm_tokens_total{model="${TEST_MODEL}",kind="input"}`)).toBe(7);
    expect(sample(scrape, `parley_llm_tokens_total{model="${TEST_MODEL}",kind="output"}`)).toBe(2);
    expect(
      sample(
        scrape,
        'parley_storage_operation_duration_seconds_count{backend="flatfile",operation="append"}',
      ),
    ).toBeGreaterThanOrEqual(1);

    for (const secret of [session.body.id, alice.id, alice.key, content, 'secret title']) {
      expect(scrape).not.toContain(secret);
    }
  });

  it('times a streamed reply too, until its end', async () => {
    const { call, admin, alice, model, baseUrl } = harness;
    model.respond({ kind: 'stream', chunks: ['streamed'], delayMs: 50 });
    const session = await call('POST', '/v1/sessions', { key: alice.key, body: {} });
    const response = await fetch(`${baseUrl}/v1/sessions/${session.body.id}/messages?stream=sse`, {
      method: 'POST',
      headers: { authorization: `Bearer ${alice.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ content: 'stream it' }),
    });
    const events = await readSse(response);
    expect(events.at(-1)?.event).toBe('end');
    const scrape = (await call('GET', '/metrics', { key: admin.key })).body as string;
    const series =
      'parley_http_request_duration_seconds{method="POST",route="/v1/sessions/:id/messages",status_code="200"}';
    // Two turns so far (one JSON, one streamed); the streamed one took the model's 50 ms and more.
    expect(sample(scrape, series.replace('seconds{', 'seconds_count{'))).toBe(2);
    expect(sample(scrape, series.replace('seconds{', 'seconds_sum{'))).toBeGreaterThan(0.05);
  });

  it('counts a failed model call by its error code', async () => {
    const { call, admin, alice, model } = harness;
    model.respond({ kind: 'error', status: 401, message: 'bad key' });
    const session = await call('POST', '/v1/sessions', { key: alice.key, body: {} });
    const failed = await call('POST', `/v1/sessions/${session.body.id}/messages`, {
      key: alice.key,
      body: { content: 'hello' },
    });
    expect(failed.body.error.code).toBe('CHAT_ERR_LLM_AUTH');
    const scrape = (await call('GET', '/metrics', { key: admin.key })).body as string;
    expect(
      sample(
        scrape,
        `parley_llm_request_duration_seconds_count{model="${TEST_MODEL}",outcome="CHAT_ERR_LLM_AUTH"}`,
      ),
    ).toBe(1);
  });
});

describe('/metrics when public or off', () => {
  it('is open to anyone when observability.metrics.public is true', async () => {
    const harness = await startHttpHarness({ env: { CHAT_OBSERVABILITY__METRICS__PUBLIC: 'true' } });
    try {
      const scrape = await harness.call('GET', '/metrics');
      expect(scrape.status).toBe(200);
      expect(scrape.body).toContain('parley_events_emitted_total');
    } finally {
      await harness.close();
    }
  });

  it('is not served when observability.metrics.enabled is false', async () => {
    const harness = await startHttpHarness({ env: { CHAT_OBSERVABILITY__METRICS__ENABLED: 'false' } });
    try {
      expect(harness.platform.metrics).toBeUndefined();
      const scrape = await harness.call('GET', '/metrics', { key: harness.admin.key });
      expect(scrape.status).toBe(404);
      expect(scrape.body.error.code).toBe('CHAT_ERR_NOT_FOUND');
    } finally {
      await harness.close();
    }
  });
});
