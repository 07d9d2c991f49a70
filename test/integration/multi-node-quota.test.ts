import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Cluster,
  requireRedisAndNats,
  startClusterOnRedis,
  stopClusterOnRedis,
} from '../helpers/cluster-scenario.ts';
import { uniqueRedisPrefix } from '../helpers/redis-server.ts';

// Three `parley serve` processes on the shared Redis and the shared NATS, with a small storage quota: a
// user's chat turns are stored by whichever of the two text_chat nodes (n1, n3) takes them, each of which
// counts the user's bytes itself. Each counts her again from storage every
// `resource_limits.storage_quota_recount_ms`, so the limit holds across the nodes: without that, each node
// would let her store up to the limit on its own count, about twice the limit in all.

const available = await requireRedisAndNats('multi-node quota');
const redisPrefix = uniqueRedisPrefix('multi-node-quota');
const LIMIT_BYTES = 40_000;
/** A message of this many characters, stored with its short reply: about 2.3 KB a turn. */
const MESSAGE_CHARACTERS = 2_000;

describe.skipIf(!available)('the storage quota across three parley nodes on Redis and NATS', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startClusterOnRedis(redisPrefix, {
      CHAT_RESOURCE_LIMITS__MAX_STORAGE_PER_USER: `${LIMIT_BYTES}B`,
      CHAT_RESOURCE_LIMITS__STORAGE_QUOTA_RECOUNT_MS: '200',
      // Her messages are the test's whole load: no per-minute limit in the way.
      CHAT_TEXT_CHAT__RATE_LIMITING__ENABLED: 'false',
    });
  }, 90_000);

  afterAll(async () => {
    await stopClusterOnRedis(cluster, redisPrefix);
  });

  it('a user filling her quota through both text_chat nodes is refused near the limit, not near twice it', async () => {
    const { n1, n2, n3 } = cluster.nodes;
    const { key, id } = cluster.alice;
    cluster.respond({ kind: 'stream', chunks: ['ok'] });
    const sessionId = (await n1.call('POST', '/v1/sessions', { key, body: {} })).body.id as string;
    const content = 'q'.repeat(MESSAGE_CHARACTERS);
    const nodes = [n1, n2, n3];
    let accepted = 0;
    let refused: { status: number; body: { error?: { code?: string } } } | undefined;
    for (let turn = 0; turn < 60 && refused === undefined; turn++) {
      const answer = await nodes[turn % 3]!.call('POST', `/v1/sessions/${sessionId}/messages`, {
        key,
        body: { content },
      });
      if (answer.status === 200) accepted += 1;
      else refused = answer;
      // A user typing, not a flood: the nodes count each other's writes within the recount interval.
      await new Promise((resolve) => setTimeout(resolve, 60));
    }
    expect(refused?.status, JSON.stringify(refused?.body)).toBe(413);
    expect(refused?.body.error?.code).toBe('CHAT_ERR_STORAGE_QUOTA_EXCEEDED');
    // Both text_chat nodes stored her turns (the bus spreads them), so neither count alone saw them all.
    expect(cluster.generatedOn().sort()).toEqual(['n1', 'n3']);
    const turnsInLimit = LIMIT_BYTES / (MESSAGE_CHARACTERS + 300);
    expect(accepted).toBeGreaterThan(turnsInLimit * 0.7);
    // Each node alone would have let her store about the limit: about twice as many turns in all.
    expect(accepted).toBeLessThan(turnsInLimit * 1.3);
    // What she stores, as a node that counts her from storage sees it (n2 stored nothing of hers).
    const { storage } = (await n2.call('GET', `/v1/users/${id}`, { key: cluster.adminKey })).body;
    expect(storage.limitBytes).toBe(LIMIT_BYTES);
    expect(storage.usedBytes).toBeLessThan(LIMIT_BYTES * 1.3);
  });
});
