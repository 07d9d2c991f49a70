import { describe, expect, it } from 'vitest';
import { createLogger } from '../../observability/logger.ts';
import { createMemoryStorage } from '../../storage/drivers/memory.ts';
import { scopeStorage } from '../../storage/scoped.ts';
import type { Storage } from '../../storage/types.ts';
import defaults from './config.json' with { type: 'json' };
import { createRagService, type RagService } from './rag-service.ts';
import type { Retriever } from './retrieval.ts';
import type { RagConfig } from './types.ts';

const log = createLogger({ level: 'silent' });
const decoder = new TextDecoder();
const encoder = new TextEncoder();

function config(overrides: Partial<RagConfig> = {}): RagConfig {
  const { enabled: _enabled, ...base } = defaults;
  return {
    ...(base as RagConfig),
    // Snapshots only when a test asks for them: what is not snapshotted must come back from the journal.
    index: { snapshot_every: 1000, snapshot_delay_ms: 60_000, max_loaded_owners: 100 },
    ...overrides,
  };
}

/** A service over `storage` (the platform storage; rag sees its own root), as a node would build it. */
function service(
  storage: Storage,
  overrides: Partial<RagConfig> = {},
  retrievers: Retriever[] = [],
): RagService {
  return createRagService({
    storage: scopeStorage(storage, 'rag'),
    config: config(overrides),
    log,
    retrievers,
  });
}

const text = (topic: string) => `# ${topic}\n\nNotes about ${topic} and how ${topic} behaves in flight.\n`;

describe('rag service: durability of the per-owner index', () => {
  it('a node that stops without writing a snapshot loses nothing acknowledged: the journal is replayed', async () => {
    const storage = createMemoryStorage();
    const crashed = service(storage);
    const kept = await crashed.api.addDocument({
      ownerId: 'alice',
      filename: 'wings.md',
      content: text('wings'),
    });
    const removed = await crashed.api.addDocument({
      ownerId: 'alice',
      filename: 'flaps.md',
      content: text('flaps'),
    });
    await crashed.api.deleteDocument({ ownerId: 'alice', docId: removed.docId });
    expect(await storage.exists('rag/index/bm25/alice.json')).toBe(false);
    // `crashed` is dropped without dispose, as a killed process would be.

    const restarted = service(storage);
    const documents = await restarted.api.listDocuments({ ownerId: 'alice' });
    expect(documents.map((document) => document.docId)).toEqual([kept.docId]);
    expect((await restarted.api.query({ ownerId: 'alice', query: 'wings' }))[0]?.docId).toBe(kept.docId);
    expect(await restarted.api.query({ ownerId: 'alice', query: 'flaps' })).toEqual([]);
    expect(
      await restarted.api.addDocument({ ownerId: 'alice', filename: 'wings.md', content: text('wings') }),
    ).toMatchObject({ status: 'unchanged' });
  });

  it('replays only the journal lines after the snapshot', async () => {
    const storage = createMemoryStorage();
    const node = service(storage);
    await node.api.addDocument({ ownerId: 'alice', filename: 'a.md', content: text('rudder') });
    await node.flush();
    const snapshot = JSON.parse(decoder.decode(await storage.read('rag/index/bm25/alice.json')));
    expect(snapshot.sequence).toBe(1);
    expect(decoder.decode(await storage.read('rag/index/journal/alice.jsonl'))).toBe('');
    await node.api.addDocument({ ownerId: 'alice', filename: 'b.md', content: text('aileron') });

    const restarted = service(storage);
    expect(
      (await restarted.api.listDocuments({ ownerId: 'alice' })).map((document) => document.filename).sort(),
    ).toEqual(['a.md', 'b.md']);
    expect(await restarted.api.query({ ownerId: 'alice', query: 'aileron' })).toHaveLength(1);
  });

  it('writes a snapshot once snapshot_every changes piled up', async () => {
    const storage = createMemoryStorage();
    const node = service(storage, {
      index: { snapshot_every: 2, snapshot_delay_ms: 60_000, max_loaded_owners: 10 },
    });
    await node.api.addDocument({ ownerId: 'alice', filename: 'a.md', content: text('rudder') });
    expect(await storage.exists('rag/index/bm25/alice.json')).toBe(false);
    await node.api.addDocument({ ownerId: 'alice', filename: 'b.md', content: text('elevator') });
    await node.api.listDocuments({ ownerId: 'alice' }); // the snapshot is queued behind the change
    await node.flush();
    const snapshot = JSON.parse(decoder.decode(await storage.read('rag/index/bm25/alice.json')));
    expect(snapshot.documents).toHaveLength(2);
  });

  it('rebuilds an owner from the documents when the snapshot is unreadable or the BM25 settings changed', async () => {
    const storage = createMemoryStorage();
    const node = service(storage);
    const { docId } = await node.api.addDocument({
      ownerId: 'alice',
      filename: 'a.md',
      content: text('propeller'),
    });
    await node.api.addDocument({ ownerId: 'bob', filename: 'b.md', content: text('propeller') });
    await node.dispose();

    const retuned = service(storage, { bm25: { k1: 0.9, b: 0.4, title_weight: 1, feedback: false } });
    expect(
      (await retuned.api.query({ ownerId: 'alice', query: 'propeller' })).map((hit) => hit.docId),
    ).toEqual([docId]);

    await storage.write('rag/index/bm25/alice.json', encoder.encode('{ torn'));
    const repaired = service(storage);
    const hits = await repaired.api.query({ ownerId: 'alice', query: 'propeller' });
    expect(hits.map((hit) => hit.docId)).toEqual([docId]);
    await repaired.dispose();
    expect(JSON.parse(decoder.decode(await storage.read('rag/index/bm25/alice.json'))).format).toBe(
      'parley-rag-owner',
    );
  });

  it('drops idle, saved owners beyond max_loaded_owners and reloads them on use', async () => {
    const storage = createMemoryStorage();
    const node = service(storage, {
      index: { snapshot_every: 1, snapshot_delay_ms: 60_000, max_loaded_owners: 1 },
    });
    const alices = await node.api.addDocument({
      ownerId: 'alice',
      filename: 'a.md',
      content: text('trim tabs'),
    });
    await node.flush();
    await node.api.addDocument({ ownerId: 'bob', filename: 'b.md', content: text('trim tabs') });
    await node.flush();
    await node.api.listDocuments({ ownerId: 'carol' });
    expect(node.loadedOwners()).toBe(1);
    expect((await node.api.query({ ownerId: 'alice', query: 'trim' })).map((hit) => hit.docId)).toEqual([
      alices.docId,
    ]);
  });
});

describe('rag service: hybrid retrieval hook', () => {
  it('fuses another retriever with BM25 and ignores its hits outside the owner’s current chunks', async () => {
    const storage = createMemoryStorage();
    const indexed: string[] = [];
    const removed: string[] = [];
    let bobsChunk = '';
    // Stands in for dense vectors: it "understands" that a query about lift means the aerofoil document.
    const dense: Retriever = {
      name: 'dense',
      async indexDocument(document) {
        indexed.push(`${document.ownerId}/${document.docId}:${document.chunks.length}`);
      },
      async removeDocument(ownerId, docId) {
        removed.push(`${ownerId}/${docId}`);
      },
      async search(_query, options) {
        const state = [...(await node.api.listDocuments({ ownerId: options.ownerId }))];
        const aerofoil = state.find((document) => document.filename === 'aerofoil.md');
        const aerofoilChunk =
          aerofoil === undefined ? [] : [{ chunkId: await firstChunk(aerofoil.docId), score: 0.9 }];
        // A buggy retriever leaking another owner's chunk: rag must drop it.
        return [{ chunkId: bobsChunk, score: 0.99 }, ...aerofoilChunk];
      },
    };
    const node = service(storage, {}, [dense]);
    const firstChunk = async (docId: string) => {
      const record = JSON.parse(decoder.decode(await storage.read(`rag/documents/${docId}/metadata.json`)));
      return record.chunks[0].id as string;
    };

    const bob = await node.api.addDocument({ ownerId: 'bob', filename: 'bob.md', content: text('lift') });
    bobsChunk = await firstChunk(bob.docId);
    const aerofoil = await node.api.addDocument({
      ownerId: 'alice',
      filename: 'aerofoil.md',
      content: 'Camber and angle of attack decide the pressure difference.',
    });
    const other = await node.api.addDocument({
      ownerId: 'alice',
      filename: 'lift.md',
      content: text('lift'),
    });
    expect(indexed).toEqual([`bob/${bob.docId}:1`, `alice/${aerofoil.docId}:1`, `alice/${other.docId}:1`]);

    const hits = await node.api.query({ ownerId: 'alice', query: 'lift' });
    expect(hits.map((hit) => hit.docId).sort()).toEqual([aerofoil.docId, other.docId].sort());
    expect(hits.every((hit) => hit.docId !== bob.docId)).toBe(true);
    // The fake ignores filters; rag applies them to its hits anyway.
    const filtered = await node.api.query({
      ownerId: 'alice',
      query: 'lift',
      filter: { docId: other.docId },
    });
    expect(filtered.map((hit) => hit.docId)).toEqual([other.docId]);

    await node.api.deleteDocument({ ownerId: 'alice', docId: aerofoil.docId });
    expect(removed).toEqual([`alice/${aerofoil.docId}`]);
  });

  it('answers from BM25 alone when another retriever fails, and fails an add when indexing fails', async () => {
    const storage = createMemoryStorage();
    const broken: Retriever = {
      name: 'dense',
      async indexDocument(document) {
        if (document.record.filename === 'refused.md') throw new Error('embedding API down');
      },
      async search() {
        throw new Error('embedding API down');
      },
    };
    const node = service(storage, {}, [broken]);
    const { docId } = await node.api.addDocument({
      ownerId: 'alice',
      filename: 'a.md',
      content: text('spoilers'),
    });
    expect((await node.api.query({ ownerId: 'alice', query: 'spoilers' }))[0]?.docId).toBe(docId);
    await expect(
      node.api.addDocument({ ownerId: 'alice', filename: 'refused.md', content: text('slats') }),
    ).rejects.toThrow('embedding API down');
    expect(await node.api.listDocuments({ ownerId: 'alice' })).toHaveLength(1);
  });
});

describe('rag service: follow-up questions', () => {
  it('searches a question with the earlier turns given as context, and checks them', async () => {
    const node = service(createMemoryStorage());
    const aircraft = (name: string, kg: number, km: number) =>
      `# ${name}\n\n## Weight\n\nEmpty weight ${kg} kg.\n\n## Range\n\nRange ${km} km with full tanks.\n`;
    await node.api.addDocument({
      ownerId: 'alice',
      filename: 'heron.md',
      content: aircraft('Heron', 300, 700),
    });
    const albatross = await node.api.addDocument({
      ownerId: 'alice',
      filename: 'albatross.md',
      content: aircraft('Albatross', 320, 900),
    });
    // Alone, the two weights tie (the first indexed comes first).
    const [alone] = await node.api.query({ ownerId: 'alice', query: 'and its empty weight?' });
    expect(alone?.heading).toBe('Heron > Weight');
    const [best] = await node.api.query({
      ownerId: 'alice',
      query: 'and its empty weight?',
      context: ['What is the range of the Albatross?'],
    });
    expect(best).toMatchObject({ docId: albatross.docId, heading: 'Albatross > Weight' });
    for (const context of [['x'.repeat(5000)], Array.from({ length: 9 }, () => 'x'), 'text', [3]]) {
      await expect(
        node.api.query({ ownerId: 'alice', query: 'weight', context: context as never }),
      ).rejects.toMatchObject({ code: 'CHAT_ERR_VALIDATION_INVALID', details: { field: 'context' } });
    }
    await node.dispose();
  });
});

describe('rag service: a session’s documents', () => {
  it('removes the documents bound to a session from BM25, the other retrievers and storage', async () => {
    const storage = createMemoryStorage();
    const removed: string[] = [];
    const vectors: Retriever = {
      name: 'dense',
      async indexDocument() {},
      async removeDocument(ownerId, docId) {
        removed.push(`${ownerId}/${docId}`);
      },
      async search() {
        return [];
      },
    };
    const node = service(storage, {}, [vectors]);
    const add = (filename: string, sessionId?: string) =>
      node.api.addDocument({
        ownerId: 'alice',
        filename,
        content: text('trim tabs'),
        ...(sessionId ? { sessionId } : {}),
      });
    const bound = await add('a.md', 's1');
    const library = await add('b.md');
    const otherSession = await add('c.md', 's2');
    // Bob's session of the same id is Bob's.
    const bobs = await node.api.addDocument({
      ownerId: 'bob',
      filename: 'a.md',
      content: text('trim tabs'),
      sessionId: 's1',
    });

    const result = await node.api.deleteSessionDocuments({ ownerId: 'alice', sessionId: 's1' });
    expect(result).toEqual({ sessionId: 's1', docIds: [bound.docId], chunks: bound.chunks });
    expect(removed).toEqual([`alice/${bound.docId}`]);
    expect(await storage.list(`rag/documents/${bound.docId}/`)).toEqual([]);
    const left = (await node.api.query({ ownerId: 'alice', query: 'trim tabs', topK: 10 })).map(
      (hit) => hit.docId,
    );
    expect(new Set(left)).toEqual(new Set([library.docId, otherSession.docId]));
    expect((await node.api.listDocuments({ ownerId: 'bob' })).map((document) => document.docId)).toEqual([
      bobs.docId,
    ]);

    expect(await node.api.deleteSessionDocuments({ ownerId: 'alice', sessionId: 's1' })).toEqual({
      sessionId: 's1',
      docIds: [],
      chunks: 0,
    });
    await expect(node.api.deleteSessionDocuments({ ownerId: 'alice', sessionId: '' })).rejects.toMatchObject({
      code: 'CHAT_ERR_VALIDATION_INVALID',
      details: { field: 'sessionId' },
    });
    await node.dispose();
  });
});
