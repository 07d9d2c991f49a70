import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAllNodes, type ParleyNode, startNode, waitFor } from '../helpers/cluster.ts';
import {
  type DurableRedis,
  readSessionLog,
  requireRedisServerBinary,
  startDurableRedis,
} from '../helpers/cluster-services.ts';
import { medianAndMax, startTraffic, type Traffic } from '../helpers/cluster-traffic.ts';
import { type FakeOpenAIServer, startFakeOpenAIServer } from '../helpers/fake-openai-server.ts';
import {
  type OwnNatsServer,
  requireNatsServerBinary,
  startOwnNatsServer,
  uniquePrefix,
} from '../helpers/nats.ts';

// Redis crashes and comes back, then NATS does, while two `parley serve` nodes take steady traffic. During
// each outage every request is answered at once with a 503 in the documented error shape (no hang, no
// 500) and /readyz says which dependency is down; afterwards the same processes serve again by themselves,
// and every write the API acknowledged — before, during or after — is still there.
//
// Redis and NATS here are this file's own servers on free ports (never the shared 6379/4222): Redis with
// `appendonly yes --appendfsync always`, NATS with JetStream file storage, as docs/operations.md says to
// run them for history that must not be lost, so a crash and restart keeps what they acknowledged. (With
// Redis's default `everysec`, a slow disk makes Redis reply before writing its file, and a crash then
// loses up to 2 s of acknowledged writes: this test failed so once on a loaded CI machine.)

const available = (await requireRedisServerBinary('faults')) && requireNatsServerBinary('faults');

/** A request not answered within this is a hang: well below every timeout parley has (5 s and more). */
const HANG_LIMIT_MS = 3000;
const REDIS_PREFIX = 'parley-faults:';

describe.skipIf(!available)('Redis and NATS restarted under traffic', () => {
  let redis: DurableRedis;
  let nats: OwnNatsServer;
  let model: FakeOpenAIServer;
  let nodes: ParleyNode[];
  let key: string;
  let sessionIds: string[];

  beforeAll(async () => {
    [redis, nats, model] = await Promise.all([
      startDurableRedis('always'),
      startOwnNatsServer(),
      startFakeOpenAIServer(),
    ]);
    model.respond({ kind: 'stream', chunks: ['ok'] });
    const env = {
      CHAT_STORAGE__BACKEND: 'redis',
      CHAT_STORAGE__REDIS__URL: redis.url,
      CHAT_STORAGE__REDIS__PREFIX: REDIS_PREFIX,
      CHAT_STORAGE__CACHE__ENABLED: 'false',
      CHAT_BUS__TRANSPORT: 'nats',
      CHAT_BUS__NATS__SERVERS: nats.url,
      CHAT_BUS__NATS__STREAM_PREFIX: uniquePrefix(),
      CHAT_BUS__NATS__ACK_WAIT_MS: '2000',
      // The traffic sends more than a user may per minute.
      CHAT_TEXT_CHAT__RATE_LIMITING__ENABLED: 'false',
      CHAT_LLM: JSON.stringify({
        default_model: 'fake:test-model',
        max_retries: 0,
        providers: { fake: { type: 'openai-compatible', base_url: model.baseUrl, models: ['test-model'] } },
      }),
    };
    const first = await startNode({ name: 'f1', env });
    nodes = [first, await startNode({ name: 'f2', env })];
    key = first.bootstrapKey as string;
    sessionIds = [];
    for (const node of nodes) {
      const created = await node.call('POST', '/v1/sessions', { key, body: { title: 'traffic' } });
      expect(created.status).toBe(201);
      sessionIds.push(created.body.id);
    }
  }, 90_000);

  afterAll(async () => {
    await killAllNodes();
    await Promise.all([redis?.dispose(), nats?.dispose(), model?.close()]);
  });

  /**
   * Runs traffic, crashes a service (`kill`), checks what clients get during the outage, brings it back
   * (`start`), waits for every node to serve again, and checks every answer and every acknowledged write.
   */
  async function outage(options: {
    dependency: 'storage' | 'bus';
    code: string;
    kill(): Promise<void>;
    start(): Promise<void>;
  }): Promise<void> {
    const pids = nodes.map((node) => node.pid);
    const traffic = startTraffic({ nodes, key, sessionIds, callTimeoutMs: 10_000, pauseMs: 20 });
    let traffic503s: number[] = [];
    let recoveryMs = 0;
    try {
      await waitFor(() => traffic.samples.filter((sample) => sample.status < 300).length >= 6, 'traffic');
      const killedAt = Date.now();
      await options.kill();
      // Every node notices, and keeps refusing while the service is down.
      await waitFor(
        () =>
          nodes.every(
            (node) => traffic.after(killedAt, node.name).filter((s) => s.status === 503).length >= 4,
          ),
        'each node to answer 503s',
      );
      for (const node of nodes) {
        const ready = await node.call('GET', '/readyz');
        expect(ready.status, `${node.name} /readyz during the outage`).toBe(503);
        expect(ready.body[options.dependency].healthy).toBe(false);
        expect(ready.body[options.dependency].message).toEqual(expect.any(String));
      }
      await options.start();
      const restartedAt = Date.now();
      await waitFor(
        () =>
          nodes.every(
            (node) => traffic.after(restartedAt, node.name).filter((s) => s.status < 300).length >= 4,
          ),
        'every node to serve again',
        20_000,
      );
      recoveryMs = Math.max(
        ...nodes.map((node) => {
          const first = traffic.after(restartedAt, node.name).find((sample) => sample.status < 300);
          return first === undefined ? 0 : first.sentAt + first.milliseconds - restartedAt;
        }),
      );
      traffic503s = traffic
        .after(killedAt)
        .filter((s) => s.status === 503)
        .map((s) => s.milliseconds);
    } finally {
      await traffic.stop();
    }

    checkAnswers(traffic, options.code);
    await checkAcknowledged(traffic);
    for (const node of nodes) {
      expect((await node.call('GET', '/readyz')).status, `${node.name} /readyz after`).toBe(200);
    }
    // Recovered without a restart: the same processes.
    expect(nodes.map((node) => node.pid)).toEqual(pids);
    expect(nodes.every((node) => !node.exited)).toBe(true);

    const latency = medianAndMax(traffic503s);
    console.info(
      `${options.dependency} outage: ${traffic.samples.length} requests, ${traffic503s.length} answered 503 ` +
        `(median ${latency.median.toFixed(0)} ms, max ${latency.max.toFixed(0)} ms); ` +
        `serving again ${recoveryMs.toFixed(0)} ms after the restart; ` +
        `${traffic.acknowledgedTurns.length} turns and ${traffic.acknowledgedSessions.length} sessions acknowledged`,
    );
  }

  /** Each answer is a success or a quick, well-formed 503 — never a 500, another error, or a hang. */
  function checkAnswers(traffic: Traffic, code: string): void {
    const wrong = traffic.samples.filter((sample) => sample.status >= 300 && sample.status !== 503);
    expect(wrong, 'answers other than 2xx or 503').toEqual([]);
    for (const sample of traffic.samples.filter((s) => s.status === 503)) {
      expect(sample, 'a 503 in the error shape').toMatchObject({ errorShaped: true, code });
      expect(sample.retryAfter).toMatch(/^\d+$/);
      expect(
        sample.milliseconds,
        `${sample.operation} on ${sample.node} refused without hanging`,
      ).toBeLessThan(HANG_LIMIT_MS);
    }
  }

  /** Every acknowledged turn is in its session's log (read from Redis itself), once; every session exists. */
  async function checkAcknowledged(traffic: Traffic): Promise<void> {
    expect(traffic.acknowledgedTurns.length).toBeGreaterThan(0);
    const users = await nodes[0]?.call('GET', '/v1/me', { key });
    const userId = users?.body.user.id as string;
    const logs = new Map<string, Awaited<ReturnType<typeof readSessionLog>>>();
    for (const sessionId of new Set(traffic.acknowledgedTurns.map((turn) => turn.sessionId))) {
      const log = await readSessionLog(redis.url, REDIS_PREFIX, userId, sessionId);
      expect(new Set(log.map((message) => message.id)).size, 'message ids are unique').toBe(log.length);
      logs.set(sessionId, log);
    }
    for (const turn of traffic.acknowledgedTurns) {
      const log = logs.get(turn.sessionId) ?? [];
      expect(
        log.filter((message) => message.content === turn.content),
        turn.content,
      ).toHaveLength(1);
      expect(
        log.some((message) => message.id === turn.replyId),
        `reply to ${turn.content}`,
      ).toBe(true);
    }
    for (const sessionId of traffic.acknowledgedSessions) {
      expect((await nodes[1]?.call('GET', `/v1/sessions/${sessionId}`, { key }))?.status).toBe(200);
    }
  }

  it('Redis crashes (SIGKILL) and restarts: 503 at once meanwhile, recovery without a restart, nothing acknowledged lost', async () => {
    await outage({
      dependency: 'storage',
      code: 'CHAT_ERR_STORAGE_UNAVAILABLE',
      kill: () => redis.kill(),
      start: () => redis.start(),
    });
  }, 60_000);

  it('NATS crashes (SIGKILL) and restarts: 503 at once meanwhile, recovery without a restart, nothing acknowledged lost', async () => {
    await outage({
      dependency: 'bus',
      code: 'CHAT_ERR_BUS_UNAVAILABLE',
      kill: () => nats.kill(),
      start: () => nats.start(),
    });
  }, 60_000);
});
