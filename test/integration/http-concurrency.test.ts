/**
 * Many things at once over real HTTP, as a busy deployment sees them: two users, four clients each, for a
 * few seconds create chats, send messages (JSON and SSE), regenerate, rate replies, rename, list, search,
 * export and delete chats — often the chat another of their clients is using. Whatever the interleaving,
 * every answer is a deliberate one (2xx, or a 4xx saying why: a chat deleted meanwhile is a 404, a reply
 * still being generated a 409), never a 5xx; and nobody ever sees the other user's chats or messages.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Message, Session } from '../../src/core/types.ts';
import { seededRandom } from '../helpers/seeded-random.ts';
import { type HttpHarness, startHttpHarness, type TestUser } from './http-harness.ts';

let harness: HttpHarness;

beforeAll(async () => {
  harness = await startHttpHarness({
    env: { CHAT_TEXT_CHAT__RATE_LIMITING__ENABLED: 'false', CHAT_TEXT_CHAT__STREAMING__CHUNK_SIZE: '1' },
  });
  harness.model.respond({ kind: 'stream', chunks: ['Noted', ', ', 'thanks'] });
});

afterAll(async () => {
  await harness?.close();
});

const RUN_MS = 4000;
const CLIENTS_PER_USER = 4;

describe('many clients at once', () => {
  it('answer every request deliberately (never a 5xx) and never show one user the other’s data', async () => {
    const { call } = harness;
    const problems: string[] = [];
    const statuses = new Map<string, number>();
    const deadline = Date.now() + RUN_MS;

    async function client(user: TestUser, marker: string, sessions: string[], seed: number): Promise<void> {
      const next = seededRandom(seed);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
      while (Date.now() < deadline) {
        const sessionId = sessions.length > 0 ? pick(sessions) : '01a2a2a2-0000-7000-8000-000000000000';
        const operation = pick([
          'create',
          'send',
          'send',
          'stream',
          'regenerate',
          'rate',
          'rename',
          'list',
          'messages',
          'search',
          'export',
          'delete',
        ] as const);
        const messagesPath = `/v1/sessions/${sessionId}/messages`;
        let response: Awaited<ReturnType<typeof call>>;
        switch (operation) {
          case 'create':
            response = await call('POST', '/v1/sessions', { key: user.key, body: { title: marker } });
            if (response.status === 201) sessions.push((response.body as Session).id);
            break;
          case 'send':
            response = await call('POST', messagesPath, {
              key: user.key,
              body: { content: `${marker} says hi` },
            });
            break;
          case 'stream':
            response = await call('POST', `${messagesPath}?stream=sse`, {
              key: user.key,
              body: { content: `${marker} streams` },
            });
            break;
          case 'regenerate':
            response = await call('POST', `/v1/sessions/${sessionId}/regenerate`, { key: user.key });
            break;
          case 'rate': {
            response = await call('GET', messagesPath, { key: user.key });
            const reply = (response.body as { messages?: Message[] }).messages?.find(
              (message) => message.role === 'assistant',
            );
            if (reply !== undefined) {
              response = await call('PUT', `${messagesPath}/${reply.id}/feedback`, {
                key: user.key,
                body: { rating: pick(['up', 'down']) },
              });
            }
            break;
          }
          case 'rename':
            response = await call('PATCH', `/v1/sessions/${sessionId}`, {
              key: user.key,
              body: { title: marker },
            });
            break;
          case 'list':
            response = await call('GET', '/v1/sessions', { key: user.key });
            if (response.status === 200) {
              for (const session of (response.body as { sessions: Session[] }).sessions) {
                if (session.userId !== user.id) problems.push(`${marker} listed a chat of ${session.userId}`);
              }
            }
            break;
          case 'messages':
            response = await call('GET', messagesPath, { key: user.key });
            if (response.status === 200) {
              for (const message of (response.body as { messages: Message[] }).messages) {
                if (message.role === 'user' && !message.content.startsWith(marker)) {
                  problems.push(`${marker} saw the message "${message.content}"`);
                }
              }
            }
            break;
          case 'search':
            response = await call('GET', '/v1/search?q=says+streams', { key: user.key });
            if (response.status === 200) {
              for (const hit of (response.body as { hits: Array<{ role: string; snippet: string }> }).hits) {
                if (hit.role === 'user' && !hit.snippet.startsWith(marker)) {
                  problems.push(`${marker} found the message "${hit.snippet}"`);
                }
              }
            }
            break;
          case 'export':
            response = await call('GET', `/v1/sessions/${sessionId}/export?format=json`, { key: user.key });
            break;
          case 'delete':
            response = await call('DELETE', `/v1/sessions/${sessionId}`, { key: user.key });
            if (response.status === 204) sessions.splice(sessions.indexOf(sessionId), 1);
            break;
        }
        const key = `${operation} ${response.status}`;
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
        if (response.status >= 500) {
          problems.push(`${operation} answered ${response.status}: ${JSON.stringify(response.body)}`);
        }
      }
    }

    const users: Array<[TestUser, string]> = [
      [harness.alice, 'alice'],
      [harness.bob, 'bob'],
    ];
    await Promise.all(
      users.flatMap(([user, marker], userIndex) => {
        const sessions: string[] = [];
        return Array.from({ length: CLIENTS_PER_USER }, (_, index) =>
          client(user, marker, sessions, userIndex * 100 + index + 1),
        );
      }),
    );
    expect(problems).toEqual([]);
    // The run did what it says: turns were answered, chats deleted, replies rated, under one another.
    for (const done of ['send 200', 'stream 200', 'delete 204', 'rate 200', 'search 200']) {
      expect(statuses.get(done) ?? 0, `${done} in ${JSON.stringify([...statuses])}`).toBeGreaterThan(0);
    }
  });
});
