import { describe, expect, it } from 'vitest';
import { createMetrics, MAX_LABEL_VALUES } from './metrics.ts';

describe('createMetrics', () => {
  it('keeps at most MAX_LABEL_VALUES values of a label a caller can vary, counting the rest as "other"', async () => {
    const metrics = createMetrics({ processMetrics: false });
    for (let index = 0; index < MAX_LABEL_VALUES + 50; index++) {
      metrics.llm.callEnded(`openai:model-${index}`, 0.1, { inputTokens: 1, outputTokens: 1 });
    }
    const { body } = await metrics.render();
    const series = body
      .split('\n')
      .filter((line) => line.startsWith('parley_llm_request_duration_seconds_count'));
    expect(series).toHaveLength(MAX_LABEL_VALUES + 1);
    expect(body).toContain('parley_llm_request_duration_seconds_count{model="other",outcome="ok"} 50');
    expect(body).toContain('parley_llm_tokens_total{model="other",kind="output"} 50');
  });

  it('labels a request no route matched as "unmatched", never by its path', async () => {
    const metrics = createMetrics({ processMetrics: false });
    metrics.http.requestCompleted('GET', undefined, 404, 0.001);
    metrics.http.requestCompleted('GET', '/v1/sessions/:id', 200, 0.002);
    const { body, contentType } = await metrics.render();
    expect(contentType).toContain('text/plain');
    expect(body).toContain(
      'parley_http_request_duration_seconds_count{method="GET",route="unmatched",status_code="404"} 1',
    );
    expect(body).toContain(
      'parley_http_request_duration_seconds_count{method="GET",route="/v1/sessions/:id",status_code="200"} 1',
    );
    expect(body).not.toContain('process_cpu_seconds_total');
  });

  it('gives each platform a registry of its own', async () => {
    const first = createMetrics({ processMetrics: false });
    const second = createMetrics({ processMetrics: false });
    first.bus.eventEmitted?.('chat.response');
    expect((await first.render()).body).toContain('parley_events_emitted_total{type="chat.response"} 1');
    expect((await second.render()).body).not.toContain('type="chat.response"');
  });
});
