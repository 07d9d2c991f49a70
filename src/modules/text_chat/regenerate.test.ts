import { afterEach, describe, expect, it } from 'vitest';
import { createLocalNetwork } from '../../bus/local.ts';
import type { PlatformError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import type { ModuleDefinition } from '../../core/module.ts';
import type { Message, Session } from '../../core/types.ts';
import textChat from './index.ts';
import { type Harness, startHarness } from './test-harness.ts';
import type { ChatResponseDelta, ChatResponseError, MessagesPage } from './types.ts';

const alone = new Map<string, ModuleDefinition<never, unknown>>([['text_chat', textChat as never]]);

const harnesses: Harness[] = [];
afterEach(async () => {
  for (const harness of harnesses.splice(0)) await harness.close();
});

async function start(textChatConfig: Record<string, unknown> = {}): Promise<Harness> {
  const harness = await startHarness({ modules: { text_chat: textChatConfig }, definitions: alone });
  harnesses.push(harness);
  return harness;
}

async function newSession(harness: Harness, userId = 'u1'): Promise<Session> {
  return harness.bus.request<Session>('session.start', { userId });
}

function send(harness: Harness, sessionId: string, content: string, reply: string[]): Promise<Message> {
  harness.script({ kind: 'reply', chunks: reply });
  return harness.bus.request<Message>(
    'message.send',
    { userId: 'u1', sessionId, content },
    { correlationId: newId(), timeout: 10_000 },
  );
}

function regenerate(harness: Harness, data: Record<string, unknown>, turnId = newId()): Promise<Message> {
  return harness.bus.request<Message>('message.regenerate', data, { correlationId: turnId, timeout: 10_000 });
}

function failure(promise: Promise<unknown>): Promise<PlatformError> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error as PlatformError,
  );
}

/** What the model was sent in a call (the newest by default): role and text of each prompt message. */
function promptOf(harness: Harness, call = -1): string[] {
  return harness.calls.at(call)!.prompt.map((message) => {
    const text =
      typeof message.content === 'string'
        ? message.content
        : message.content.map((part) => ('text' in part ? part.text : '')).join('');
    return `${message.role}: ${text}`;
  });
}

async function listed(harness: Harness, sessionId: string, extra: Record<string, unknown> = {}) {
  const page = await harness.bus.request<MessagesPage>('messages.list', {
    userId: 'u1',
    sessionId,
    ...extra,
  });
  return page.messages.map((message) => `${message.role}: ${message.content}`);
}

describe('message.regenerate', () => {
  // With the history cache on, later turns slide the window they kept; with it off, every turn walks
  // the log anew: the replaced reply must stay out either way.
  for (const [name, cache] of [
    ['with the history cache', {}],
    ['without it', { history_cache: { max_bytes: 0 } }],
  ] as const) {
    it(`answers the last message again from its own history and replaces the reply everywhere (${name})`, async () => {
      const harness = await start(cache);
      const session = await newSession(harness);
      await send(harness, session.id, 'What is 2+2?', ['Five.']);
      await send(harness, session.id, 'Name a colour', ['Blue.']);

      harness.script({ kind: 'reply', chunks: ['Red', '.'] });
      const turnId = newId();
      const reply = await regenerate(harness, { userId: 'u1', sessionId: session.id }, turnId);
      const replaced = (
        await harness.bus.request<MessagesPage>('messages.list', {
          userId: 'u1',
          sessionId: session.id,
          include: 'replaced',
        })
      ).messages.find((message) => message.content === 'Blue.')!;
      expect(reply).toMatchObject({
        role: 'assistant',
        content: 'Red.',
        metadata: { sessionId: session.id, turnId, replaces: replaced.id, finishReason: 'stop' },
      });
      // The model saw the conversation up to the last user message, without the reply it replaces.
      expect(promptOf(harness)).toEqual(['user: What is 2+2?', 'assistant: Five.', 'user: Name a colour']);
      // Streamed like a turn: deltas then the end event, under the regeneration's turn id.
      const deltas = harness.events('chat.response.delta').filter((event) => event.correlationId === turnId);
      expect(deltas.map((event) => (event.data as ChatResponseDelta).text).join('')).toBe('Red.');
      expect(harness.events('chat.response.end').at(-1)!.data).toMatchObject({ turnId, message: reply });
      // No user message was stored again.
      expect(harness.events('message.received')).toHaveLength(2);

      expect(await listed(harness, session.id)).toEqual([
        'user: What is 2+2?',
        'assistant: Five.',
        'user: Name a colour',
        'assistant: Red.',
      ]);
      // Append-only: the replaced reply is still in the log, and listed on request.
      expect(await listed(harness, session.id, { include: 'replaced' })).toEqual([
        'user: What is 2+2?',
        'assistant: Five.',
        'user: Name a colour',
        'assistant: Blue.',
        'assistant: Red.',
      ]);

      await send(harness, session.id, 'And another?', ['Green.']);
      expect(promptOf(harness)).toEqual([
        'user: What is 2+2?',
        'assistant: Five.',
        'user: Name a colour',
        'assistant: Red.',
        'user: And another?',
      ]);
    });
  }

  it('replaces the newest reply when asked again, with the model and temperature asked for', async () => {
    const harness = await start();
    const session = await newSession(harness);
    const original = await send(harness, session.id, 'Tell a joke', ['Joke one.']);
    harness.script({ kind: 'reply', chunks: ['Joke two.'] });
    const second = await regenerate(harness, { userId: 'u1', sessionId: session.id });
    harness.script({ kind: 'reply', chunks: ['Joke three.'] });
    const third = await regenerate(harness, {
      userId: 'u1',
      sessionId: session.id,
      model: 'mock:other',
      temperature: 1.5,
    });
    expect(second.metadata.replaces).toBe(original.id);
    expect(third.metadata).toMatchObject({ replaces: second.id, model: 'mock:other' });
    expect(harness.calls.at(-1)!.temperature).toBe(1.5);
    // Each regeneration saw only the user message, never an earlier reply.
    expect(promptOf(harness, -1)).toEqual(['user: Tell a joke']);
    expect(promptOf(harness, -2)).toEqual(['user: Tell a joke']);
    expect(await listed(harness, session.id)).toEqual(['user: Tell a joke', 'assistant: Joke three.']);

    await send(harness, session.id, 'Another', ['Joke four.']);
    expect(promptOf(harness)).toEqual(['user: Tell a joke', 'assistant: Joke three.', 'user: Another']);
  });

  it('refuses a session without a user message (409), and treats another user’s session as missing (404)', async () => {
    const harness = await start();
    const session = await newSession(harness);
    const empty = await failure(regenerate(harness, { userId: 'u1', sessionId: session.id }));
    expect(empty).toMatchObject({ code: 'CHAT_ERR_NOTHING_TO_REGENERATE', status: 409 });
    expect(empty.message).toContain('no message to answer again');

    await send(harness, session.id, 'Hello', ['Hi.']);
    const foreign = await failure(regenerate(harness, { userId: 'u2', sessionId: session.id }));
    expect(foreign).toMatchObject({ code: 'CHAT_ERR_NOT_FOUND', status: 404 });
    expect(harness.calls).toHaveLength(1);
    expect(await listed(harness, session.id)).toEqual(['user: Hello', 'assistant: Hi.']);
  });

  it('keeps the reply it meant to replace when generation fails, and replaces it on the next try', async () => {
    const harness = await start({ streaming: { chunk_size: 1 }, turn_timeout_ms: 1000 });
    const session = await newSession(harness);
    const original = await send(harness, session.id, 'Summarise', ['Short summary.']);

    harness.script({ kind: 'fail', error: new Error('provider down') });
    const turnId = newId();
    const error = await failure(regenerate(harness, { userId: 'u1', sessionId: session.id }, turnId));
    expect(error.code).toBe('CHAT_ERR_LLM_PROVIDER_FAILED');
    const errorEvent = harness.events('chat.response.error').find((event) => event.correlationId === turnId);
    expect((errorEvent!.data as ChatResponseError).error.code).toBe('CHAT_ERR_LLM_PROVIDER_FAILED');
    // Nothing lost: the reply shown before is still the reply.
    expect(await listed(harness, session.id)).toEqual(['user: Summarise', 'assistant: Short summary.']);

    // A failure midway (the turn's deadline): the partial text is stored, marked, and replaces nothing.
    harness.script({ kind: 'hang', chunks: ['Half a'] });
    const timedOut = await failure(regenerate(harness, { userId: 'u1', sessionId: session.id }));
    expect(timedOut.code).toBe('CHAT_ERR_LLM_TIMEOUT');
    expect(await listed(harness, session.id)).toEqual(['user: Summarise', 'assistant: Short summary.']);
    expect(await listed(harness, session.id, { include: 'replaced' })).toEqual([
      'user: Summarise',
      'assistant: Short summary.',
      'assistant: Half a',
    ]);
    await send(harness, session.id, 'Shorter?', ['Yes.']);
    expect(promptOf(harness)).toEqual(['user: Summarise', 'assistant: Short summary.', 'user: Shorter?']);

    // The last exchange is now the new message; regenerating it works and the old one is untouched.
    const latest = (
      await harness.bus.request<MessagesPage>('messages.list', { userId: 'u1', sessionId: session.id })
    ).messages.at(-1)!;
    harness.script({ kind: 'reply', chunks: ['Indeed.'] });
    const retried = await regenerate(harness, { userId: 'u1', sessionId: session.id });
    expect(retried.metadata.replaces).toBe(latest.id);
    expect(promptOf(harness)).toEqual(['user: Summarise', 'assistant: Short summary.', 'user: Shorter?']);
    expect(original.content).toBe('Short summary.');
  });

  it('replaces the reply shown, not a failed regeneration after it', async () => {
    const harness = await start();
    const session = await newSession(harness);
    const original = await send(harness, session.id, 'Hello', ['Hi.']);
    harness.script({ kind: 'fail', error: new Error('provider down') });
    await failure(regenerate(harness, { userId: 'u1', sessionId: session.id }));
    harness.script({ kind: 'reply', chunks: ['Hey there.'] });
    const reply = await regenerate(harness, { userId: 'u1', sessionId: session.id });
    expect(reply.metadata.replaces).toBe(original.id);
    expect(await listed(harness, session.id)).toEqual(['user: Hello', 'assistant: Hey there.']);
  });

  it('refuses to run beside a reply being generated in the session, and can be cancelled like a turn', async () => {
    const harness = await start({ streaming: { chunk_size: 1 } });
    const session = await newSession(harness);
    const first = await send(harness, session.id, 'Write a poem', ['Roses.']);

    // A turn under way: regenerating now would race it.
    harness.script({ kind: 'hang', chunks: ['Violets'] });
    const turnId = newId();
    const turn = harness.bus.request<Message>(
      'message.send',
      { userId: 'u1', sessionId: session.id, content: 'Another poem' },
      { correlationId: turnId, timeout: 10_000 },
    );
    await waitForDelta(harness, turnId);
    const busy = await failure(regenerate(harness, { userId: 'u1', sessionId: session.id }));
    expect(busy).toMatchObject({ code: 'CHAT_ERR_TURN_IN_PROGRESS', status: 409 });
    expect(busy.message).toContain('still being generated');
    // Another user's session of the same id is not busy for them: it is not found.
    expect((await failure(regenerate(harness, { userId: 'u2', sessionId: session.id }))).code).toBe(
      'CHAT_ERR_NOT_FOUND',
    );
    await harness.bus.emit('chat.cancel', { turnId }, { userId: 'u1' });
    const stopped = await turn;

    // A regeneration under way: a new message is refused until it ends; chat.cancel stops it.
    harness.script({ kind: 'hang', chunks: ['Tulips'] });
    const regenerationId = newId();
    const regeneration = regenerate(harness, { userId: 'u1', sessionId: session.id }, regenerationId);
    await waitForDelta(harness, regenerationId);
    const refused = await failure(
      harness.bus.request(
        'message.send',
        { userId: 'u1', sessionId: session.id, content: 'Hello?' },
        { correlationId: newId(), timeout: 10_000 },
      ),
    );
    expect(refused).toMatchObject({ code: 'CHAT_ERR_TURN_IN_PROGRESS', status: 409 });
    await harness.bus.emit('chat.cancel', { turnId: regenerationId }, { userId: 'u1' });
    const cancelled = await regeneration;
    expect(cancelled).toMatchObject({
      content: 'Tulips',
      metadata: { finishReason: 'cancelled', replaces: stopped.id },
    });
    expect(await listed(harness, session.id)).toEqual([
      'user: Write a poem',
      `assistant: ${first.content}`,
      'user: Another poem',
      'assistant: Tulips',
    ]);
  });

  it('refuses to run beside a reply generated on another node, and a message beside a regeneration there', async () => {
    // Two nodes on one bus network and one storage: work events go to one node or the other, in turn.
    const network = createLocalNetwork();
    const first = await startHarness({
      modules: { text_chat: { streaming: { chunk_size: 1 } } },
      definitions: alone,
      network,
    });
    harnesses.push(first);
    const second = await startHarness({
      modules: { text_chat: { streaming: { chunk_size: 1 } } },
      definitions: alone,
      network,
      storage: first.storage,
    });
    harnesses.unshift(second);
    const nodes = [first, second];
    const scriptBoth = (script: Parameters<Harness['script']>[0]) => {
      for (const node of nodes) node.script(script);
    };
    const session = await newSession(first);
    scriptBoth({ kind: 'reply', chunks: ['Roses.'] });
    await send(first, session.id, 'Write a poem', ['Roses.']);

    // A turn under way on one of the nodes; regenerations asked of both nodes (in turn) are refused, where
    // the other node's model would have answered at once.
    scriptBoth({ kind: 'hang', chunks: ['Violets'] });
    const turnId = newId();
    const turn = first.bus.request<Message>(
      'message.send',
      { userId: 'u1', sessionId: session.id, content: 'Another poem' },
      { correlationId: turnId, timeout: 10_000 },
    );
    await waitForDelta(first, turnId);
    scriptBoth({ kind: 'reply', chunks: ['Daisies.'] });
    for (let attempt = 0; attempt < 2; attempt++) {
      const busy = await failure(regenerate(first, { userId: 'u1', sessionId: session.id }));
      expect(busy).toMatchObject({ code: 'CHAT_ERR_TURN_IN_PROGRESS', status: 409 });
    }
    // The same session id of another user is not busy on either node: it is not found.
    expect((await failure(regenerate(second, { userId: 'u2', sessionId: session.id }))).code).toBe(
      'CHAT_ERR_NOT_FOUND',
    );
    await first.bus.emit('chat.cancel', { turnId }, { userId: 'u1' });
    const stopped = await turn;
    expect(stopped.metadata.finishReason).toBe('cancelled');

    // A regeneration under way on one node: messages sent to both nodes (in turn) are refused.
    scriptBoth({ kind: 'hang', chunks: ['Tulips'] });
    const regenerationId = newId();
    const regeneration = regenerate(first, { userId: 'u1', sessionId: session.id }, regenerationId);
    await waitForDelta(first, regenerationId);
    scriptBoth({ kind: 'reply', chunks: ['Lilies.'] });
    for (let attempt = 0; attempt < 2; attempt++) {
      const refused = await failure(
        first.bus.request(
          'message.send',
          { userId: 'u1', sessionId: session.id, content: 'Hello?' },
          { correlationId: newId(), timeout: 10_000 },
        ),
      );
      expect(refused).toMatchObject({ code: 'CHAT_ERR_TURN_IN_PROGRESS', status: 409 });
    }
    await first.bus.emit('chat.cancel', { turnId: regenerationId }, { userId: 'u1' });
    expect(await regeneration).toMatchObject({ content: 'Tulips', metadata: { replaces: stopped.id } });

    // Its end heard everywhere, both nodes take turns and regenerations of the session again.
    for (let attempt = 0; attempt < 2; attempt++) {
      expect((await send(first, session.id, `More, ${attempt}`, ['Lilies.'])).content).toBe('Lilies.');
    }
    for (let attempt = 0; attempt < 2; attempt++) {
      const again = await regenerate(first, { userId: 'u1', sessionId: session.id });
      expect(again.metadata.replaces).toBeDefined();
    }
  });

  it('counts against the rate limit like a message', async () => {
    const harness = await start({ rate_limiting: { enabled: true, max_messages_per_minute: 2 } });
    const session = await newSession(harness);
    await send(harness, session.id, 'One', ['1']);
    await regenerate(harness, { userId: 'u1', sessionId: session.id });
    const limited = await failure(regenerate(harness, { userId: 'u1', sessionId: session.id }));
    expect(limited).toMatchObject({ code: 'CHAT_ERR_RATE_LIMITED', status: 429 });
    expect(harness.calls).toHaveLength(2);
  });

  it('answers a regeneration delivered again from the log, without generating it twice', async () => {
    const harness = await start();
    const session = await newSession(harness);
    await send(harness, session.id, 'Hi', ['Hello.']);
    harness.script({ kind: 'reply', chunks: ['Hey.'] });
    const turnId = newId();
    const first = await regenerate(harness, { userId: 'u1', sessionId: session.id }, turnId);
    const again = await regenerate(harness, { userId: 'u1', sessionId: session.id }, turnId);
    expect(again).toEqual(first);
    expect(harness.calls).toHaveLength(2);
    expect(await listed(harness, session.id)).toEqual(['user: Hi', 'assistant: Hey.']);
  });
});

async function waitForDelta(harness: Harness, turnId: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!harness.events('chat.response.delta').some((event) => event.correlationId === turnId)) {
    if (Date.now() > deadline) throw new Error(`no delta of ${turnId}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
