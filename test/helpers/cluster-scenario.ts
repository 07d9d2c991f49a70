/**
 * Three `parley serve` nodes on shared storage and the shared NATS, and the scenario every storage backend
 * must pass: a session started on one node is continued on a second and read on the third, and a reply
 * generated on one node streams to an SSE client connected to another.
 *
 * The nodes: `n1` and `n3` run every module; `n2` runs every module but text_chat
 * (`CHAT_TEXT_CHAT__ENABLED=false`), so a turn posted to `n2` is always generated on another node and its
 * deltas must cross NATS to reach the client. Each node has its own fake model server, so a test can
 * tell which node generated a reply, and slow down or stall one node's model.
 *
 * The Redis tests' cluster: `requireRedisAndNats` to run at all, `startClusterOnRedis` under a key prefix of
 * the test file's own, `stopClusterOnRedis` after.
 */

import { expect } from 'vitest';
import { readSse } from '../integration/http-harness.ts';
import { killAllNodes, type ParleyNode, startNode } from './cluster.ts';
import { deleteRedisPrefix } from './cluster-services.ts';
import { type FakeBehaviour, type FakeOpenAIServer, startFakeOpenAIServer } from './fake-openai-server.ts';
import { deleteStreams, NATS_URL, requireNats, uniquePrefix } from './nats.ts';
import { IN_CI, redisAnswers, TEST_REDIS_URL } from './redis-server.ts';

/** A user of the cluster and its API key. */
export interface ClusterUser {
  id: string;
  key: string;
}

/** Three running nodes with their models and users. */
export interface Cluster {
  /** `n1`, `n2` (no text_chat), `n3`, by name. */
  nodes: Record<'n1' | 'n2' | 'n3', ParleyNode>;
  /** Each node's model server, by node name. */
  models: Record<'n1' | 'n2' | 'n3', FakeOpenAIServer>;
  /** The admin key `n1` printed on its first start. */
  adminKey: string;
  alice: ClusterUser;
  /** The env every node got (storage and bus), for starting another node like them. */
  env(node: 'n1' | 'n2' | 'n3'): Record<string, string>;
  /** Sets what every node's model answers next (and clears their request logs). */
  respond(behaviour: FakeBehaviour): void;
  /** The names of the nodes whose model was asked something since the last `respond`. */
  generatedOn(): string[];
  /** Stops every node and model and deletes the NATS stream (storage clean-up is the caller's). */
  close(): Promise<void>;
}

/** Options of `startCluster`. */
export interface StartClusterOptions {
  /** `CHAT_STORAGE__*` variables: the shared storage. */
  storageEnv: Record<string, string>;
  /** More variables for every node. */
  env?: Record<string, string>;
}

/** The model name every node uses. */
export const CLUSTER_MODEL = 'fake:test-model';

/** Starts n1 (which creates the admin), then n2 and n3 together, and creates the user alice. */
export async function startCluster(options: StartClusterOptions): Promise<Cluster> {
  const streamPrefix = uniquePrefix();
  const names = ['n1', 'n2', 'n3'] as const;
  const models = {} as Cluster['models'];
  for (const name of names) models[name] = await startFakeOpenAIServer();
  const nodes = {} as Cluster['nodes'];

  const env = (name: 'n1' | 'n2' | 'n3'): Record<string, string> => ({
    ...options.storageEnv,
    CHAT_BUS__TRANSPORT: 'nats',
    CHAT_BUS__NATS__SERVERS: NATS_URL,
    CHAT_BUS__NATS__STREAM_PREFIX: streamPrefix,
    // The shared NATS keeps nothing of tests on its disk.
    CHAT_BUS__NATS__STREAM__STORAGE: 'memory',
    // Work events a killed node had taken go to another node after this long.
    CHAT_BUS__NATS__ACK_WAIT_MS: '2000',
    CHAT_BUS__NATS__RECONNECT_WAIT_MS: '200',
    // The read cache is per node and never hears of other nodes' writes: with it, a node lists (and sends
    // the model) a session log up to storage.cache.ttl_ms old. docs/operations.md: off on several nodes.
    CHAT_STORAGE__CACHE__ENABLED: 'false',
    // A turn whose node died is asked of another node after 2 s of silence; keeps the kill test short.
    CHAT_TEXT_CHAT__TURN_TIMEOUT_MS: '6000',
    CHAT_TEXT_CHAT__TURN_RECOVERY__HEARTBEAT_MS: '300',
    CHAT_TEXT_CHAT__TURN_RECOVERY__LOST_AFTER_MS: '2000',
    CHAT_LLM: JSON.stringify({
      default_model: CLUSTER_MODEL,
      max_retries: 0,
      request_timeout_ms: 5000,
      providers: {
        fake: { type: 'openai-compatible', base_url: models[name].baseUrl, models: ['test-model'] },
      },
    }),
    ...(name === 'n2' ? { CHAT_TEXT_CHAT__ENABLED: 'false' } : {}),
    ...options.env,
  });

  const cluster: Cluster = {
    nodes,
    models,
    adminKey: '',
    alice: { id: '', key: '' },
    env,
    respond(behaviour) {
      for (const name of names) models[name].respond(behaviour);
    },
    generatedOn: () => names.filter((name) => models[name].requests.length > 0),
    async close() {
      await Promise.all(names.map((name) => nodes[name]?.kill()));
      await Promise.all(names.map((name) => models[name].close()));
      await deleteStreams([streamPrefix]).catch(() => {});
    },
  };
  try {
    // One node first: on empty storage it creates the admin; the others then find it and create none.
    nodes.n1 = await startNode({ name: 'n1', env: env('n1') });
    const adminKey = nodes.n1.bootstrapKey;
    if (adminKey === undefined) throw new Error(`n1 printed no admin key:\n${nodes.n1.output}`);
    cluster.adminKey = adminKey;
    [nodes.n2, nodes.n3] = await Promise.all([
      startNode({ name: 'n2', env: env('n2') }),
      startNode({ name: 'n3', env: env('n3') }),
    ]);
    const created = await nodes.n2.call('POST', '/v1/users', { key: adminKey, body: { name: 'alice' } });
    if (created.status !== 201)
      throw new Error(`creating alice: ${created.status} ${JSON.stringify(created.body)}`);
    cluster.alice = { id: created.body.user.id, key: created.body.key };
  } catch (error) {
    await cluster.close();
    throw error;
  }
  return cluster;
}

/**
 * Whether a cluster test on the shared Redis and the shared NATS can run: both answer. Under CI a missing one
 * fails the test file; elsewhere the file's tests are skipped with a message.
 */
export async function requireRedisAndNats(what: string): Promise<boolean> {
  return (await requireRedis(what)) && (await requireNats(what));
}

async function requireRedis(what: string): Promise<boolean> {
  if (await redisAnswers(TEST_REDIS_URL)) return true;
  const message = `${what}: no Redis answers at ${TEST_REDIS_URL}`;
  if (IN_CI) throw new Error(`${message} (CI=true: a missing service is a failure)`);
  console.warn(`${message}; skipping`);
  return false;
}

/** A cluster storing on the shared Redis, its keys under `redisPrefix` (see `uniqueRedisPrefix`). */
export function startClusterOnRedis(redisPrefix: string, env?: Record<string, string>): Promise<Cluster> {
  return startCluster({
    storageEnv: {
      CHAT_STORAGE__BACKEND: 'redis',
      CHAT_STORAGE__REDIS__URL: TEST_REDIS_URL,
      CHAT_STORAGE__REDIS__PREFIX: redisPrefix,
    },
    ...(env === undefined ? {} : { env }),
  });
}

/**
 * Stops a cluster of `startClusterOnRedis` (undefined when it failed to start) and every node a test started
 * besides, then deletes the keys under `redisPrefix`.
 */
export async function stopClusterOnRedis(cluster: Cluster | undefined, redisPrefix: string): Promise<void> {
  await cluster?.close();
  await killAllNodes();
  await deleteRedisPrefix(TEST_REDIS_URL, redisPrefix);
}

/** A streamed turn as the SSE client saw it. */
export interface StreamedTurn {
  events: Array<{ event: string; data: unknown }>;
  /** The concatenated delta texts. */
  text: string;
  /** Set when the stream broke (the node died) instead of ending. */
  broken?: unknown;
}

/**
 * Posts a message to `node` as SSE and reads the stream to its end (or until it breaks). `onEvent` sees each
 * event as it arrives (a test can kill a node on the first delta).
 */
export async function streamTurn(
  node: ParleyNode,
  key: string,
  sessionId: string,
  content: string,
  onEvent?: (event: { event: string; data: unknown }) => void,
): Promise<StreamedTurn> {
  const response = await fetch(`${node.url}/v1/sessions/${sessionId}/messages?stream=sse`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ content }),
  });
  expect(response.status, await peekError(response)).toBe(200);
  const events: StreamedTurn['events'] = [];
  const turn: StreamedTurn = { events, text: '' };
  try {
    await readSse(response, (event) => {
      events.push(event);
      if (event.event === 'delta') turn.text += (event.data as { text: string }).text;
      onEvent?.(event);
    });
  } catch (error) {
    turn.broken = error;
  }
  return turn;
}

async function peekError(response: Response): Promise<string> {
  if (response.status === 200) return '';
  return `${response.status}: ${await response.clone().text()}`;
}

/** Message contents of a session as `node` lists them. */
export async function contentsOn(node: ParleyNode, key: string, sessionId: string): Promise<string[]> {
  const listed = await node.call('GET', `/v1/sessions/${sessionId}/messages`, { key });
  expect(listed.status, JSON.stringify(listed.body)).toBe(200);
  return (listed.body.messages as Array<{ content: string }>).map((message) => message.content);
}

/**
 * The basic scenario: a session created on n1 is continued on n2 and read on n3; a second turn on n3 is
 * read on every node, several times, so each node's caches are asked.
 */
export async function sessionAcrossNodes(cluster: Cluster): Promise<void> {
  const { n1, n2, n3 } = cluster.nodes;
  const { key } = cluster.alice;
  const created = await n1.call('POST', '/v1/sessions', { key, body: { title: 'roaming' } });
  expect(created.status).toBe(201);
  const sessionId = created.body.id as string;

  cluster.respond({ kind: 'stream', chunks: ['first ', 'reply'] });
  const first = await n2.call('POST', `/v1/sessions/${sessionId}/messages`, {
    key,
    body: { content: 'one' },
  });
  expect(first.status, JSON.stringify(first.body)).toBe(200);
  expect(first.body.content).toBe('first reply');
  // n2 has no text_chat: the turn ran on n1 or n3.
  expect(cluster.generatedOn()).not.toContain('n2');

  expect((await n3.call('GET', `/v1/sessions/${sessionId}`, { key })).body.metadata.title).toBe('roaming');
  expect(await contentsOn(n3, key, sessionId)).toEqual(['one', 'first reply']);

  cluster.respond({ kind: 'stream', chunks: ['second reply'] });
  const second = await n3.call('POST', `/v1/sessions/${sessionId}/messages`, {
    key,
    body: { content: 'two' },
  });
  expect(second.status, JSON.stringify(second.body)).toBe(200);
  // The model was sent the whole history, whichever node stored its first half.
  const [generator] = cluster.generatedOn() as Array<'n1' | 'n3'>;
  const sent = cluster.models[generator as 'n1' | 'n3'].requests[0]?.body.messages as Array<{
    content: unknown;
  }>;
  expect(JSON.stringify(sent)).toContain('first reply');

  const expected = ['one', 'first reply', 'two', 'second reply'];
  for (const node of [n1, n2, n3])
    expect(await contentsOn(node, key, sessionId), node.name).toEqual(expected);
  // More turns, each posted to the next node, each read back on every node: whichever node generates a
  // turn or answers a listing, it sees every message stored before, wherever it was stored.
  for (let turn = 3; turn <= 6; turn++) {
    cluster.respond({ kind: 'stream', chunks: [`reply ${turn}`] });
    const node = [n1, n2, n3][turn % 3] as ParleyNode;
    const posted = await node.call('POST', `/v1/sessions/${sessionId}/messages`, {
      key,
      body: { content: `message ${turn}` },
    });
    expect(posted.status, JSON.stringify(posted.body)).toBe(200);
    expected.push(`message ${turn}`, `reply ${turn}`);
    const [generator] = cluster.generatedOn() as Array<'n1' | 'n3'>;
    const sent = cluster.models[generator as 'n1' | 'n3'].requests[0]?.body.messages as Array<{
      role: string;
    }>;
    const history = sent.filter((message) => message.role !== 'system');
    expect(history, `turn ${turn} on ${generator}`).toHaveLength(expected.length - 1);
    for (const reader of [n1, n2, n3]) {
      expect(await contentsOn(reader, key, sessionId), `${reader.name} after turn ${turn}`).toEqual(expected);
    }
  }
  const sessions = await n1.call('GET', '/v1/sessions', { key });
  expect(sessions.body.sessions.map((session: { id: string }) => session.id)).toContain(sessionId);
}

/** A reply generated on n1 or n3 streams to an SSE client connected to n2. */
export async function streamAcrossNodes(cluster: Cluster): Promise<void> {
  const { n2, n3 } = cluster.nodes;
  const { key } = cluster.alice;
  const created = await n3.call('POST', '/v1/sessions', { key, body: { title: 'streamed' } });
  expect(created.status).toBe(201);
  const sessionId = created.body.id as string;

  const chunks = ['Streamed ', 'from ', 'another ', 'node.'];
  cluster.respond({ kind: 'stream', chunks, delayMs: 20 });
  const turn = await streamTurn(n2, key, sessionId, 'stream it to me');
  expect(turn.broken).toBeUndefined();
  expect(cluster.generatedOn()).toHaveLength(1);
  expect(cluster.generatedOn()).not.toContain('n2');
  const names = turn.events.map((event) => event.event);
  expect(names[0]).toBe('start');
  expect(names.at(-1)).toBe('end');
  expect(names).toContain('delta');
  expect(turn.text).toBe(chunks.join(''));
  const end = turn.events.at(-1)?.data as { message: { content: string; role: string } };
  expect(end.message).toMatchObject({ role: 'assistant', content: chunks.join('') });
  expect(await contentsOn(n3, key, sessionId)).toEqual(['stream it to me', chunks.join('')]);
}
