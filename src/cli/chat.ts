/**
 * `parley chat`: a terminal REPL that streams replies as they are written. Each line is a message;
 * `/new` starts a new session, `/exit` (or Ctrl-D) quits, Ctrl-C stops a reply being written (and quits at
 * an empty prompt). Lines may also be piped in: `echo "hello" | parley chat --url … --key …`.
 */

import { createInterface } from 'node:readline';
import { isPlatformError } from '../core/errors.ts';
import {
  type ChatConnection,
  ChatRequestError,
  connectInProcess,
  connectOverHttp,
} from './chat-connection.ts';

export interface ChatOptions {
  /** A running server; without it, the platform runs in this process with the local config. */
  url?: string;
  /** The API key for `url` (default: the PARLEY_API_KEY environment variable). */
  key?: string;
  /** The user for in-process mode (default `admin`). */
  user?: string;
  configDir?: string;
  input?: NodeJS.ReadableStream;
  output?: NodeJS.WritableStream;
}

function describe(error: unknown): string {
  if (error instanceof ChatRequestError) return `${error.message} (${error.code})`;
  if (isPlatformError(error)) return `${error.message} (${error.code})`;
  return error instanceof Error ? error.message : String(error);
}

/** Runs the REPL until the input ends or the user quits; resolves to the exit code. */
export async function chat(options: ChatOptions = {}): Promise<number> {
  const output = options.output ?? process.stdout;
  const input = options.input ?? process.stdin;
  const write = (text: string) => output.write(text);
  const key = options.key ?? process.env.PARLEY_API_KEY;
  const url = options.url ?? process.env.PARLEY_URL;

  let connection: ChatConnection;
  try {
    if (url !== undefined) {
      if (key === undefined) {
        process.stderr.write('parley chat: --url needs --key (or PARLEY_API_KEY)\n');
        return 2;
      }
      connection = await connectOverHttp(url, key);
    } else {
      connection = await connectInProcess(options.configDir, options.user);
    }
  } catch (error) {
    process.stderr.write(`parley chat: ${describe(error)}\n`);
    return 1;
  }

  const interactive = (input as NodeJS.ReadStream).isTTY === true;
  const lines = createInterface({ input, output, terminal: interactive });
  // Taken at once: lines piped in while the session starts would otherwise be emitted to nobody.
  const incoming = lines[Symbol.asyncIterator]();
  let running: AbortController | undefined;
  lines.on('SIGINT', () => {
    if (running !== undefined) running.abort();
    else lines.close();
  });

  try {
    let session = await connection.startSession();
    write(
      `parley chat — ${connection.description}, session ${session.id}\n` +
        'Type a message. /new starts a new session, /exit quits; Ctrl-C stops a reply.\n',
    );
    lines.setPrompt('> ');
    if (interactive) lines.prompt();
    for await (const line of { [Symbol.asyncIterator]: () => incoming }) {
      const text = line.trim();
      if (text === '/exit' || text === '/quit') break;
      if (text === '/new') {
        session = await connection.startSession();
        write(`new session ${session.id}\n`);
      } else if (text !== '') {
        running = new AbortController();
        let streamed = false;
        try {
          const reply = await connection.send(
            session.id,
            text,
            (delta) => {
              streamed = true;
              write(delta);
            },
            running.signal,
          );
          if (!streamed) write(reply.content);
          write(reply.metadata.finishReason === 'cancelled' ? ' [stopped]\n' : '\n');
        } catch (error) {
          if (running.signal.aborted) write(' [stopped]\n');
          else write(`${streamed ? '\n' : ''}error: ${describe(error)}\n`);
        } finally {
          running = undefined;
        }
      }
      if (interactive) lines.prompt();
    }
    return 0;
  } catch (error) {
    process.stderr.write(`parley chat: ${describe(error)}\n`);
    return 1;
  } finally {
    lines.close();
    await connection.close();
  }
}
