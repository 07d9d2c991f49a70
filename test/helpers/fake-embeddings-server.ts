/**
 * A real HTTP server on 127.0.0.1 that imitates an OpenAI-compatible `/embeddings` endpoint, so tests run
 * the AI SDK's real client code (batching, retries, errors) without a model. Its vectors are hashed bags
 * of words: deterministic, and texts that share words get similar vectors, which is enough to check that
 * dense retrieval finds the chunk that talks about the query's subject.
 */

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the server answers. */
export type FakeEmbeddingsBehaviour =
  | { kind: 'embed' }
  | { kind: 'error'; status: number; message: string; headers?: Record<string, string> }
  /** Returns one vector fewer than asked for. */
  | { kind: 'short' };

/** A running fake embeddings server. */
export interface FakeEmbeddingsServer {
  /** The base URL to configure (ends in /v1). */
  baseUrl: string;
  /** Requests received since the last `respond()`. */
  readonly requests: Array<{ authorization: string | undefined; body: { model: string; input: string[] } }>;
  /** Sets the answer of every following request and clears the request log. */
  respond(behaviour: FakeEmbeddingsBehaviour): void;
  close(): Promise<void>;
}

/** The vector the server gives `text`: words hashed (FNV-1a) into `dimension` buckets, unit length. */
export function hashedBagOfWords(text: string, dimension: number): number[] {
  const vector = new Array<number>(dimension).fill(0);
  for (const word of text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []) {
    let hash = 0x811c9dc5;
    for (let position = 0; position < word.length; position++) {
      hash = Math.imul(hash ^ word.charCodeAt(position), 0x01000193) >>> 0;
    }
    vector[hash % dimension]! += hash & 0x80000000 ? -1 : 1;
  }
  const length = Math.hypot(...vector) || 1;
  return vector.map((value) => value / length);
}

/** Starts the server on a free port of 127.0.0.1, giving vectors of `dimension`. */
export async function startFakeEmbeddingsServer(dimension = 32): Promise<FakeEmbeddingsServer> {
  let behaviour: FakeEmbeddingsBehaviour = { kind: 'embed' };
  const requests: FakeEmbeddingsServer['requests'] = [];

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    let raw = '';
    for await (const piece of request) raw += piece;
    if (request.method !== 'POST' || !request.url?.endsWith('/embeddings')) {
      response.writeHead(404, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: { message: `no route ${request.url}` } }));
      return;
    }
    const body = JSON.parse(raw) as { model: string; input: string | string[] };
    const input = typeof body.input === 'string' ? [body.input] : body.input;
    requests.push({ authorization: request.headers.authorization, body: { model: body.model, input } });
    if (behaviour.kind === 'error') {
      response.writeHead(behaviour.status, { 'content-type': 'application/json', ...behaviour.headers });
      response.end(JSON.stringify({ error: { message: behaviour.message, type: 'fake_error' } }));
      return;
    }
    const texts = behaviour.kind === 'short' ? input.slice(1) : input;
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(
      JSON.stringify({
        object: 'list',
        model: body.model,
        data: texts.map((text, index) => ({
          object: 'embedding',
          index,
          embedding: hashedBagOfWords(text, dimension),
        })),
        usage: { prompt_tokens: input.length, total_tokens: input.length },
      }),
    );
  }

  const server = createServer((request, response) => {
    handle(request, response).catch(() => {
      response.writeHead(500);
      response.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    respond(next) {
      behaviour = next;
      requests.length = 0;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
