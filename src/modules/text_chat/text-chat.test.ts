import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { countTokens } from 'gpt-tokenizer';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLocalNetwork } from '../../bus/local.ts';
import { isPlatformError, type PlatformError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import type { ModuleDefinition } from '../../core/module.ts';
import type { Message, Session } from '../../core/types.ts';
import persona from '../persona/index.ts';
import type { PersonaApi } from '../persona/types.ts';
import textChat from './index.ts';
import { type Harness, type HarnessOptions, startHarness } from './test-harness.ts';
import type { ChatResponseDelta, ChatResponseEnd, ChatResponseError, MessagesPage } from './types.ts';

const withPersona = new Map<string, ModuleDefinition<never, unknown>>([
  ['text_chat', textChat as never],
  ['persona', persona as never],
]);
const alone = new Map<string, ModuleDefinition<never, unknown>>([['text_chat', textChat as never]]);

const harnesses: Harness[] = [];
afterEach(async () => {
  for (const harness of harnesses.splice(0)) await harness.close();
});

async function start(
  modules: HarnessOptions['modules'] = {},
  definitions: HarnessOptions['definitions'] = withPersona,
): Promise<Harness> {
  const harness = await startHarness({ modules, definitions });
  harnesses.push(harness);
  return harness;
}

/** Sends a turn as the server does: a fresh turn id as the correlation id, the long turn timeout. */
function send(harness: Harness, data: Record<string, unknown>, turnId = newId()): Promise<Message> {
  return harness.bus.request<Message>('message.send', data, { correlationId: turnId, timeout: 10_000 });
}

function failure(promise: Promise<unknown>): Promise<PlatformError> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error as PlatformError,
  );
}

async function newSession(harness: Harness, data: Record<string, unknown> = {}): Promise<Session> {
  return harness.bus.request<Session>('session.start', { userId: 'u1', ...data });
}

/** The text of every prompt message of a model call, by role. */
function promptOf(harness: Harness, call = -1): Array<{ role: string; text: string }> {
  const options = harness.calls.at(call)!;
  return options.prompt.map((message) => ({
    role: message.role,
    text:
      typeof message.content === 'string'
        ? message.content
        : message.content.map((part) => ('text' in part ? part.text : '')).join(''),
  }));
}

describe('text_chat sessions', () => {
  it('creates, lists (newest first), updates and deletes sessions in sessions/{user_id}/{session_id}/', async () => {
    const harness = await start();
    const first = await newSession(harness, { title: 'First' });
    const second = await newSession(harness);
    expect(first).toMatchObject({ userId: 'u1', metadata: { title: 'First' } });
    expect(second.metadata.title).toBe('New chat');
    expect(JSON.parse(await harness.readDataFile(`sessions/u1/${first.id}/metadata.json`))).toEqual(first);

    const listed = await harness.bus.request<Session[]>('session.list', { userId: 'u1' });
    expect(listed.map((session) => session.id)).toEqual([second.id, first.id]);
    expect(await harness.bus.request('session.get', { userId: 'u1', sessionId: first.id })).toEqual(first);

    const updated = await harness.bus.request<Session>('session.update', {
      userId: 'u1',
      sessionId: first.id,
      title: 'Renamed',
      personaId: 'assistant',
    });
    expect(updated.metadata).toMatchObject({ title: 'Renamed', personaId: 'assistant' });
    const cleared = await harness.bus.request<Session>('session.update', {
      userId: 'u1',
      sessionId: first.id,
      personaId: null,
    });
    expect(cleared.metadata.personaId).toBeUndefined();

    await send(harness, { userId: 'u1', sessionId: first.id, content: 'Hi' });
    expect(await harness.bus.request('session.delete', { userId: 'u1', sessionId: first.id })).toEqual({
      deleted: true,
    });
    expect(await harness.storage.list(`sessions/u1/${first.id}/`)).toEqual([]);
    expect(harness.events('session.deleted').map((event) => event.data)).toEqual([
      { userId: 'u1', sessionId: first.id },
    ]);
    const gone = await failure(harness.bus.request('session.get', { userId: 'u1', sessionId: first.id }));
    expect(gone.code).toBe('CHAT_ERR_NOT_FOUND');
  });

  it("treats another user's session exactly like a missing one", async () => {
    const harness = await start();
    const session = await newSession(harness);
    const intruder = { userId: 'u2', sessionId: session.id };
    // Each wrapped at once, so no rejection is left unhandled while the others are awaited.
    const attempts = [
      harness.bus.request('session.get', intruder),
      harness.bus.request('session.update', { ...intruder, title: 'mine' }),
      harness.bus.request('session.delete', intruder),
      harness.bus.request('messages.list', intruder),
      send(harness, { ...intruder, content: 'hello' }),
    ].map(failure);
    const missing = await failure(harness.bus.request('session.get', { userId: 'u2', sessionId: newId() }));
    for (const attempt of attempts) {
      const error = await attempt;
      expect(error.code).toBe('CHAT_ERR_NOT_FOUND');
      expect(error.status).toBe(404);
      expect(error.message).toBe(missing.message.replace(/"[^"]+"/, `"${session.id}"`));
    }
    expect(await harness.bus.request('session.list', { userId: 'u2' })).toEqual([]);
    expect(harness.calls).toHaveLength(0);
    expect(await harness.bus.request('session.get', { userId: 'u1', sessionId: session.id })).toEqual(
      session,
    );
  });

  it('rejects bad payloads, unknown personas and unknown models with 400s', async () => {
    const harness = await start();
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['session.start', {}, 'CHAT_ERR_VALIDATION_INVALID'],
      ['session.start', { userId: 'u1', title: 42 }, 'CHAT_ERR_VALIDATION_INVALID'],
      ['session.start', { userId: 'u1', personaId: 'nobody' }, 'CHAT_ERR_VALIDATION_INVALID'],
      ['session.start', { userId: 'u1', model: 'gpt-4o' }, 'CHAT_ERR_VALIDATION_INVALID'],
      ['session.start', { userId: 'u1', model: 'nowhere:model' }, 'CHAT_ERR_LLM_UNKNOWN_MODEL'],
      ['message.send', { userId: 'u1', sessionId: 's', content: '   ' }, 'CHAT_ERR_VALIDATION_INVALID'],
      ['messages.list', { userId: 'u1', sessionId: 's', limit: 0 }, 'CHAT_ERR_VALIDATION_INVALID'],
    ];
    for (const [type, data, code] of cases) {
      const error = await failure(harness.bus.request(type, data));
      expect(error.code, `${type} ${JSON.stringify(data)}`).toBe(code);
      expect(error.status).toBe(400);
    }
  });
});

describe('text_chat turns', () => {
  it('streams chunk_size deltas, then the end event with the stored message, and replies with it', async () => {
    const harness = await start({ text_chat: { streaming: { chunk_size: 5 } } });
    const session = await newSession(harness);
    harness.script({ kind: 'reply', chunks: ['Hello', ' wor', 'ld', '!'] });
    const turnId = newId();
    const reply = await send(harness, { userId: 'u1', sessionId: session.id, content: 'Hi there' }, turnId);

    expect(reply).toMatchObject({
      role: 'assistant',
      content: 'Hello world!',
      metadata: {
        sessionId: session.id,
        turnId,
        model: 'mock:default',
        finishReason: 'stop',
        usage: { inputTokens: 11, outputTokens: 4 },
        personaId: 'assistant',
      },
    });
    const deltas = harness.events('chat.response.delta');
    expect(deltas.map((event) => (event.data as ChatResponseDelta).text)).toEqual(['Hello', ' world', '!']);
    for (const event of harness.events('chat.response.*')) {
      expect(event).toMatchObject({ correlationId: turnId, userId: 'u1', sessionId: session.id });
    }
    const end = harness.events('chat.response.end');
    expect(end).toHaveLength(1);
    expect((end[0]!.data as ChatResponseEnd).message).toEqual(reply);
    expect(harness.events('chat.response').map((event) => event.data)).toEqual([
      { sessionId: session.id, content: 'Hello world!', messageId: reply.id },
    ]);
    expect(harness.events('message.received')).toHaveLength(1);
  });

  it('keeps the history in messages.jsonl (seed layout) and pages it with messages.list', async () => {
    const harness = await start();
    const session = await newSession(harness);
    for (const content of ['one', 'two', 'three']) {
      harness.script({ kind: 'reply', chunks: [`re: ${content}`] });
      await send(harness, { userId: 'u1', sessionId: session.id, content });
    }
    const lines = (await harness.readDataFile(`sessions/u1/${session.id}/messages.jsonl`))
      .trimEnd()
      .split('\n');
    const stored = lines.map((line) => JSON.parse(line) as Message);
    expect(stored.map((message) => [message.role, message.content])).toEqual([
      ['user', 'one'],
      ['assistant', 're: one'],
      ['user', 'two'],
      ['assistant', 're: two'],
      ['user', 'three'],
      ['assistant', 're: three'],
    ]);
    for (const message of stored) {
      expect(message).toMatchObject({ id: expect.any(String), timestamp: expect.any(String) });
      expect(message.metadata.sessionId).toBe(session.id);
    }
    // The model saw the earlier turns.
    expect(
      promptOf(harness)
        .filter((m) => m.role !== 'system')
        .map((m) => m.text),
    ).toEqual(['one', 're: one', 'two', 're: two', 'three']);

    const page = await harness.bus.request<MessagesPage>('messages.list', {
      userId: 'u1',
      sessionId: session.id,
      limit: 4,
    });
    expect(page.messages.map((message) => message.content)).toEqual(['two', 're: two', 'three', 're: three']);
    expect(page.nextCursor).toBe(stored[2]!.id);
    const older = await harness.bus.request<MessagesPage>('messages.list', {
      userId: 'u1',
      sessionId: session.id,
      limit: 4,
      before: page.nextCursor,
    });
    expect(older).toEqual({ messages: stored.slice(0, 2) });
    const refreshed = await harness.bus.request<Session>('session.get', {
      userId: 'u1',
      sessionId: session.id,
    });
    expect(refreshed.metadata.updatedAt).toBe(stored[5]!.timestamp);
  });

  it('accepts chat.message as an alias, and sends one delta when streaming is off for the turn', async () => {
    const harness = await start();
    const session = await newSession(harness);
    harness.script({ kind: 'reply', chunks: ['a', 'b', 'c'] });
    const reply = await harness.bus.request<Message>(
      'chat.message',
      { userId: 'u1', sessionId: session.id, content: 'Hi', stream: false },
      { correlationId: newId() },
    );
    expect(reply.content).toBe('abc');
    expect(
      harness.events('chat.response.delta').map((event) => (event.data as ChatResponseDelta).text),
    ).toEqual(['abc']);
  });

  it('shows nothing of a streamed reply before the user message is in the log', async () => {
    const harness = await start({ text_chat: { streaming: { chunk_size: 1 } } });
    const session = await newSession(harness);
    harness.script({ kind: 'hang', chunks: ['Thinking'] });
    const turnId = newId();
    const logPath = join(harness.dataDir, `sessions/u1/${session.id}/messages.jsonl`);
    let logAtFirstDelta: string[] | undefined;
    harness.bus.on(
      'chat.response.delta',
      (event) => {
        if (event.correlationId !== turnId || logAtFirstDelta !== undefined) return;
        // Read at once, while the model is still generating: only the user message can be there.
        try {
          logAtFirstDelta = readFileSync(logPath, 'utf8')
            .trimEnd()
            .split('\n')
            .map((line) => (JSON.parse(line) as Message).content);
        } catch {
          logAtFirstDelta = []; // no log yet
        }
        void harness.bus.emit('chat.cancel', { turnId }, { userId: 'u1' });
      },
      { mode: 'local' },
    );
    await send(harness, { userId: 'u1', sessionId: session.id, content: 'Hi' }, turnId);
    expect(logAtFirstDelta).toEqual(['Hi']);
    const types = harness.events('>').map((event) => event.type);
    expect(types.indexOf('message.received')).toBeLessThan(types.indexOf('chat.response.delta'));
  });

  it('stores the user message of a turn that is not streamed with its reply, or alone once reply_commit_window_ms ran out', async () => {
    const harness = await start({ text_chat: { reply_commit_window_ms: 20 } });
    const session = await newSession(harness);
    const log = async () =>
      (await harness.readDataFile(`sessions/u1/${session.id}/messages.jsonl`).catch(() => ''))
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => (JSON.parse(line) as Message).content);

    // A model that answers at once: user message and reply are stored together, then shown.
    harness.script({ kind: 'reply', chunks: ['Hello'] });
    await send(harness, { userId: 'u1', sessionId: session.id, content: 'Hi', stream: false });
    expect(await log()).toEqual(['Hi', 'Hello']);
    const types = harness.events('>').map((event) => event.type);
    expect(types.filter((type) => /^(message\.received|chat\.response\.(delta|end))$/.test(type))).toEqual([
      'message.received',
      'chat.response.delta',
      'chat.response.end',
    ]);

    // A slow model: the user message does not wait for it beyond the window.
    harness.script({ kind: 'hang', chunks: ['Let me think'] });
    const turnId = newId();
    const turn = send(
      harness,
      { userId: 'u1', sessionId: session.id, content: 'A hard one', stream: false },
      turnId,
    );
    while (harness.events('message.received').length < 2)
      await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await log()).toEqual(['Hi', 'Hello', 'A hard one']);
    await harness.bus.emit('chat.cancel', { turnId }, { userId: 'u1' });
    expect((await turn).metadata.finishReason).toBe('cancelled');
    expect(await log()).toEqual(['Hi', 'Hello', 'A hard one', 'Let me think']);
  });

  it('rejects a message over max_message_length with a ValidationError naming the limit', async () => {
    const harness = await start({ text_chat: { max_message_length: 10 } });
    const session = await newSession(harness);
    // Ten emoji are ten characters (code points), although twenty UTF-16 units.
    await send(harness, { userId: 'u1', sessionId: session.id, content: '😀'.repeat(10) });
    const error = await failure(
      send(harness, { userId: 'u1', sessionId: session.id, content: 'x'.repeat(11) }),
    );
    expect(error.code).toBe('CHAT_ERR_VALIDATION_INVALID');
    expect(error.status).toBe(400);
    expect(error.message).toContain('text_chat.max_message_length');
    expect(error.details).toMatchObject({ limit: 10, length: 11 });
    const page = await harness.bus.request<MessagesPage>('messages.list', {
      userId: 'u1',
      sessionId: session.id,
    });
    expect(page.messages).toHaveLength(2);
  });

  it('rate-limits a user with a 429 and retryAfterSeconds, leaving other users alone', async () => {
    const harness = await start({ text_chat: { rate_limiting: { max_messages_per_minute: 2 } } });
    const session = await newSession(harness);
    await send(harness, { userId: 'u1', sessionId: session.id, content: 'one' });
    await send(harness, { userId: 'u1', sessionId: session.id, content: 'two' });
    const error = await failure(send(harness, { userId: 'u1', sessionId: session.id, content: 'three' }));
    expect(isPlatformError(error, 'CHAT_ERR_RATE_LIMITED')).toBe(true);
    expect(error.status).toBe(429);
    const retryAfter = error.details?.retryAfterSeconds as number;
    expect(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60).toBe(true);
    const page = await harness.bus.request<MessagesPage>('messages.list', {
      userId: 'u1',
      sessionId: session.id,
    });
    expect(page.messages.map((message) => message.content)).not.toContain('three');

    const other = await newSession(harness, { userId: 'u2' });
    await expect(send(harness, { userId: 'u2', sessionId: other.id, content: 'hi' })).resolves.toMatchObject({
      role: 'assistant',
    });
  });

  it("counts the messages other nodes let through against a user's limit, and its own once", async () => {
    const harness = await start({ text_chat: { rate_limiting: { max_messages_per_minute: 4 } } });
    const session = await newSession(harness);
    // Its own announcements come back through the bus: not counted a second time (else the third fails).
    for (const content of ['one', 'two', 'three']) {
      await send(harness, { userId: 'u1', sessionId: session.id, content });
    }
    const used = harness.events('chat.rate_limit.used');
    expect(used.map((event) => (event.data as { userId: string }).userId)).toEqual(['u1', 'u1', 'u1']);
    // One message let through by another node fills the limit here.
    await harness.bus.emit('chat.rate_limit.used', { userId: 'u1', node: 'another-node' }, { userId: 'u1' });
    const error = await failure(send(harness, { userId: 'u1', sessionId: session.id, content: 'four' }));
    expect(isPlatformError(error, 'CHAT_ERR_RATE_LIMITED')).toBe(true);
    // Another user's count is theirs alone.
    const other = await newSession(harness, { userId: 'u2' });
    await expect(send(harness, { userId: 'u2', sessionId: other.id, content: 'hi' })).resolves.toMatchObject({
      role: 'assistant',
    });
  });

  it('turns a provider failure into chat.response.error and an error reply, keeping the user message', async () => {
    const harness = await start();
    const session = await newSession(harness);
    harness.script({ kind: 'fail', error: new Error('upstream exploded') });
    const turnId = newId();
    const error = await failure(
      send(harness, { userId: 'u1', sessionId: session.id, content: 'Are you there?' }, turnId),
    );
    expect(error.code).toBe('CHAT_ERR_LLM_PROVIDER_FAILED');

    const errors = harness.events('chat.response.error');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ correlationId: turnId, userId: 'u1', sessionId: session.id });
    expect((errors[0]!.data as ChatResponseError).error).toMatchObject({
      code: 'CHAT_ERR_LLM_PROVIDER_FAILED',
    });
    expect(harness.events('chat.response.end')).toHaveLength(0);

    const page = await harness.bus.request<MessagesPage>('messages.list', {
      userId: 'u1',
      sessionId: session.id,
    });
    expect(page.messages.map((message) => [message.role, message.content])).toEqual([
      ['user', 'Are you there?'],
    ]);

    // The next turn works and carries the unanswered message in its history.
    harness.script({ kind: 'reply', chunks: ['Yes.'] });
    await send(harness, { userId: 'u1', sessionId: session.id, content: 'Hello?' });
    expect(
      promptOf(harness)
        .filter((m) => m.role === 'user')
        .map((m) => m.text),
    ).toEqual(['Are you there?', 'Hello?']);
  });

  it('stops generating on chat.cancel and stores the partial reply as cancelled', async () => {
    const harness = await start({ text_chat: { streaming: { chunk_size: 1 } } });
    const session = await newSession(harness);
    harness.script({ kind: 'hang', chunks: ['Once', ' upon'] });
    const turnId = newId();
    // The server's single listener: cancels when the "client" has seen the whole text the model sent
    // (what a model had sent but the turn had not read yet when the cancel came is not kept).
    harness.bus.on(
      'chat.response.delta',
      (event) => {
        if (event.correlationId === turnId && (event.data as ChatResponseDelta).text === ' upon')
          void harness.bus.emit('chat.cancel', { turnId }, { userId: 'u1' });
      },
      { mode: 'local' },
    );
    const reply = await send(
      harness,
      { userId: 'u1', sessionId: session.id, content: 'Tell a story' },
      turnId,
    );
    expect(reply.content).toBe('Once upon');
    expect(reply.metadata.finishReason).toBe('cancelled');
    expect(harness.calls.at(-1)!.abortSignal?.aborted).toBe(true);
    expect((harness.events('chat.response.end')[0]!.data as ChatResponseEnd).message).toEqual(reply);
    const page = await harness.bus.request<MessagesPage>('messages.list', {
      userId: 'u1',
      sessionId: session.id,
    });
    expect(page.messages.at(-1)).toEqual(reply);
  });

  it('cancels a turn whose cancel arrived before it started, and ignores cancels from another user', async () => {
    const harness = await start();
    const session = await newSession(harness);
    harness.script({ kind: 'hang', chunks: ['never shown'] });
    const early = newId();
    await harness.bus.emit('chat.cancel', { turnId: early });
    const reply = await send(harness, { userId: 'u1', sessionId: session.id, content: 'Hi' }, early);
    expect(reply.metadata.finishReason).toBe('cancelled');

    harness.script({ kind: 'reply', chunks: ['fine'] });
    const other = newId();
    await harness.bus.emit('chat.cancel', { turnId: other }, { userId: 'u2' });
    expect(
      (await send(harness, { userId: 'u1', sessionId: session.id, content: 'Hi' }, other)).metadata
        .finishReason,
    ).toBe('stop');
  });

  it('aborts a turn that outlives turn_timeout_ms with a timeout error', async () => {
    const harness = await start({ text_chat: { turn_timeout_ms: 1000 } });
    const session = await newSession(harness);
    harness.script({ kind: 'hang', chunks: ['still', ' thinking'] });
    const error = await failure(send(harness, { userId: 'u1', sessionId: session.id, content: 'Hi' }));
    expect(error.code).toBe('CHAT_ERR_LLM_TIMEOUT');
    expect(error.message).toContain('text_chat.turn_timeout_ms');
    const page = await harness.bus.request<MessagesPage>('messages.list', {
      userId: 'u1',
      sessionId: session.id,
    });
    // The partial reply is kept, marked with the error, and left out of later history.
    expect(page.messages.at(-1)).toMatchObject({
      content: 'still thinking',
      metadata: { finishReason: 'error', error: { code: 'CHAT_ERR_LLM_TIMEOUT' } },
    });
    harness.script({ kind: 'reply', chunks: ['ok'] });
    await send(harness, { userId: 'u1', sessionId: session.id, content: 'Again' });
    expect(promptOf(harness).map((m) => m.text)).not.toContain('still thinking');
  });

  it('sends only the newest history that fits history_token_budget', async () => {
    const budget = 120;
    const harness = await start({
      text_chat: { history_token_budget: budget },
      persona: { default_persona: null },
    });
    const session = await newSession(harness);
    const sentences = Array.from(
      { length: 8 },
      (_, index) => `Message number ${index}: ${'lorem ipsum '.repeat(6)}`,
    );
    for (const content of sentences) {
      harness.script({ kind: 'reply', chunks: [`ok ${content.slice(0, 16)}`] });
      await send(harness, { userId: 'u1', sessionId: session.id, content });
    }
    const prompt = promptOf(harness);
    const texts = prompt.map((message) => message.text);
    expect(texts.at(-1)).toBe(sentences[7]);
    expect(texts).not.toContain(sentences[0]);
    expect(prompt[0]!.role).toBe('user');
    const used = 3 + prompt.reduce((sum, message) => sum + countTokens(message.text) + 4, 0);
    expect(used).toBeLessThanOrEqual(budget);
    // …and it is the longest such suffix: one more (older) message would not have fit.
    const all = (
      await harness.bus.request<MessagesPage>('messages.list', { userId: 'u1', sessionId: session.id })
    ).messages;
    const firstSent = all.findIndex((message) => message.content === texts[0]);
    const previous = all[firstSent - 1]!;
    expect(used + countTokens(previous.content) + 4).toBeGreaterThan(budget);
  });

  it("applies the session's persona: system prompt and temperature reach the model", async () => {
    const harness = await start({
      persona: {
        personas: { pirate: { name: 'Pirate', system_prompt: 'Talk like a pirate.', temperature: 1.3 } },
      },
    });
    const session = await newSession(harness, { personaId: 'pirate' });
    await send(harness, { userId: 'u1', sessionId: session.id, content: 'Hello' });
    expect(promptOf(harness)[0]).toEqual({ role: 'system', text: 'Talk like a pirate.' });
    expect(harness.calls.at(-1)!.temperature).toBe(1.3);

    // The request's own temperature wins; the default persona applies to sessions that chose none.
    await send(harness, { userId: 'u1', sessionId: session.id, content: 'Again', temperature: 0.2 });
    expect(harness.calls.at(-1)!.temperature).toBe(0.2);
    const plain = await newSession(harness);
    await send(harness, { userId: 'u1', sessionId: plain.id, content: 'Hi' });
    expect(promptOf(harness)[0]!.text).toContain('helpful assistant');
  });

  it('asks for a config persona once, and for a stored one every turn (an edit applies on the next turn)', async () => {
    const harness = await start();
    const asked: unknown[] = [];
    const request = harness.bus.request.bind(harness.bus);
    harness.bus.request = ((type: string, data: unknown, options?: never) => {
      if (type === 'persona.get') asked.push(data);
      return request(type, data, options);
    }) as typeof harness.bus.request;

    // The default persona comes from config: fixed while the platform runs.
    const plain = await newSession(harness);
    for (const content of ['one', 'two', 'three']) {
      await send(harness, { userId: 'u1', sessionId: plain.id, content });
    }
    expect(asked).toHaveLength(1);
    expect(promptOf(harness)[0]!.text).toContain('helpful assistant');

    // A stored persona may be edited at any time: asked for on every turn.
    const personas = await harness.modules.getModule<PersonaApi>('persona');
    await personas!.put({ id: 'tutor', name: 'Tutor', systemPrompt: 'Teach step by step.' });
    const taught = await newSession(harness, { personaId: 'tutor' });
    asked.length = 0;
    await send(harness, { userId: 'u1', sessionId: taught.id, content: 'first' });
    expect(promptOf(harness)[0]!.text).toBe('Teach step by step.');
    await personas!.put({ id: 'tutor', name: 'Tutor', systemPrompt: 'Answer with a question.' });
    await send(harness, { userId: 'u1', sessionId: taught.id, content: 'second' });
    expect(promptOf(harness)[0]!.text).toBe('Answer with a question.');
    expect(asked).toHaveLength(2);
  });

  it('works without the persona module: no system prompt, and personas are refused', async () => {
    const harness = await start({}, alone);
    const session = await newSession(harness);
    await send(harness, { userId: 'u1', sessionId: session.id, content: 'Hello' });
    expect(promptOf(harness).map((message) => message.role)).toEqual(['user']);
    const error = await failure(newSession(harness, { personaId: 'pirate' }));
    expect(error.code).toBe('CHAT_ERR_VALIDATION_INVALID');
  });

  it('keeps the log whole when two turns of one session run at once', async () => {
    const harness = await start({ text_chat: { streaming: { chunk_size: 1 } } });
    const session = await newSession(harness);
    harness.script({ kind: 'reply', chunks: ['x', 'y', 'z'] });
    const [first, second] = await Promise.all([
      send(harness, { userId: 'u1', sessionId: session.id, content: 'first' }),
      send(harness, { userId: 'u1', sessionId: session.id, content: 'second' }),
    ]);
    const lines = (await harness.readDataFile(`sessions/u1/${session.id}/messages.jsonl`))
      .trimEnd()
      .split('\n');
    const stored = lines.map((line) => JSON.parse(line) as Message);
    expect(stored).toHaveLength(4);
    expect(
      stored
        .filter((m) => m.role === 'user')
        .map((m) => m.content)
        .sort(),
    ).toEqual(['first', 'second']);
    expect(
      stored
        .filter((m) => m.role === 'assistant')
        .map((m) => m.id)
        .sort(),
    ).toEqual([first.id, second.id].sort());
    // Each reply follows its own user message in the log.
    for (const reply of [first, second]) {
      const userIndex = stored.findIndex(
        (m) => m.role === 'user' && m.metadata.turnId === reply.metadata.turnId,
      );
      expect(stored.findIndex((m) => m.id === reply.id)).toBeGreaterThan(userIndex);
    }
  });

  it('does not write the reply of a session deleted during the turn, nor bring the session back', async () => {
    const harness = await start({ text_chat: { streaming: { chunk_size: 1 } } });
    const session = await newSession(harness);
    harness.script({ kind: 'hang', chunks: ['Partial'] });
    const turnId = newId();
    harness.bus.on(
      'chat.response.delta',
      (event) => {
        if (event.correlationId !== turnId) return;
        void harness.bus
          .request('session.delete', { userId: 'u1', sessionId: session.id })
          .then(() => harness.bus.emit('chat.cancel', { turnId }, { userId: 'u1' }));
      },
      { mode: 'local' },
    );
    const error = await failure(
      send(harness, { userId: 'u1', sessionId: session.id, content: 'Hi' }, turnId),
    );
    expect(error.code).toBe('CHAT_ERR_NOT_FOUND');
    await expect(harness.readDataFile(`sessions/u1/${session.id}/messages.jsonl`)).rejects.toThrow(/ENOENT/);
    expect(
      (await failure(harness.bus.request('session.get', { userId: 'u1', sessionId: session.id }))).code,
    ).toBe('CHAT_ERR_NOT_FOUND');
    // The delayed updatedAt write finds nothing to touch.
    await harness.modules.dispose();
    await expect(harness.readDataFile(`sessions/u1/${session.id}/metadata.json`)).rejects.toThrow(/ENOENT/);
    // The user deleting their chat is no failure for an operator to look into: nothing at warn or above.
    expect(await harness.logged()).toEqual([]);
  });

  it('keeps a long conversation right once the cache holds only its newest messages', async () => {
    const budget = 60;
    const harness = await start({
      text_chat: { history_token_budget: budget, rate_limiting: { enabled: false } },
      persona: { default_persona: null },
    });
    const session = await newSession(harness);
    const turnIds: string[] = [];
    const replies: Message[] = [];
    for (let turn = 0; turn < 70; turn++) {
      harness.script({ kind: 'reply', chunks: [`reply ${turn}`] });
      turnIds.push(newId());
      replies.push(
        await send(
          harness,
          { userId: 'u1', sessionId: session.id, content: `question ${turn}` },
          turnIds[turn],
        ),
      );
    }
    // The model still gets the newest messages that fit, oldest first.
    const texts = promptOf(harness).map((message) => message.text);
    expect(texts.at(-1)).toBe('question 69');
    expect(texts.at(-2)).toBe('reply 68');
    const used = 3 + texts.reduce((sum, text) => sum + countTokens(text) + 4, 0);
    expect(used).toBeLessThanOrEqual(budget);
    expect(used + countTokens('question 60') + 4 + countTokens('reply 60') + 4).toBeGreaterThan(budget);
    // The first turn, long dropped from the cache, asked again: its stored reply, no model call.
    const calls = harness.calls.length;
    const again = await send(
      harness,
      { userId: 'u1', sessionId: session.id, content: 'question 0' },
      turnIds[0],
    );
    expect(again).toEqual(replies[0]);
    expect(harness.calls).toHaveLength(calls);
    // Every page, back to the first message.
    const contents: string[] = [];
    let before: string | undefined;
    do {
      const page: MessagesPage = await harness.bus.request<MessagesPage>('messages.list', {
        userId: 'u1',
        sessionId: session.id,
        limit: 25,
        ...(before === undefined ? {} : { before }),
      });
      contents.unshift(...page.messages.map((message) => message.content));
      before = page.nextCursor;
    } while (before !== undefined);
    expect(contents).toHaveLength(140);
    expect(contents.slice(0, 2)).toEqual(['question 0', 'reply 0']);
    expect(contents.at(-1)).toBe('reply 69');
  });

  it('makes a repeat of a keyed turn under way wait for it, and answers it from the log', async () => {
    const harness = await start({ text_chat: { streaming: { chunk_size: 1 } } });
    const session = await newSession(harness);
    const turnId = newId();
    const data = { userId: 'u1', sessionId: session.id, content: 'Once', keyed: true };
    harness.script({ kind: 'hang', chunks: ['Half'] });
    const first = send(harness, data, turnId);
    await vi.waitFor(() => expect(harness.events('chat.response.delta')).toHaveLength(1));
    // The repeat (another gateway's, as the chat gateway joins its own) arrives while it generates.
    const repeat = send(harness, data, turnId);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(harness.calls).toHaveLength(1);
    await harness.bus.emit('chat.cancel', { turnId }, { userId: 'u1' });
    const [reply, again] = await Promise.all([first, repeat]);
    expect(again).toEqual(reply);
    expect(reply.content).toBe('Half');
    expect(harness.calls).toHaveLength(1);
    const page = await harness.bus.request<MessagesPage>('messages.list', {
      userId: 'u1',
      sessionId: session.id,
    });
    expect(page.messages.map((message) => message.role)).toEqual(['user', 'assistant']);
  });

  it('tells other nodes a turn started only when there are others: a node alone on its bus sends nothing', async () => {
    const alone = await start();
    const aloneSession = await newSession(alone);
    alone.script({ kind: 'reply', chunks: ['Hi'] });
    await send(alone, { userId: 'u1', sessionId: aloneSession.id, content: 'Hello' });
    expect(alone.events('chat.turn.started')).toEqual([]);
    // Two nodes on one bus network: each turn is announced to the other.
    const network = createLocalNetwork();
    const first = await startHarness({ modules: {}, definitions: withPersona, network });
    harnesses.push(first);
    const second = await startHarness({
      modules: {},
      definitions: withPersona,
      network,
      storage: first.storage,
    });
    harnesses.push(second);
    const session = await newSession(first);
    for (const node of [first, second]) node.script({ kind: 'reply', chunks: ['Hi'] });
    const turnId = newId();
    await send(first, { userId: 'u1', sessionId: session.id, content: 'Hello' }, turnId);
    expect(first.events('chat.turn.started').map((event) => event.data)).toMatchObject([
      { turnId, sessionId: session.id, regeneration: false },
    ]);
  });

  it('lets a repeat of a keyed turn go on when another node announced it and fell silent, or ended it', async () => {
    const lostAfterMs = 1000;
    const harness = await start({
      text_chat: { turn_recovery: { heartbeat_ms: 200, lost_after_ms: lostAfterMs } },
    });
    const session = await newSession(harness);
    const data = { userId: 'u1', sessionId: session.id, content: 'Hello', keyed: true };
    // Another node announced the turn and died: the repeat waits out lost_after_ms, then generates.
    const startedElsewhere = (turnId: string) =>
      harness.bus.emit(
        'chat.turn.started',
        { turnId, sessionId: session.id, node: 'another-node', regeneration: false },
        { userId: 'u1' },
      );
    const lost = newId();
    await startedElsewhere(lost);
    harness.script({ kind: 'reply', chunks: ['Hi'] });
    const startedAt = performance.now();
    expect((await send(harness, data, lost)).content).toBe('Hi');
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(lostAfterMs - 50);
    // Another node announced it and ended it (its reply is not in this log: the repeat answers it).
    const ended = newId();
    await startedElsewhere(ended);
    const repeat = send(harness, data, ended);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(harness.calls).toHaveLength(1);
    await harness.bus.emit('chat.response.error', {
      turnId: ended,
      sessionId: session.id,
      error: { code: 'CHAT_ERR_LLM_PROVIDER_FAILED', message: 'gone', status: 502 },
    });
    expect((await repeat).content).toBe('Hi');
    expect(harness.calls).toHaveLength(2);
  });

  it('does not store a turn twice when its request is delivered again', async () => {
    const harness = await start();
    const session = await newSession(harness);
    const turnId = newId();
    const first = await send(harness, { userId: 'u1', sessionId: session.id, content: 'Once' }, turnId);
    const again = await send(harness, { userId: 'u1', sessionId: session.id, content: 'Once' }, turnId);
    expect(again).toEqual(first);
    const page = await harness.bus.request<MessagesPage>('messages.list', {
      userId: 'u1',
      sessionId: session.id,
    });
    expect(page.messages).toHaveLength(2);
    expect(harness.calls).toHaveLength(1);
  });
});
