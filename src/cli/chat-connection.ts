/**
 * What `parley chat` talks to: a running server over HTTP (`--url`, `--key`; replies streamed as SSE), or
 * the platform in this process with the local config (the same bus requests the server makes). The REPL
 * only sees this interface.
 */

import type { Message, Session } from '../core/types.ts';
import { createPlatform } from '../platform/create-platform.ts';
import { bootstrapAdmin, createAuth } from '../security/auth.ts';
import { chatGatewayOptionsFrom, createChatGateway } from '../server/chat-gateway.ts';
import type { ToolEvent } from '../server/turn-hub.ts';
import { formatBootstrapNotice } from './bootstrap-notice.ts';

/**
 * Printed when the node generating a reply died and another starts it over (a terminal cannot take back
 * the text already shown).
 */
const RESTART_NOTICE = '\n[the node answering stopped; another node starts the reply over]\n';

/** What the terminal shows of a tool the model called (the stream's `tool` events), as a line of its own. */
export function toolNotice(event: { phase?: string; name?: string; error?: string }): string | undefined {
  if (event.phase === 'call') return `\n[using ${event.name}…]\n`;
  if (event.phase === 'result' && event.error !== undefined)
    return `[${event.name} failed: ${event.error}]\n`;
  return undefined;
}

/** One way to reach text_chat. */
export interface ChatConnection {
  /** Where and as whom, for the greeting. */
  description: string;
  startSession(): Promise<Session>;
  /** Sends `content`, streams the reply through `onDelta`, resolves with the stored reply. */
  send(
    sessionId: string,
    content: string,
    onDelta: (text: string) => void,
    signal: AbortSignal,
  ): Promise<Message>;
  close(): Promise<void>;
}

/** An error the server answered with: its code and message. */
export class ChatRequestError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'ChatRequestError';
    this.code = code;
  }
}

async function errorOf(response: Response): Promise<ChatRequestError> {
  const text = await response.text();
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
    return new ChatRequestError(body.error?.code ?? `HTTP_${response.status}`, body.error?.message ?? text);
  } catch {
    return new ChatRequestError(`HTTP_${response.status}`, text || response.statusText);
  }
}

/** Parses a server-sent event stream into `{ event, data }` pairs (data parsed as JSON). */
export async function* readServerSentEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<{ event: string; data: unknown }> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let boundary = buffer.indexOf('\n\n');
    while (boundary !== -1) {
      const block = buffer.slice(0, boundary);
      buffer = buffer.slice(boundary + 2);
      boundary = buffer.indexOf('\n\n');
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length > 0) yield { event, data: JSON.parse(data.join('\n')) as unknown };
    }
  }
}

/** Talks to a running server at `url` with the API key `key`. */
export async function connectOverHttp(url: string, key: string): Promise<ChatConnection> {
  const base = url.replace(/\/+$/, '');
  const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
  const me = await fetch(`${base}/v1/me`, { headers });
  if (!me.ok) throw await errorOf(me);
  const { user } = (await me.json()) as { user: { name: string } };

  return {
    description: `${base} as ${user.name}`,
    async startSession() {
      const response = await fetch(`${base}/v1/sessions`, { method: 'POST', headers, body: '{}' });
      if (!response.ok) throw await errorOf(response);
      return (await response.json()) as Session;
    },
    async send(sessionId, content, onDelta, signal) {
      const response = await fetch(
        `${base}/v1/sessions/${encodeURIComponent(sessionId)}/messages?stream=sse`,
        {
          method: 'POST',
          headers,
          body: JSON.stringify({ content }),
          signal,
        },
      );
      if (!response.ok || response.body === null) throw await errorOf(response);
      for await (const { event, data } of readServerSentEvents(response.body)) {
        if (event === 'delta') onDelta((data as { text: string }).text);
        else if (event === 'restart') onDelta(RESTART_NOTICE);
        else if (event === 'tool') {
          const notice = toolNotice(data as { phase?: string; name?: string; error?: string });
          if (notice !== undefined) onDelta(notice);
        } else if (event === 'end') return (data as { message: Message }).message;
        else if (event === 'error') {
          const { error } = data as { error: { code: string; message: string } };
          throw new ChatRequestError(error.code, error.message);
        }
      }
      throw new ChatRequestError('CHAT_ERR_INTERNAL', 'the stream ended without a reply');
    },
    async close() {},
  };
}

/**
 * Runs the platform in this process, as user `userName` (default `admin`). On an empty data folder it
 * creates the admin first and prints its key once, as `parley serve` does. Use it when no server runs on
 * the same data folder.
 */
export async function connectInProcess(
  configDir: string | undefined,
  userName?: string,
): Promise<ChatConnection> {
  const platform = await createPlatform({
    ...(configDir === undefined ? {} : { configDir }),
    // The REPL owns the terminal: logs go to stderr, and only warnings unless asked for more.
    logDestination: process.stderr,
    env: { ...process.env, CHAT_LOGGING__LEVEL: process.env.CHAT_LOGGING__LEVEL ?? 'warn' },
  });
  try {
    const auth = createAuth(platform.storage);
    const created = await bootstrapAdmin(auth, platform.audit);
    if (created !== undefined) {
      const { host, port } = platform.config.server;
      process.stdout.write(
        formatBootstrapNotice(created.user.name, created.apiKey.key, `http://${host}:${port}`),
      );
    }
    const name = userName ?? 'admin';
    const user = await auth.users.findByName(name);
    if (user === undefined) {
      throw new ChatRequestError('CHAT_ERR_NOT_FOUND', `no user named "${name}": pass --user <name>`);
    }
    const chat = createChatGateway(platform.bus, chatGatewayOptionsFrom(platform.config));
    return {
      description: `in-process (data in ${platform.config.data_dir}) as ${user.name}`,
      startSession: () => chat.startSession(user.id),
      send(sessionId, content, onDelta, signal) {
        const onRestart = () => onDelta(RESTART_NOTICE);
        const onTool = (event: ToolEvent) => {
          const notice = toolNotice(event);
          if (notice !== undefined) onDelta(notice);
        };
        return chat.stream(
          { userId: user.id, sessionId, content },
          { onDelta, onRestart, onTool },
          { signal },
        ).done;
      },
      async close() {
        chat.close();
        await platform.close();
      },
    };
  } catch (error) {
    await platform.close();
    throw error;
  }
}
