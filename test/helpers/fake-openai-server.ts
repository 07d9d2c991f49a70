/**
 * A real HTTP server on 127.0.0.1 that imitates an OpenAI-compatible `/chat/completions` endpoint, so
 * tests exercise the AI SDK's real client code against the failures a provider has: 429, 5xx, 401, a slow
 * or stalled answer. Each test sets what the next requests get and reads how many arrived.
 */

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the server answers. */
export type FakeBehaviour =
  /** Streams the chunks; with `delayMs`, waits that long before each one (a slow model, to act mid-reply). */
  | { kind: 'stream'; chunks: string[]; delayMs?: number }
  | { kind: 'error'; status: number; message: string; headers?: Record<string, string> }
  /** Accepts the request and never answers. */
  | { kind: 'hang' }
  /** Sends the first chunks, then stops without closing. */
  | { kind: 'stall'; chunks: string[] }
  /** Asks for a tool call (finish reason `tool_calls`); the requests after it get `afterwards`. */
  | { kind: 'tool-call'; name: string; arguments: Record<string, unknown>; afterwards: FakeBehaviour };

/** A running fake server. */
export interface FakeOpenAIServer {
  /** The base URL to configure (ends in /v1). */
  baseUrl: string;
  /** Requests received on /chat/completions since the last reset. */
  readonly requests: Array<{ authorization: string | undefined; body: Record<string, unknown> }>;
  /** Sets the answer of every following request and clears the request log. */
  respond(behaviour: FakeBehaviour): void;
  close(): Promise<void>;
}

function chunkLine(
  model: string,
  delta: Record<string, unknown>,
  finishReason: string | null,
  extra = {},
): string {
  const chunk = {
    id: 'chatcmpl-fake',
    object: 'chat.completion.chunk',
    created: 1_700_000_000,
    model,
    choices: [{ index: 0, delta, finish_reason: finishReason }],
    ...extra,
  };
  return `data: ${JSON.stringify(chunk)}\n\n`;
}

/** Starts the fake server on a free port of 127.0.0.1. */
export async function startFakeOpenAIServer(): Promise<FakeOpenAIServer> {
  let behaviour: FakeBehaviour = { kind: 'stream', chunks: ['Hello', ' world'] };
  const requests: FakeOpenAIServer['requests'] = [];

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    let raw = '';
    for await (const piece of request) raw += piece;
    if (request.method !== 'POST' || !request.url?.endsWith('/chat/completions')) {
      response.writeHead(404, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: { message: `no route ${request.url}` } }));
      return;
    }
    const body = JSON.parse(raw) as Record<string, unknown>;
    requests.push({ authorization: request.headers.authorization, body });
    const model = String(body.model);
    const current = behaviour;
    if (current.kind === 'error') {
      response.writeHead(current.status, { 'content-type': 'application/json', ...current.headers });
      response.end(JSON.stringify({ error: { message: current.message, type: 'fake_error' } }));
      return;
    }
    if (current.kind === 'hang') return;
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    if (current.kind === 'tool-call') {
      behaviour = current.afterwards;
      const call = { name: current.name, arguments: JSON.stringify(current.arguments) };
      const toolCalls = [{ index: 0, id: `call_${requests.length}`, type: 'function', function: call }];
      response.write(chunkLine(model, { role: 'assistant', content: null, tool_calls: toolCalls }, null));
      const usage = { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 };
      response.write(chunkLine(model, {}, 'tool_calls', { usage }));
      response.end('data: [DONE]\n\n');
      return;
    }
    response.write(chunkLine(model, { role: 'assistant', content: '' }, null));
    for (const text of current.chunks) {
      if (current.kind === 'stream' && current.delayMs !== undefined) {
        await new Promise((resolve) => setTimeout(resolve, current.delayMs));
        if (response.destroyed) return; // the caller went away (or died) mid-reply
      }
      response.write(chunkLine(model, { content: text }, null));
    }
    if (current.kind === 'stall') return;
    const usage = {
      prompt_tokens: 7,
      completion_tokens: current.chunks.length,
      total_tokens: 7 + current.chunks.length,
    };
    response.write(chunkLine(model, {}, 'stop', { usage }));
    response.end('data: [DONE]\n\n');
  }

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      response.writeHead(500);
      response.end(String(error));
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
    close() {
      // Hung and stalled requests hold their sockets open; close them too.
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
