import { describe, expect, it } from 'vitest';
import { createDeadlines } from '../../core/deadlines.ts';
import { isPlatformError } from '../../core/errors.ts';
import type { Message } from '../../core/types.ts';
import { createMemoryStorage } from '../../storage/drivers/memory.ts';
import { readJsonLines } from '../../storage/json-lines.ts';
import type { Storage } from '../../storage/types.ts';
import { createSessionStore, messagesKey } from './sessions.ts';
import { createPendingUserMessage } from './user-message.ts';

/** A memory storage that records each append's lines (one entry per append call). */
function recordingStorage(): Storage & { appends: string[][] } {
  const inner = createMemoryStorage();
  const appends: string[][] = [];
  return {
    ...inner,
    append(key, data) {
      appends.push(new TextDecoder().decode(data).trimEnd().split('\n'));
      return inner.append(key, data);
    },
    appends,
  };
}

function message(role: 'user' | 'assistant', content: string, sessionId: string): Message {
  return {
    id: `${role}-${content}`,
    content,
    role,
    timestamp: new Date().toISOString(),
    metadata: { sessionId, turnId: 't1' },
  };
}

async function setup(windowMs: number) {
  const storage = recordingStorage();
  const sessions = createSessionStore(storage, { touchDelayMs: 60_000 });
  const session = await sessions.create('u1', { title: 'chat' });
  const user = message('user', 'Hi', session.id);
  const received: Message[] = [];
  const pending = createPendingUserMessage({
    storage,
    sessions,
    userId: 'u1',
    sessionId: session.id,
    message: user,
    windowMs,
    deadlines: createDeadlines(),
    onStored: async (stored) => void received.push(stored),
    onAppended: () => {},
  });
  const log = () => readJsonLines<Message>(storage, messagesKey('u1', session.id));
  return { storage, sessions, session, user, received, pending, log };
}

describe('the pending user message of a turn', () => {
  it('goes to the log in one append with a reply that comes within the window', async () => {
    const { storage, session, user, received, pending, log } = await setup(1_000);
    expect(pending.durable).toBe(false);
    await pending.storeWith(message('assistant', 'Hello', session.id));
    expect(storage.appends).toHaveLength(1);
    expect((await log()).map((stored) => stored.content)).toEqual(['Hi', 'Hello']);
    expect(received).toEqual([user]);
    expect(pending.durable).toBe(true);
  });

  it('is stored alone when the window ends first, and the reply after it', async () => {
    const { storage, session, received, pending, log } = await setup(5);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await log()).map((stored) => stored.content)).toEqual(['Hi']);
    expect(received).toHaveLength(1);
    await pending.storeWith(message('assistant', 'Hello', session.id));
    expect(storage.appends).toHaveLength(2);
    expect((await log()).map((stored) => stored.content)).toEqual(['Hi', 'Hello']);
  });

  it('is stored at once with a window of 0, and once only', async () => {
    const { storage, pending, log } = await setup(0);
    await pending.store();
    await pending.store();
    await pending.storeWith(undefined);
    expect(storage.appends).toHaveLength(1);
    expect((await log()).map((stored) => stored.content)).toEqual(['Hi']);
  });

  it('writes nothing into a session deleted meanwhile', async () => {
    const { storage, sessions, session, received, pending } = await setup(1_000);
    await sessions.delete('u1', session.id);
    const error = await pending.storeWith(message('assistant', 'Hello', session.id)).catch((e) => e);
    expect(isPlatformError(error, 'CHAT_ERR_NOT_FOUND')).toBe(true);
    expect(storage.appends).toHaveLength(0);
    expect(await storage.list('')).toEqual([]);
    expect(received).toHaveLength(0);
  });
});
