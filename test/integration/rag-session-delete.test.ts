/**
 * Deleting a chat session takes the documents bound to it along: text_chat emits `session.deleted`, rag
 * removes the session's documents (chunks, vectors, files). The user's library and other sessions' documents
 * stay. Real modules on the in-process bus and flatfile storage.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ModuleDefinition } from '../../src/core/module.ts';
import type { Session } from '../../src/core/types.ts';
import rag from '../../src/modules/rag/index.ts';
import type { DocumentSummary, RagHit } from '../../src/modules/rag/types.ts';
import textChat from '../../src/modules/text_chat/index.ts';
import { type Harness, startHarness } from '../../src/modules/text_chat/test-harness.ts';

const definitions = new Map<string, ModuleDefinition<never, unknown>>([
  ['text_chat', textChat as never],
  ['rag', rag as never],
]);

/** The bus delivers the event after the delete's reply; on a loaded machine that may take a while. */
const WAIT = { timeout: 10_000, interval: 20 };

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

describe('deleting a chat session', () => {
  it("removes the session's documents and keeps the library and other sessions' documents", async () => {
    const h = await startHarness({ definitions });
    harness = h;
    const session = await h.bus.request<Session>('session.start', { userId: 'u1' });
    const other = await h.bus.request<Session>('session.start', { userId: 'u1' });
    const add = async (filename: string, sessionId?: string) =>
      (
        await h.bus.request<{ docId: string }>('rag.document.add', {
          ownerId: 'u1',
          filename,
          content: `# ${filename}\n\nNotes on flutter of the ${filename} panels.`,
          ...(sessionId === undefined ? {} : { sessionId }),
        })
      ).docId;
    const bound = [await add('rudder.md', session.id), await add('aileron.md', session.id)];
    const library = await add('library.md');
    const elsewhere = await add('elevator.md', other.id);
    const list = async () =>
      (
        await h.bus.request<{ documents: DocumentSummary[] }>('rag.document.list', { ownerId: 'u1' })
      ).documents
        .map((document) => document.docId)
        .sort();
    expect(await list()).toEqual([...bound, library, elsewhere].sort());

    await h.bus.request('session.delete', { userId: 'u1', sessionId: session.id });
    // rag acts on the event after the reply: wait for its two 'deleted' changes.
    await vi.waitFor(() => {
      const deleted = h
        .events('rag.document.changed')
        .filter((event) => (event.data as { change: string }).change === 'deleted');
      expect(deleted.map((event) => (event.data as { docId: string }).docId).sort()).toEqual(
        [...bound].sort(),
      );
    });

    expect(await list()).toEqual([library, elsewhere].sort());
    for (const docId of bound) {
      expect(await h.storage.list(`rag/documents/${docId}/`)).toEqual([]);
      const missing = await h.bus
        .request('rag.document.get', { ownerId: 'u1', docId })
        .catch((error: { code?: string }) => error);
      expect(missing).toMatchObject({ code: 'CHAT_ERR_NOT_FOUND' });
    }
    // Their chunks are out of the index: a query reaches only what is left.
    const { hits } = await h.bus.request<{ hits: RagHit[] }>('rag.query', {
      ownerId: 'u1',
      query: 'flutter panels',
      topK: 10,
    });
    expect([...new Set(hits.map((hit) => hit.docId))].sort()).toEqual([library, elsewhere].sort());
    expect(await h.storage.list(`rag/documents/${library}/`)).toHaveLength(2);

    // A session without documents, and a repeated event (at-least-once delivery), change nothing.
    await h.bus.request('session.delete', { userId: 'u1', sessionId: other.id });
    await vi.waitFor(async () => expect(await list()).toEqual([library]), WAIT);
    await h.bus.emit('session.deleted', { userId: 'u1', sessionId: session.id }, { userId: 'u1' });
    await h.bus.emit('session.deleted', { userId: 'u1', sessionId: 'no-such-session' }, { userId: 'u1' });
    expect(await list()).toEqual([library]);
  });
});
