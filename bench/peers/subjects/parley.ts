/**
 * parley as a user sets it up in-process: `createPlatform()` with the repository's config (every module,
 * flatfile storage in a temp dir: each message an fsynced append) and the zero-latency AI SDK mock model as
 * its `llm` (bench/chat's). A turn is the chat contract's `message.send` on the bus — what the HTTP server
 * sends for a JSON (not streamed) reply, as the peers' `generate`/`invoke`/`generateText` calls are not
 * streamed either — with the session's history from storage within text_chat's token budget. Rate limiting
 * is off (a benchmark is not a person).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { newId } from '../../../src/core/ids.ts';
import type { Message, Session } from '../../../src/core/types.ts';
import { createPlatform } from '../../../src/platform/create-platform.ts';
import { createMockRegistry } from '../../chat/mock-model.ts';
import { shellConfigOverrides } from '../../config-overrides.ts';
import type { Subject } from './reply.ts';

export async function setup(): Promise<Subject> {
  const directory = await mkdtemp(join(tmpdir(), 'parley-peers-parley-'));
  const platform = await createPlatform({
    configDir: fileURLToPath(new URL('../../../config', import.meta.url)),
    llm: (observer) => createMockRegistry(undefined, observer),
    env: {
      NODE_ENV: 'production',
      CHAT_DATA_DIR: directory,
      CHAT_LOGGING__LEVEL: 'warn',
      CHAT_TEXT_CHAT__RATE_LIMITING__ENABLED: 'false',
      ...shellConfigOverrides(),
    },
  });
  const bus = platform.bus;
  const userId = 'user-1';
  return {
    async newSession() {
      return (await bus.request<Session>('session.start', { userId })).id;
    },
    async turn(sessionId, content) {
      const reply = await bus.request<Message>(
        'message.send',
        { userId, sessionId, content, stream: false },
        { correlationId: newId(), userId, sessionId, timeout: 120_000 },
      );
      return reply.content;
    },
    async storedMessages(sessionId) {
      const page = await bus.request<{ messages: Message[] }>('messages.list', {
        userId,
        sessionId,
        limit: 500,
      });
      return page.messages.length;
    },
    async close() {
      await platform.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
