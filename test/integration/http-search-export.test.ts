/**
 * Search across a user's chats (`GET /v1/search`) and the export of a chat
 * (`GET /v1/sessions/:id/export`) over real HTTP, with flatfile storage and the real text_chat: hits come
 * from several sessions, best first, with snippets that mark the words found; never from another user;
 * a deleted chat leaves the results at once; bad queries are 400s that say what is wrong. An export is
 * a download of the whole chat — past the message page size — in Markdown or JSON, and another user's
 * chat is a 404 exactly like a missing one.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpHarness, startHttpHarness, type TestUser } from './http-harness.ts';

/** A page holds at most this many messages here, so an export must read several. */
const PAGE_LIMIT = 5;

let harness: HttpHarness;

beforeAll(async () => {
  harness = await startHttpHarness({
    env: { CHAT_TEXT_CHAT__MESSAGES_PAGE__MAX_LIMIT: String(PAGE_LIMIT) },
  });
});

afterAll(async () => {
  await harness?.close();
});

interface Hit {
  sessionId: string;
  sessionTitle: string;
  messageId: string;
  role: string;
  timestamp: string;
  snippet: string;
  highlights: Array<{ start: number; end: number }>;
  score: number;
}

async function chat(user: TestUser, title: string, turns: Array<[question: string, answer: string]>) {
  const { call, model } = harness;
  const session = (await call('POST', '/v1/sessions', { key: user.key, body: { title } })).body;
  for (const [question, answer] of turns) {
    model.respond({ kind: 'stream', chunks: [answer] });
    const reply = await call('POST', `/v1/sessions/${session.id}/messages`, {
      key: user.key,
      body: { content: question },
    });
    expect(reply.status).toBe(200);
  }
  return session.id as string;
}

async function search(user: TestUser, query: string, limit?: number): Promise<Hit[]> {
  const path = `/v1/search?q=${encodeURIComponent(query)}${limit === undefined ? '' : `&limit=${limit}`}`;
  const response = await harness.call('GET', path, { key: user.key });
  expect(response.status).toBe(200);
  return response.body.hits;
}

/** The words a hit marks, as the client shows them. */
const marked = (hit: Hit) => hit.highlights.map(({ start, end }) => hit.snippet.slice(start, end));

describe('GET /v1/search', () => {
  it("finds the user's messages and replies across sessions, best first, with the words marked", async () => {
    const { alice, bob } = harness;
    const lisbon = await chat(alice, 'Lisbon trip', [
      ['Which tram goes up to the castle in Lisbon?', 'Tram 28 climbs to the castle; trams are crowded.'],
    ]);
    const porto = await chat(alice, 'Porto', [
      ['Is there a tram in Porto too?', 'Yes, Porto has three heritage lines.'],
    ]);
    const cooking = await chat(alice, 'Cooking', [['How long do I boil an egg?', 'About nine minutes.']]);
    // Bob says "tram" too: never in alice's results, and alice's never in his.
    await chat(bob, 'Bob tram', [
      ['My tram was late again, the tram driver shrugged', 'Sorry to hear that.'],
    ]);

    const hits = await search(alice, 'tram');
    expect(hits.map((hit) => hit.sessionId).sort()).toEqual([lisbon, lisbon, porto].sort());
    expect(hits.some((hit) => hit.sessionId === cooking)).toBe(false);
    // The reply that says "tram" twice (Tram 28 … trams) ranks first; it is the assistant's.
    expect(hits[0]).toMatchObject({ sessionId: lisbon, sessionTitle: 'Lisbon trip', role: 'assistant' });
    expect(marked(hits[0]!)).toEqual(['Tram', 'trams']);
    expect(hits[0]!.score).toBeGreaterThan(hits[2]!.score);
    const porto0 = hits.find((hit) => hit.sessionId === porto)!;
    expect(porto0).toMatchObject({
      sessionTitle: 'Porto',
      role: 'user',
      snippet: 'Is there a tram in Porto too?',
    });
    expect(marked(porto0)).toEqual(['tram']);
    expect(Date.parse(porto0.timestamp)).not.toBeNaN();

    const bobs = await search(bob, 'tram');
    expect(bobs).toHaveLength(1);
    expect(bobs[0]).toMatchObject({ sessionTitle: 'Bob tram', role: 'user' });
    expect(marked(bobs[0]!)).toEqual(['tram', 'tram']);
    expect(await search(bob, 'castle Lisbon Porto egg')).toEqual([]);

    // limit caps the hits.
    expect(await search(alice, 'tram', 1)).toHaveLength(1);
  });

  it('sees a message stored after the index was built, and forgets a deleted chat at once', async () => {
    const { alice, call, model } = harness;
    const first = await chat(alice, 'Telescope', [['Which telescope for a beginner?', 'A small dobsonian.']]);
    expect((await search(alice, 'dobsonian')).map((hit) => hit.sessionId)).toEqual([first]);

    model.respond({ kind: 'stream', chunks: ['Dobsonian mounts are simple.'] });
    await call('POST', `/v1/sessions/${first}/messages`, {
      key: alice.key,
      body: { content: 'Why a dobsonian?' },
    });
    const second = await chat(alice, 'Telescope 2', [['Is a dobsonian heavy?', 'Fairly.']]);
    const hits = await search(alice, 'dobsonian');
    // Both messages of the turn stored after the first search, and the new chat's.
    expect(hits).toHaveLength(4);
    expect(new Set(hits.map((hit) => hit.sessionId))).toEqual(new Set([first, second]));

    // A renamed chat is named by its new title.
    await call('PATCH', `/v1/sessions/${second}`, { key: alice.key, body: { title: 'Heavy scopes' } });
    expect((await search(alice, 'heavy'))[0]).toMatchObject({
      sessionId: second,
      sessionTitle: 'Heavy scopes',
    });

    expect((await call('DELETE', `/v1/sessions/${first}`, { key: alice.key })).status).toBe(204);
    const after = await search(alice, 'dobsonian');
    expect(after.map((hit) => hit.sessionId)).toEqual([second]);
  });

  it('refuses bad input with a 400 that names the problem, and a missing key with a 401', async () => {
    const { alice, call } = harness;
    const cases: Array<[path: string, says: RegExp]> = [
      ['/v1/search', /q/],
      ['/v1/search?q=', /empty/],
      ['/v1/search?q=%20%20', /empty/],
      [`/v1/search?q=${'a'.repeat(501)}`, /longer than|more than the limit of 500.*max_query_length/],
      ['/v1/search?q=tram&limit=0', /"limit" must be an integer from 1 to 100/],
      ['/v1/search?q=tram&limit=101', /"limit" must be an integer from 1 to 100/],
      ['/v1/search?q=tram&limit=ten', /limit must be integer/],
      ['/v1/search?q=tram&colour=red', /colour/],
    ];
    for (const [path, says] of cases) {
      const response = await call('GET', path, { key: alice.key });
      expect({ path, status: response.status }).toEqual({ path, status: 400 });
      expect(response.body.error.code).toBe('CHAT_ERR_VALIDATION_INVALID');
      expect(response.body.error.message).toMatch(says);
    }
    expect((await call('GET', '/v1/search?q=tram')).status).toBe(401);
    // Only stopwords: nothing to look for, and nothing found (not an error).
    expect(await search(alice, 'the of and')).toEqual([]);
  });
});

describe('GET /v1/sessions/:id/export', () => {
  const answers = Array.from({ length: 7 }, (_, index) => `Answer number ${index + 1}.`);

  it('downloads the whole chat as Markdown: title, dates, who said what, past the page size', async () => {
    const { alice, call } = harness;
    const sessionId = await chat(
      alice,
      'Café notes: Lisbon',
      answers.map((answer, index) => [`Question number ${index + 1}?`, answer]),
    );
    const response = await fetch(`${harness.baseUrl}/v1/sessions/${sessionId}/export?format=markdown`, {
      headers: { authorization: `Bearer ${alice.key}` },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/markdown; charset=utf-8');
    const disposition = response.headers.get('content-disposition') ?? '';
    const day = new Date().toISOString().slice(0, 10);
    expect(disposition).toContain(`attachment; filename="parley-cafe-notes-lisbon-${day}.md"`);
    expect(disposition).toContain(`filename*=UTF-8''parley-caf%C3%A9-notes-lisbon-${day}.md`);
    const text = await response.text();
    expect(text.startsWith('# Café notes: Lisbon\n')).toBe(true);
    expect(text).toContain(`- Chat: \`${sessionId}\``);
    expect(text).toMatch(/- Started: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/);
    // 14 messages, more than two pages of 5, in order, each under who wrote it.
    const headings = [...text.matchAll(/^## (You|Assistant) · /gm)].map((match) => match[1]);
    expect(headings).toEqual(answers.flatMap(() => ['You', 'Assistant']));
    const positions = answers.map((answer) => text.indexOf(answer));
    expect(positions.every((position) => position > 0)).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    expect(text.indexOf('Question number 7?')).toBeLessThan(text.indexOf('Answer number 7.'));

    // The default format is Markdown.
    const plain = await call('GET', `/v1/sessions/${sessionId}/export`, { key: alice.key });
    expect(plain.headers.get('content-type')).toBe('text/markdown; charset=utf-8');
  });

  it('downloads it as JSON: the session and every message as stored, in order', async () => {
    const { alice, call } = harness;
    const sessionId = await chat(
      alice,
      'JSON chat',
      answers.map((answer, index) => [`Q${index + 1}`, answer]),
    );
    const response = await call('GET', `/v1/sessions/${sessionId}/export?format=json`, { key: alice.key });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(response.headers.get('content-disposition')).toMatch(
      /^attachment; filename="parley-json-chat-.*\.json"/,
    );
    const exported = response.body;
    expect(exported).toMatchObject({
      format: 'parley-chat-export',
      version: 1,
      session: { id: sessionId, userId: alice.id, metadata: { title: 'JSON chat' } },
    });
    expect(Date.parse(exported.exportedAt)).not.toBeNaN();
    expect(exported.messages).toHaveLength(14);
    expect(exported.messages.map((message: { content: string }) => message.content)).toEqual(
      answers.flatMap((answer, index) => [`Q${index + 1}`, answer]),
    );
    // Every message exactly as the message list gives it.
    const newest = await call('GET', `/v1/sessions/${sessionId}/messages?limit=${PAGE_LIMIT}`, {
      key: alice.key,
    });
    expect(exported.messages.slice(-PAGE_LIMIT)).toEqual(newest.body.messages);

    // A chat without messages is a valid export too.
    const empty = (await call('POST', '/v1/sessions', { key: alice.key, body: {} })).body;
    const emptyExport = await call('GET', `/v1/sessions/${empty.id}/export?format=json`, { key: alice.key });
    expect(emptyExport.body.messages).toEqual([]);
  });

  it("is a 404 for another user's chat, exactly like a missing one; 401 without a key; 400 for an unknown format", async () => {
    const { alice, bob, call } = harness;
    const sessionId = await chat(alice, 'Private', [['secret plans', 'noted']]);
    const foreign = await call('GET', `/v1/sessions/${sessionId}/export?format=json`, { key: bob.key });
    const missing = await call('GET', '/v1/sessions/0192d1b0-0000-7000-8000-000000000000/export', {
      key: bob.key,
    });
    expect(foreign.status).toBe(404);
    expect(missing.status).toBe(404);
    expect(foreign.body.error.code).toBe('CHAT_ERR_NOT_FOUND');
    expect(foreign.body.error.message.replace(sessionId, 'ID')).toBe(
      missing.body.error.message.replace('0192d1b0-0000-7000-8000-000000000000', 'ID'),
    );
    expect(foreign.headers.get('content-disposition')).toBeNull();
    expect((await call('GET', `/v1/sessions/${sessionId}/export`)).status).toBe(401);
    const pdf = await call('GET', `/v1/sessions/${sessionId}/export?format=pdf`, { key: alice.key });
    expect(pdf.status).toBe(400);
    expect(pdf.body.error.message).toMatch(/format/);
  });
});
