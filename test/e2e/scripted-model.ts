/**
 * An "obey-anything" model for the browser tests: a real OpenAI-compatible HTTP server on 127.0.0.1 whose
 * streamed answer is chosen by a tag in the user's last message, so each test scripts the model by what it
 * types. It also plays a foreign image host: `GET /tracker.png` is counted, so a test can prove that a
 * remote image written by the model was never fetched.
 *
 * Tags: `[markdown]` a reply with a heading, a list and code, streamed slowly; `[attack]` HTML and links
 * that would run code if rendered raw; `[stall]` a few words, then nothing until the request is dropped;
 * `[fail]` HTTP 500 from the provider; `[cite]` an answer that cites source [1] (when the request holds
 * the user's documents as numbered sources); `[tool]` a call of the calculator, then an answer with its
 * result; `[again]` "Answer number n", n counting the `[again]` requests (so a regenerated reply differs
 * from the one it replaces); anything else: a short echo.
 */

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A running scripted model. */
export interface ScriptedModel {
  /** The base URL to configure (ends in /v1). */
  baseUrl: string;
  /** The origin of the fake image host (same server). */
  origin: string;
  /** How many times /tracker.png was requested. */
  readonly trackerHits: number;
  /** Requests to /chat/completions still open (a stalled one closes when the client gives up). */
  readonly openStreams: number;
  close(): Promise<void>;
}

/** The reply of `[markdown]`. */
export const MARKDOWN_REPLY = [
  '## Streaming works\n\n',
  'Here is a list:\n\n',
  '- first **bold** item\n',
  '- second item with `inline code`\n\n',
  '```typescript\n',
  'const answer: number = 42;\n',
  'function greet(name: string) {\n',
  '  return "hello " + name;\n',
  '}\n',
  '```\n\n',
  'And a [safe link](https://example.com/docs) to finish.',
].join('');

/** The reply of `[attack]`: every line tries to run code, load a remote image, or restyle the page. */
export function attackReply(origin: string): string {
  return [
    'Here you go:\n\n',
    '<script>window.__pwned = "script"</script>\n\n',
    '<img src=x onerror="window.__pwned = \'img-onerror\'">\n\n',
    `![tracking pixel](${origin}/tracker.png)\n\n`,
    `<img src="${origin}/tracker.png?raw=1" alt="raw remote image">\n\n`,
    '[click me](javascript:window.__pwned=%22markdown-link%22)\n\n',
    '<a href="javascript:window.__pwned=\'html-link\'">or me</a>\n\n',
    '<a href="JaVaScRiPt&colon;window.__pwned=\'entity-link\'">or me too</a>\n\n',
    '[data link](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)\n\n',
    '<iframe srcdoc="<script>parent.__pwned=\'iframe\'</script>"></iframe>\n\n',
    '<svg onload="window.__pwned=\'svg\'"><circle r="5"/></svg>\n\n',
    '<details open ontoggle="window.__pwned=\'details\'"><summary>x</summary>y</details>\n\n',
    '<form action="javascript:window.__pwned=\'form\'"><button>Submit</button></form>\n\n',
    '<style>body { display: none }</style>\n\n',
    '<p style="position:fixed;inset:0;background:red">overlay</p>\n\n',
    '[a real link](https://example.com/ok)\n',
  ].join('');
}

function chunkLine(delta: Record<string, unknown>, finishReason: string | null, extra = {}): string {
  const chunk = {
    id: 'chatcmpl-scripted',
    object: 'chat.completion.chunk',
    created: 1_700_000_000,
    model: 'scripted',
    choices: [{ index: 0, delta, finish_reason: finishReason }],
    ...extra,
  };
  return `data: ${JSON.stringify(chunk)}\n\n`;
}

/** Splits text into pieces of about `size` characters (what a model's tokens look like on the wire). */
function pieces(text: string, size: number): string[] {
  const result: string[] = [];
  for (let index = 0; index < text.length; index += size) result.push(text.slice(index, index + size));
  return result;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function lastUserMessage(body: Record<string, unknown>): string {
  const messages = (body.messages ?? []) as Array<{ role: string; content: unknown }>;
  const last = [...messages].reverse().find((message) => message.role === 'user');
  if (last === undefined) return '';
  if (typeof last.content === 'string') return last.content;
  // The AI SDK may send content parts.
  return (last.content as Array<{ text?: string }>).map((part) => part.text ?? '').join('');
}

/** Starts the scripted model on a free port of 127.0.0.1. */
export async function startScriptedModel(): Promise<ScriptedModel> {
  let trackerHits = 0;
  let openStreams = 0;
  /** Replies to `[again]` so far. */
  let numbered = 0;
  let origin = '';

  async function stream(response: ServerResponse, parts: string[], delayMs: number, stall = false) {
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    response.write(chunkLine({ role: 'assistant', content: '' }, null));
    for (const part of parts) {
      if (response.destroyed) return;
      response.write(chunkLine({ content: part }, null));
      await sleep(delayMs);
    }
    if (stall) return; // never finishes; the client's abort closes the socket
    const usage = { prompt_tokens: 10, completion_tokens: parts.length, total_tokens: 10 + parts.length };
    response.write(chunkLine({}, 'stop', { usage }));
    response.end('data: [DONE]\n\n');
  }

  /** Asks for one tool call, as OpenAI streams one. */
  function toolCall(response: ServerResponse, name: string, input: Record<string, unknown>) {
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const call = {
      index: 0,
      id: 'call_1',
      type: 'function',
      function: { name, arguments: JSON.stringify(input) },
    };
    response.write(chunkLine({ role: 'assistant', content: null, tool_calls: [call] }, null));
    response.write(
      chunkLine({}, 'tool_calls', { usage: { prompt_tokens: 10, completion_tokens: 3, total_tokens: 13 } }),
    );
    response.end('data: [DONE]\n\n');
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (request.method === 'GET' && request.url?.startsWith('/tracker.png')) {
      trackerHits++;
      response.writeHead(200, { 'content-type': 'image/png' });
      response.end();
      return;
    }
    let raw = '';
    for await (const piece of request) raw += piece;
    if (request.method !== 'POST' || !request.url?.endsWith('/chat/completions')) {
      response.writeHead(404, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: { message: `no route ${request.url}` } }));
      return;
    }
    const body = JSON.parse(raw) as Record<string, unknown>;
    const prompt = lastUserMessage(body);
    openStreams++;
    response.once('close', () => openStreams--);
    if (prompt.includes('[fail]')) {
      response.writeHead(500, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({ error: { message: 'the scripted model failed on purpose', type: 'server_error' } }),
      );
      return;
    }
    if (prompt.includes('[markdown]')) return stream(response, pieces(MARKDOWN_REPLY, 6), 25);
    // A long reply (about 8,000 characters with code), for how rendering keeps up as the text grows.
    if (prompt.includes('[long]')) return stream(response, pieces(MARKDOWN_REPLY.repeat(20), 8), 4);
    if (prompt.includes('[attack]')) return stream(response, pieces(attackReply(origin), 40), 5);
    if (prompt.includes('[cite]')) {
      const sources = JSON.stringify(body.messages).includes('[1]');
      const answer = sources
        ? 'According to your notes, the arctic tern migrates the farthest of any bird [1].'
        : 'No sources came with the question.';
      return stream(response, pieces(answer, 5), 5);
    }
    if (prompt.includes('[tool]')) {
      // First the calculator, then an answer from its result (what the tool message carries).
      const result = (body.messages as Array<{ role: string; content: string }>).find(
        (m) => m.role === 'tool',
      );
      if (result === undefined) return toolCall(response, 'calculator', { expression: '6 * 7' });
      return stream(response, pieces(`The calculator says ${JSON.parse(result.content).result}.`, 3), 5);
    }
    if (prompt.includes('[again]')) return stream(response, pieces(`Answer number ${++numbered}.`, 3), 5);
    if (prompt.includes('[stall]')) {
      return stream(response, ['I will ', 'think about ', 'that for a very ', 'long time'], 20, true);
    }
    return stream(response, pieces(`You said: ${prompt}`, 4), 5);
  }

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) response.writeHead(500);
      response.end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  origin = `http://127.0.0.1:${port}`;
  return {
    baseUrl: `${origin}/v1`,
    origin,
    get trackerHits() {
      return trackerHits;
    },
    get openStreams() {
      return openStreams;
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
