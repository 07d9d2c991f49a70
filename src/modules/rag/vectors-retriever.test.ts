import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type FakeEmbeddingsServer,
  startFakeEmbeddingsServer,
} from '../../../test/helpers/fake-embeddings-server.ts';
import { isPlatformError } from '../../core/errors.ts';
import { createEmbeddingRegistry, type EmbeddingRegistry } from '../../llm/embeddings.ts';
import { createMemoryStorage } from '../../storage/drivers/memory.ts';
import type { Storage } from '../../storage/types.ts';
import { chunkDocument } from './chunker.ts';
import type { RetrieverDocument } from './retrieval.ts';
import { readVectorIndexManifest } from './vectors.ts';
import { createDenseRetriever, type DenseRetrieverOptions } from './vectors-retriever.ts';

let server: FakeEmbeddingsServer;
let registry: EmbeddingRegistry;

beforeAll(async () => {
  server = await startFakeEmbeddingsServer(48);
  registry = createEmbeddingRegistry(
    {
      max_retries: 0,
      providers: {
        ollama: { type: 'openai-compatible', base_url: server.baseUrl },
        other: { type: 'openai-compatible', base_url: server.baseUrl },
      },
    },
    { env: {} },
  );
});

afterAll(async () => {
  await registry.dispose();
  await server.close();
});

const texts: Record<string, string> = {
  wings: 'Flutter of swept wings at transonic speed.\n\nAileron reversal of flexible wings.',
  shells: 'Buckling of thin cylindrical shells under axial compression.\n\nPostbuckling of shells.',
  plates: 'Heat transfer to a flat plate in hypersonic flow.',
};

function documentFor(ownerId: string, docId: string, text = texts[docId]!, topic = docId): RetrieverDocument {
  const chunks = chunkDocument({ docId, text }, { chunkSize: 50, chunkOverlap: 0 });
  return {
    ownerId,
    docId,
    record: {} as RetrieverDocument['record'],
    chunks: chunks.map((chunk) => ({ id: chunk.id, text: chunk.text, metadata: { docId, topic } })),
  };
}

function retriever(storage: Storage, overrides: Partial<DenseRetrieverOptions> = {}) {
  return createDenseRetriever({
    storage,
    embedder: registry.embedder('ollama:nomic-embed-text'),
    snapshotEvery: 1000,
    snapshotDelayMs: 60_000,
    ...overrides,
  });
}

const docsOf = (hits: Array<{ chunkId: string }>, documents: RetrieverDocument[]) =>
  hits.map(
    (hit) => documents.find((document) => document.chunks.some((chunk) => chunk.id === hit.chunkId))?.docId,
  );

describe('createDenseRetriever', () => {
  it('answers from the asking owner’s chunks only, by meaning of the words, with filters', async () => {
    server.respond({ kind: 'embed' });
    const dense = retriever(createMemoryStorage());
    const alice = [documentFor('alice', 'wings'), documentFor('alice', 'shells')];
    const bob = [documentFor('bob', 'plates'), documentFor('bob', 'bob-shells', texts.shells)];
    for (const document of [...alice, ...bob]) await dense.indexDocument(document);
    const all = [...alice, ...bob];

    const hits = await dense.search('buckling shells', { ownerId: 'alice', topK: 10 });
    expect(hits.length).toBe(4);
    expect(docsOf(hits, alice)[0]).toBe('shells');
    // Bob has the same shell text in a document of his own: none of his chunks comes back for alice.
    const bobChunks = new Set(bob.flatMap((document) => document.chunks.map((chunk) => chunk.id)));
    expect(hits.some((hit) => bobChunks.has(hit.chunkId))).toBe(false);
    expect(docsOf(await dense.search('buckling shells', { ownerId: 'bob', topK: 10 }), all)).not.toContain(
      'wings',
    );
    const filtered = await dense.search('buckling shells', {
      ownerId: 'alice',
      topK: 10,
      filter: { topic: 'wings' },
    });
    expect(docsOf(filtered, alice).every((docId) => docId === 'wings')).toBe(true);
    expect(await dense.search('anything', { ownerId: 'carol', topK: 5 })).toEqual([]);
    await dense.dispose();
  });

  it('keeps acknowledged changes across a crash (journal), and snapshots them on flush', async () => {
    const storage = createMemoryStorage();
    server.respond({ kind: 'embed' });
    const first = retriever(storage);
    await first.indexDocument(documentFor('alice', 'wings'));
    await first.indexDocument(documentFor('alice', 'shells'));
    await first.removeDocument('alice', 'wings');
    // No flush: the process "dies" here.
    expect(await storage.exists('vectors/o-alice/index.json')).toBe(false);
    const second = retriever(storage);
    const hits = await second.search('flutter wings', { ownerId: 'alice', topK: 10 });
    expect(hits).toHaveLength(2);
    expect(docsOf(hits, [documentFor('alice', 'shells')]).every((docId) => docId === 'shells')).toBe(true);

    await second.flush();
    expect(await storage.exists('vectors/o-alice/journal.jsonl')).toBe(false);
    expect(await readVectorIndexManifest(storage, 'o-alice')).toMatchObject({ count: 2, sequence: 3 });
    server.respond({ kind: 'embed' });
    const third = retriever(storage);
    expect(await third.search('shells', { ownerId: 'alice', topK: 10 })).toHaveLength(2);
    // Only the query was embedded: the vectors came from the snapshot.
    expect(server.requests.map((request) => request.body.input)).toEqual([['shells']]);
  });

  it('snapshots after snapshotEvery changes, and embeds only the changed chunks of an edited document', async () => {
    const storage = createMemoryStorage();
    server.respond({ kind: 'embed' });
    const dense = retriever(storage, { snapshotEvery: 2 });
    await dense.indexDocument(documentFor('alice', 'wings'));
    expect(await storage.exists('vectors/o-alice/journal.jsonl')).toBe(true);
    server.respond({ kind: 'embed' });
    const edited = documentFor('alice', 'wings', `${texts.wings}\n\nDivergence speed.`);
    await dense.indexDocument(edited);
    expect(server.requests.flatMap((request) => request.body.input)).toEqual(['Divergence speed.']);
    expect(await storage.exists('vectors/o-alice/journal.jsonl')).toBe(false);
    expect((await readVectorIndexManifest(storage, 'o-alice'))?.count).toBe(3);
  });

  it('fails an add whose embedding fails, leaving the owner’s vectors as they were', async () => {
    const storage = createMemoryStorage();
    server.respond({ kind: 'embed' });
    const dense = retriever(storage);
    await dense.indexDocument(documentFor('alice', 'wings'));
    server.respond({ kind: 'error', status: 500, message: 'down' });
    await expect(dense.indexDocument(documentFor('alice', 'shells'))).rejects.toMatchObject({
      code: 'CHAT_ERR_LLM_PROVIDER_FAILED',
    });
    server.respond({ kind: 'embed' });
    expect(await dense.search('shells', { ownerId: 'alice', topK: 10 })).toHaveLength(2);
    const journal = new TextDecoder().decode(await storage.read('vectors/o-alice/journal.jsonl'));
    expect(journal.trim().split('\n')).toHaveLength(1);
  });

  it('refuses another model’s vectors until reindex rebuilds them', async () => {
    const storage = createMemoryStorage();
    server.respond({ kind: 'embed' });
    const old = retriever(storage);
    await old.indexDocument(documentFor('alice', 'wings'));
    await old.dispose();

    const switched = retriever(storage, { embedder: registry.embedder('other:mxbai-embed-large') });
    const error = await switched
      .search('wings', { ownerId: 'alice', topK: 5 })
      .catch((caught: unknown) => caught);
    expect(isPlatformError(error) && error.code).toBe('CHAT_ERR_RAG_EMBEDDING_MISMATCH');
    expect((error as Error).message).toMatch(
      /ollama:nomic-embed-text .* other:mxbai-embed-large .*parley rag reindex/,
    );
    await expect(switched.indexDocument(documentFor('alice', 'shells'))).rejects.toMatchObject({
      code: 'CHAT_ERR_RAG_EMBEDDING_MISMATCH',
    });

    const chunks = [documentFor('alice', 'wings'), documentFor('alice', 'shells')].flatMap((document) =>
      document.chunks.map((chunk) => ({ ...chunk, docId: document.docId })),
    );
    const result = await switched.reindex('alice', chunks);
    expect(result).toMatchObject({ model: 'other:mxbai-embed-large', chunks: 4, embedded: 4 });
    expect(await switched.search('wings', { ownerId: 'alice', topK: 10 })).toHaveLength(4);
    await switched.indexDocument(documentFor('alice', 'plates'));
    expect(await switched.search('plate', { ownerId: 'alice', topK: 10 })).toHaveLength(5);
  });

  it('forgets an owner another node changed: the next call loads it, and later changes follow on', async () => {
    server.respond({ kind: 'embed' });
    const storage = createMemoryStorage();
    const [one, two] = [retriever(storage), retriever(storage)];
    await one.indexDocument(documentFor('alice', 'wings'));
    expect(await two.search('wings', { ownerId: 'alice', topK: 10 })).toHaveLength(2);
    await one.indexDocument(documentFor('alice', 'shells'));
    // Node two's copy predates the shells: rag tells it to forget alice once it took in the change.
    expect(await two.search('shells', { ownerId: 'alice', topK: 10 })).toHaveLength(2);
    await two.forget('alice');
    expect(await two.search('shells', { ownerId: 'alice', topK: 10 })).toHaveLength(4);
    // Its own next change is journaled after node one's, so a node started now has all three.
    await two.indexDocument(documentFor('alice', 'plates'));
    const started = retriever(storage);
    const all = [
      documentFor('alice', 'wings'),
      documentFor('alice', 'shells'),
      documentFor('alice', 'plates'),
    ];
    const hits = await started.search('plate', { ownerId: 'alice', topK: 10 });
    expect(new Set(docsOf(hits, all))).toEqual(new Set(['wings', 'shells', 'plates']));
  });
});
