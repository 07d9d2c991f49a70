/**
 * Feedback on replies over real HTTP with the real text_chat and flatfile storage: a user rates a reply
 * up or down with a comment, changes and withdraws the rating, sees the session's ratings, finds them in
 * the export; each rating is emitted as `message.rated`; bad input is a 400 that says what is wrong;
 * another user's session or message is a 404 exactly like a missing one; deleting the chat deletes them.
 */

import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Message } from '../../src/core/types.ts';
import { type HttpHarness, startHttpHarness } from './http-harness.ts';

let harness: HttpHarness;

beforeAll(async () => {
  harness = await startHttpHarness({ env: { CHAT_TEXT_CHAT__FEEDBACK__MAX_COMMENT_LENGTH: '40' } });
});

afterAll(async () => {
  await harness?.close();
});

/** A session of alice's with one turn: its id, the user message and the reply. */
async function chatWithOneTurn(): Promise<{ sessionId: string; question: Message; reply: Message }> {
  const { call, alice } = harness;
  const created = await call('POST', '/v1/sessions', { key: alice.key, body: {} });
  const sessionId = created.body.id as string;
  harness.model.respond({ kind: 'stream', chunks: ['Paris', '.'] });
  const answer = await call('POST', `/v1/sessions/${sessionId}/messages`, {
    key: alice.key,
    body: { content: 'Capital of France?' },
  });
  expect(answer.status).toBe(200);
  const listed = await call('GET', `/v1/sessions/${sessionId}/messages`, { key: alice.key });
  const [question, reply] = listed.body.messages as Message[];
  return { sessionId, question: question!, reply: reply! };
}

function feedbackPath(sessionId: string, messageId: string): string {
  return `/v1/sessions/${sessionId}/messages/${messageId}/feedback`;
}

describe('feedback on replies', () => {
  it('rates a reply, changes and withdraws the rating; the list, the export and the bus follow', async () => {
    const { call, alice } = harness;
    const { sessionId, reply } = await chatWithOneTurn();
    const path = feedbackPath(sessionId, reply.id);

    const up = await call('PUT', path, { key: alice.key, body: { rating: 'up', comment: 'spot on' } });
    expect(up.status).toBe(200);
    expect(up.body).toMatchObject({ messageId: reply.id, rating: 'up', comment: 'spot on' });
    expect(Date.parse(up.body.updatedAt)).not.toBeNaN();

    const down = await call('PUT', path, { key: alice.key, body: { rating: 'down' } });
    expect(down.status).toBe(200);
    // A new rating replaces the old one whole: its comment too.
    expect(down.body).toEqual({ messageId: reply.id, rating: 'down', updatedAt: down.body.updatedAt });
    let listed = await call('GET', `/v1/sessions/${sessionId}/feedback`, { key: alice.key });
    expect(listed.status).toBe(200);
    expect(listed.body.feedback).toEqual([down.body]);

    const exported = await call('GET', `/v1/sessions/${sessionId}/export?format=json`, { key: alice.key });
    expect(exported.status).toBe(200);
    expect(exported.body.feedback).toEqual([down.body]);
    const markdown = await fetch(`${harness.baseUrl}/v1/sessions/${sessionId}/export`, {
      headers: { authorization: `Bearer ${alice.key}` },
    });
    expect(await markdown.text()).toContain('Paris.\n\n*Rated 👎*');

    const withdrawn = await call('DELETE', path, { key: alice.key });
    expect(withdrawn.status).toBe(200);
    expect(withdrawn.body).toEqual({ messageId: reply.id, rating: null });
    listed = await call('GET', `/v1/sessions/${sessionId}/feedback`, { key: alice.key });
    expect(listed.body.feedback).toEqual([]);

    const rated = harness
      .events('message.rated')
      .filter((event) => (event.data as { sessionId: string }).sessionId === sessionId)
      .map((event) => event.data);
    expect(rated).toEqual([
      { userId: alice.id, sessionId, messageId: reply.id, rating: 'up', comment: 'spot on' },
      { userId: alice.id, sessionId, messageId: reply.id, rating: 'down' },
      { userId: alice.id, sessionId, messageId: reply.id, rating: null },
    ]);
  });

  it('refuses bad ratings with a 400 that says what is wrong', async () => {
    const { call, alice } = harness;
    const { sessionId, question, reply } = await chatWithOneTurn();
    const path = feedbackPath(sessionId, reply.id);
    const cases: Array<[unknown, string]> = [
      [{ rating: 'meh' }, 'rating'],
      [{}, 'rating'],
      [{ rating: 'up', comment: 5 }, 'comment'],
      [{ rating: 'up', extra: true }, 'extra'],
      [{ rating: 'up', comment: 'x'.repeat(41) }, 'text_chat.feedback.max_comment_length'],
    ];
    for (const [body, named] of cases) {
      const response = await call('PUT', path, { key: alice.key, body });
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.error.message, JSON.stringify(body)).toContain(named);
    }
    const ofUserMessage = await call('PUT', feedbackPath(sessionId, question.id), {
      key: alice.key,
      body: { rating: 'up' },
    });
    expect(ofUserMessage.status).toBe(400);
    expect(ofUserMessage.body.error.message).toContain("only the assistant's replies");
    const unknownMessage = await call('PUT', feedbackPath(sessionId, 'no-such-message'), {
      key: alice.key,
      body: { rating: 'up' },
    });
    expect(unknownMessage.status).toBe(404);
    // Nothing was stored by the refused attempts.
    const listed = await call('GET', `/v1/sessions/${sessionId}/feedback`, { key: alice.key });
    expect(listed.body.feedback).toEqual([]);
  });

  it("answers another user's session or reply exactly like a missing one, and needs a key", async () => {
    const { call, alice, bob } = harness;
    const { sessionId, reply } = await chatWithOneTurn();
    const missing = '01a2a2a2-0000-7000-8000-00000000dead';
    for (const [method, body] of [
      ['PUT', { rating: 'down' }],
      ['DELETE', undefined],
    ] as const) {
      const asBob = await call(method, feedbackPath(sessionId, reply.id), {
        key: bob.key,
        ...(body === undefined ? {} : { body }),
      });
      const ofMissing = await call(method, feedbackPath(missing, reply.id), {
        key: bob.key,
        ...(body === undefined ? {} : { body }),
      });
      expect(asBob.status).toBe(404);
      expect(asBob.body.error.code).toBe(ofMissing.body.error.code);
      expect(asBob.body.error.message.replace(sessionId, 'ID')).toBe(
        ofMissing.body.error.message.replace(missing, 'ID'),
      );
      expect((await call(method, feedbackPath(sessionId, reply.id))).status).toBe(401);
    }
    expect((await call('GET', `/v1/sessions/${sessionId}/feedback`, { key: bob.key })).status).toBe(404);
    expect((await call('GET', `/v1/sessions/${sessionId}/feedback`)).status).toBe(401);
    // Bob's attempts left nothing.
    const listed = await call('GET', `/v1/sessions/${sessionId}/feedback`, { key: alice.key });
    expect(listed.body.feedback).toEqual([]);
  });

  it('keeps ratings on disk beside the messages, and deleting the chat deletes them', async () => {
    const { call, alice } = harness;
    const { sessionId, reply } = await chatWithOneTurn();
    await call('PUT', feedbackPath(sessionId, reply.id), { key: alice.key, body: { rating: 'up' } });
    const folder = join(harness.dataDir, 'sessions', encodeURIComponent(alice.id), sessionId);
    expect((await readdir(folder)).sort()).toContain('feedback.jsonl');
    expect((await call('DELETE', `/v1/sessions/${sessionId}`, { key: alice.key })).status).toBe(204);
    const left = await readdir(folder).catch(() => []);
    expect(left).not.toContain('feedback.jsonl');
    expect((await call('GET', `/v1/sessions/${sessionId}/feedback`, { key: alice.key })).status).toBe(404);
  });
});
