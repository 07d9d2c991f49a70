import { describe, expect, it } from 'vitest';
import type { Message, Session } from '../core/types.ts';
import { exportContentDisposition, jsonExport, markdownExport } from './chat-export.ts';

const session: Session = {
  id: 's1',
  userId: 'u1',
  createdAt: '2026-03-04T10:00:00.000Z',
  metadata: {
    title: 'Über "quotes" / plans',
    updatedAt: '2026-03-05T11:00:00.000Z',
    model: 'openai:gpt-4o-mini',
  },
};

function message(role: Message['role'], content: string, metadata: Record<string, unknown> = {}): Message {
  return { id: `${role}-${content.length}`, role, content, timestamp: '2026-03-04T10:00:05.250Z', metadata };
}

async function text(pieces: AsyncIterable<string>): Promise<string> {
  let all = '';
  for await (const piece of pieces) all += piece;
  return all;
}

async function* pagesOf(...pages: Message[][]) {
  for (const page of pages) yield page;
}

describe('chat export', () => {
  it('writes Markdown with the title, dates, who said what, cited sources and how a reply ended', async () => {
    const markdown = await text(
      markdownExport({
        session,
        exportedAt: '2026-03-06T00:00:00.000Z',
        feedback: [
          { messageId: 'assistant-15', rating: 'down', comment: 'wrong\nunits', updatedAt: 'then' },
          { messageId: 'assistant-7', rating: 'up', updatedAt: 'then' },
        ],
        pages: pagesOf(
          [message('user', 'How much fuel?')],
          [],
          [
            message('assistant', '212 litres [1].', {
              model: 'openai:gpt-4o-mini',
              citations: [{ docId: 'd1', title: 'Albatross', heading: 'Fuel', start: 10, end: 80 }],
            }),
            message('assistant', 'Partial', { finishReason: 'cancelled' }),
          ],
        ),
      }),
    );
    expect(markdown).toContain('# Über "quotes" / plans\n');
    expect(markdown).toContain('- Started: 2026-03-04 10:00:00 UTC');
    expect(markdown).toContain('- Last active: 2026-03-05 11:00:00 UTC');
    expect(markdown).toContain('## You · 2026-03-04 10:00:05 UTC\n\nHow much fuel?');
    expect(markdown).toContain(
      '## Assistant · 2026-03-04 10:00:05 UTC · openai:gpt-4o-mini\n\n212 litres [1].',
    );
    expect(markdown).toContain('**Sources**\n\n1. Albatross — Fuel (document `d1`, characters 10–80)');
    expect(markdown).toContain('Partial\n\n*Stopped before the end.*\n\n*Rated 👍*');
    expect(markdown).toContain('characters 10–80)\n\n*Rated 👎: wrong units*');
    expect(markdown.match(/Rated/g)).toHaveLength(2);
  });

  it('writes JSON that parses, with the ratings, and with an empty chat too', async () => {
    const messages = [message('user', 'a'), message('assistant', 'bb')];
    const feedback = [{ messageId: 'assistant-2', rating: 'up' as const, updatedAt: 'then' }];
    const full = JSON.parse(
      await text(
        jsonExport({
          session,
          exportedAt: 'now',
          feedback,
          pages: pagesOf([messages[0]!], [], [messages[1]!]),
        }),
      ),
    );
    expect(full).toEqual({
      format: 'parley-chat-export',
      version: 1,
      exportedAt: 'now',
      session,
      messages,
      feedback,
    });
    const empty = JSON.parse(
      await text(jsonExport({ session, exportedAt: 'now', feedback: [], pages: pagesOf([]) })),
    );
    expect(empty.messages).toEqual([]);
    expect(empty.feedback).toEqual([]);
  });

  it('names the download after the chat, safe in a header', () => {
    expect(exportContentDisposition(session, 'markdown')).toBe(
      `attachment; filename="parley-uber-quotes-plans-2026-03-04.md"; filename*=UTF-8''parley-%C3%BCber-quotes-plans-2026-03-04.md`,
    );
    const untitled = { ...session, metadata: { title: '!!!' } };
    expect(exportContentDisposition(untitled, 'json')).toContain('filename="parley-chat-2026-03-04.json"');
  });
});
