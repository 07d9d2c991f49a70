import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ParleyNode } from '../helpers/cluster.ts';
import {
  type Cluster,
  requireRedisAndNats,
  startClusterOnRedis,
  stopClusterOnRedis,
} from '../helpers/cluster-scenario.ts';
import { uniqueRedisPrefix } from '../helpers/redis-server.ts';

// Three `parley serve` processes on the shared Redis and the shared NATS: a user's documents are the same on
// every node. Each node's rag keeps the owner's index in memory once it has served the owner, so every
// test first has each node serve alice, then changes her documents on one node and reads them on the
// others. Uploads and `?content=1` reads use the rag module of the node the request came to (its own
// copy, whatever node answers over the bus); queries, listings and deletes go over the bus, so each is
// asked several times per node, and every answer, from whichever node's rag, must be current.

const available = await requireRedisAndNats('multi-node rag');
const redisPrefix = uniqueRedisPrefix('multi-node-rag');
/** Asked of each node this many times when the answer may come from any node's rag. */
const ASKED = 6;
/** A document id no one has: reading it through a node's own rag makes that rag load the owner. */
const NO_DOCUMENT = `doc_${'0'.repeat(32)}`;

interface Hit {
  docId: string;
  text: string;
  start: number;
  end: number;
}

describe.skipIf(!available)('documents on three parley nodes on Redis and NATS', () => {
  let cluster: Cluster;
  let nodes: ParleyNode[];
  let key: string;

  beforeAll(async () => {
    cluster = await startClusterOnRedis(redisPrefix);
    nodes = [cluster.nodes.n1, cluster.nodes.n2, cluster.nodes.n3];
    key = cluster.alice.key;
  }, 90_000);

  afterAll(() => stopClusterOnRedis(cluster, redisPrefix));

  /** Uploads one file to `node` (multipart, through that node's own rag); returns its docId. */
  async function upload(
    node: ParleyNode,
    name: string,
    content: string,
  ): Promise<{ docId: string; status: string }> {
    const form = new FormData();
    form.append('file', new Blob([content], { type: 'text/markdown' }), name);
    const response = await fetch(`${node.url}/v1/documents`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}` },
      body: form,
    });
    const body = (await response.json()) as { documents: Array<{ docId: string; status: string }> };
    expect(response.status, `${node.name}: ${JSON.stringify(body)}`).toBe(200);
    return body.documents[0]!;
  }

  /** The document's stored text as `node`'s own rag has it, or the status when it has none. */
  async function contentOn(node: ParleyNode, docId: string): Promise<string | number> {
    const read = await node.call('GET', `/v1/documents/${docId}?content=1`, { key });
    return read.status === 200 ? read.body.content : read.status;
  }

  /** `POST /v1/documents/query` on `node`, ASKED times (answered by any node's rag); every answer. */
  async function queries(node: ParleyNode, query: string): Promise<Hit[][]> {
    const answers: Hit[][] = [];
    for (let round = 0; round < ASKED; round++) {
      const asked = await node.call('POST', '/v1/documents/query', { key, body: { query, topK: 5 } });
      expect(asked.status, `${node.name}: ${JSON.stringify(asked.body)}`).toBe(200);
      answers.push(asked.body.hits);
    }
    return answers;
  }

  /** Has every node's rag (and the bus's) serve alice, so each holds a copy of her index. */
  async function serveAliceEverywhere(query: string): Promise<void> {
    for (const node of nodes) {
      expect(await contentOn(node, NO_DOCUMENT)).toBe(404);
      await queries(node, query);
    }
  }

  it('a document uploaded on node 1 is found and cited on nodes 2 and 3', async () => {
    const { n1, n2, n3 } = cluster.nodes;
    await serveAliceEverywhere('Albatross fuel');
    // Chat turns before the upload, until each text_chat node (n1, n3) has answered one: each then knows
    // alice has no documents and stops asking for them — until rag's knowledge.changed reaches it.
    const sessionId = (await n2.call('POST', '/v1/sessions', { key, body: {} })).body.id as string;
    const turnsUntil = async (generator: string, check: (citations: unknown) => void) => {
      for (let attempt = 0; attempt < 30; attempt++) {
        cluster.respond({ kind: 'stream', chunks: ['212 litres [1].'] });
        const reply = await n2.call('POST', `/v1/sessions/${sessionId}/messages`, {
          key,
          body: { content: 'How much fuel does the Albatross carry?' },
        });
        expect(reply.status, JSON.stringify(reply.body)).toBe(200);
        check(reply.body.metadata.citations);
        if (cluster.generatedOn().includes(generator)) return;
      }
      throw new Error(`no turn was generated on ${generator} in 30 attempts`);
    };
    const uncited = (citations: unknown) => expect(citations).toBeUndefined();
    await turnsUntil('n1', uncited);
    await turnsUntil('n3', uncited);
    const manual = '# Albatross\n\n## Fuel\n\nThe Albatross carries 212 litres of fuel in two wing tanks.\n';
    const { docId, status } = await upload(n1, 'albatross.md', manual);
    expect(status).toBe('added');

    for (const node of [n2, n3]) {
      expect(await contentOn(node, docId), node.name).toBe(manual);
      for (const hits of await queries(node, 'How much fuel does the Albatross carry?')) {
        expect(
          hits.map((hit) => hit.docId),
          node.name,
        ).toEqual([docId]);
        expect(manual.slice(hits[0]!.start, hits[0]!.end)).toBe(hits[0]!.text);
      }
    }

    // n3 heard of the upload on n1 (knowledge.changed over NATS): its turns ask again, and cite it.
    await turnsUntil('n3', (citations) => expect(citations).toEqual([expect.objectContaining({ docId })]));
    // A chat turn posted to n2 (which has no text_chat) is answered on n1 or n3, with the passage.
    for (const node of [n2, n3]) {
      cluster.respond({ kind: 'stream', chunks: ['212 litres [1].'] });
      const reply = await node.call('POST', `/v1/sessions/${sessionId}/messages`, {
        key,
        body: { content: 'How much fuel does the Albatross carry?' },
      });
      expect(reply.status, JSON.stringify(reply.body)).toBe(200);
      expect(reply.body.metadata.citations, node.name).toEqual([
        expect.objectContaining({ docId, title: 'Albatross', heading: 'Albatross > Fuel' }),
      ]);
      const [generator] = cluster.generatedOn() as Array<'n1' | 'n3'>;
      const sent = JSON.stringify(cluster.models[generator!].requests[0]?.body.messages);
      expect(sent).toContain('The Albatross carries 212 litres of fuel');
    }
  });

  it('a document deleted on node 2 is gone on nodes 1 and 3', async () => {
    const { n1, n2, n3 } = cluster.nodes;
    const notes = '# Hangar\n\nThe hangar door code changes every Monday.\n';
    const { docId } = await upload(n3, 'hangar.md', notes);
    await serveAliceEverywhere('hangar door code');
    for (const node of nodes) expect(await contentOn(node, docId), node.name).toBe(notes);

    const deleted = await n2.call('DELETE', `/v1/documents/${docId}`, { key });
    expect(deleted.status, JSON.stringify(deleted.body)).toBe(204);

    for (const node of [n1, n3]) {
      expect(await contentOn(node, docId), node.name).toBe(404);
      for (const hits of await queries(node, 'hangar door code')) {
        expect(
          hits.map((hit) => hit.docId),
          node.name,
        ).not.toContain(docId);
      }
      const listed = await node.call('GET', '/v1/documents', { key });
      expect(listed.body.documents.map((document: { docId: string }) => document.docId)).not.toContain(docId);
      const passage = await node.call('GET', `/v1/documents/${docId}/passage?start=0&end=10`, { key });
      expect(passage.status, node.name).toBe(404);
    }
    // Never cited after deletion: a chat turn about it gets no citation.
    const sessionId = (await n1.call('POST', '/v1/sessions', { key, body: {} })).body.id as string;
    cluster.respond({ kind: 'stream', chunks: ['I do not know.'] });
    const reply = await n3.call('POST', `/v1/sessions/${sessionId}/messages`, {
      key,
      body: { content: 'What is the hangar door code?' },
    });
    expect(reply.status).toBe(200);
    expect(JSON.stringify(reply.body.metadata.citations ?? [])).not.toContain(docId);
    const [generator] = cluster.generatedOn() as Array<'n1' | 'n3'>;
    expect(JSON.stringify(cluster.models[generator!].requests[0]?.body.messages)).not.toContain(
      'door code changes',
    );
  });

  it('a document replaced on node 3 is found with its new content on node 1', async () => {
    const { n1, n3 } = cluster.nodes;
    const before = '# Engine\n\nThe engine is a four-cylinder boxer of 80 horsepower.\n';
    const after = '# Engine\n\nThe engine is a turboprop of 450 shaft horsepower.\n';
    const { docId } = await upload(n1, 'engine.md', before);
    await serveAliceEverywhere('engine horsepower');
    expect(await contentOn(n1, docId)).toBe(before);

    expect(await upload(n3, 'engine.md', after)).toEqual(
      expect.objectContaining({ docId, status: 'updated' }),
    );

    expect(await contentOn(n1, docId)).toBe(after);
    for (const hits of await queries(n1, 'turboprop shaft horsepower')) {
      expect(hits[0]?.docId).toBe(docId);
      expect(hits[0]?.text).toContain('turboprop of 450 shaft horsepower');
    }
    for (const hits of await queries(n1, 'four-cylinder boxer')) {
      expect(hits.map((hit) => hit.docId)).not.toContain(docId);
    }
    const passage = await n1.call('GET', `/v1/documents/${docId}/passage?start=0&end=${after.length}`, {
      key,
    });
    expect(passage.body.text).toBe(after);
  });

  it('documents uploaded on all three nodes at the same time are all kept, and every node has them all', async () => {
    await serveAliceEverywhere('wing');
    const uploads = nodes.flatMap((node) =>
      Array.from({ length: 4 }, (_, n) => ({
        node,
        name: `${node.name}-part${n}.md`,
        content: `# Part ${n} from ${node.name}\n\nInspection item ${node.name}${n}: check the wing bolts.\n`,
      })),
    );
    const added = await Promise.all(uploads.map((item) => upload(item.node, item.name, item.content)));
    for (const node of nodes) {
      for (const [position, { docId }] of added.entries()) {
        expect(await contentOn(node, docId), `${node.name} ${uploads[position]!.name}`).toBe(
          uploads[position]!.content,
        );
      }
      const listed = await node.call('GET', '/v1/documents', { key });
      const names = listed.body.documents.map((document: { filename: string }) => document.filename);
      expect(names).toEqual(expect.arrayContaining(uploads.map((item) => item.name)));
    }
  });
});
