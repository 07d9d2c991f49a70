import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type FakeEmbeddingsServer,
  startFakeEmbeddingsServer,
} from '../../../test/helpers/fake-embeddings-server.ts';
import { isPlatformError } from '../../core/errors.ts';
import { createEmbeddingRegistry, type EmbeddingRegistry } from '../../llm/embeddings.ts';
import { createBm25Index } from '../../retrieval/bm25.ts';
import { createMemoryStorage } from '../../storage/drivers/memory.ts';
import { chunkDocument } from './chunker.ts';
import { type EmbeddableChunk, embeddingText, setDocumentVectors } from './embed-chunks.ts';
import { createVectorIndex, loadVectorIndex, readVectorIndexManifest, vectorIndexId } from './vectors.ts';
import { hybridSearch } from './vectors-hybrid.ts';
import { reindexOwner } from './vectors-reindex.ts';

let server: FakeEmbeddingsServer;
let registry: EmbeddingRegistry;

beforeAll(async () => {
  server = await startFakeEmbeddingsServer(64);
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

const documents = {
  wings:
    '# Wings\n\nFlutter of a swept wing at transonic speed.\n\nDivergence and aileron reversal of flexible wings.' +
    '\n\nThe flutter boundary moves with the Mach number.',
  boundary:
    '# Boundary layers\n\nLaminar boundary layer transition on a flat plate.\n\nHeat transfer in hypersonic flow.',
  shells: '# Shells\n\nBuckling of thin cylindrical shells under axial compression.',
};

function chunksOf(docId: keyof typeof documents, owner: string): EmbeddableChunk[] {
  return chunkDocument({ docId, text: documents[docId] }, { chunkSize: 60, chunkOverlap: 0 }).map(
    (chunk) => ({
      ...chunk,
      metadata: { owner, topic: docId },
    }),
  );
}

const inputsSent = () => server.requests.reduce((sum, request) => sum + request.body.input.length, 0);

describe('setDocumentVectors', () => {
  it('embeds heading + text in batches, and on an edit embeds only the chunks that changed', async () => {
    const embedder = registry.embedder('ollama:nomic-embed-text', { batchSize: 2 });
    const index = createVectorIndex({ dimension: 64, model: embedder.name });
    const chunks = chunksOf('wings', 'alice');
    server.respond({ kind: 'embed' });
    expect(await setDocumentVectors(index, embedder, 'wings', chunks)).toEqual({
      embedded: chunks.length,
      reused: 0,
    });
    expect(server.requests.map((request) => request.body.input.length)).toEqual([2, 1]);
    expect(server.requests[0]!.body.input[0]).toBe(embeddingText(chunks[0]!));
    expect(server.requests[0]!.body.input[0]).toMatch(/^Wings\n\n/);

    // Edit the last paragraph: one chunk is new, one is gone, the rest keep their vectors.
    const edited = chunkDocument(
      { docId: 'wings', text: documents.wings.replace('Mach number', 'dynamic pressure') },
      { chunkSize: 60, chunkOverlap: 0 },
    );
    server.respond({ kind: 'embed' });
    expect(await setDocumentVectors(index, embedder, 'wings', edited)).toEqual({
      embedded: 1,
      reused: edited.length - 1,
    });
    expect(inputsSent()).toBe(1);
    expect(index.chunksOf('wings').sort()).toEqual(edited.map((chunk) => chunk.id).sort());
    expect(await setDocumentVectors(index, embedder, 'wings', [])).toEqual({ embedded: 0, reused: 0 });
    expect(index.size()).toBe(0);
  });

  it('leaves the index unchanged when embedding fails', async () => {
    const embedder = registry.embedder('ollama:nomic-embed-text');
    const index = createVectorIndex({ dimension: 64, model: embedder.name });
    server.respond({ kind: 'embed' });
    await setDocumentVectors(index, embedder, 'wings', chunksOf('wings', 'alice'));
    const before = index.chunksOf('wings').sort();
    server.respond({ kind: 'error', status: 500, message: 'down' });
    const edited = chunkDocument({ docId: 'wings', text: 'Entirely new text.' });
    await expect(setDocumentVectors(index, embedder, 'wings', edited)).rejects.toMatchObject({
      code: 'CHAT_ERR_LLM_PROVIDER_FAILED',
    });
    expect(index.chunksOf('wings').sort()).toEqual(before);
  });
});

describe('dense + BM25 retrieval of one owner', () => {
  it('finds the chunk about the query by vectors, and fuses both rankings', async () => {
    const embedder = registry.embedder('ollama:nomic-embed-text');
    server.respond({ kind: 'embed' });
    const index = createVectorIndex({ dimension: 64, model: embedder.name });
    const bm25 = createBm25Index();
    for (const docId of ['wings', 'boundary', 'shells'] as const) {
      const chunks = chunksOf(docId, 'alice');
      await setDocumentVectors(index, embedder, docId, chunks);
      for (const chunk of chunks) bm25.add(chunk, { ownerId: 'alice', metadata: chunk.metadata! });
    }
    const question = 'buckling of cylindrical shells';
    const [queryVector] = await embedder.embed([question]);
    const denseHits = index.search(queryVector!, { topK: 5 });
    expect(denseHits[0]!.docId).toBe('shells');
    const bm25Hits = bm25.search(question, { ownerId: 'alice', topK: 5 });
    const fused = hybridSearch({ bm25Hits, denseHits, topK: 3 });
    expect(fused[0]).toMatchObject({ docId: 'shells', bm25Rank: 1, denseRank: 1 });
    expect(fused[0]!.score).toBeCloseTo(2 / 61, 10);
    // A filter narrows the dense side too.
    const filtered = index.search(queryVector!, { topK: 5, filter: { topic: ['wings', 'boundary'] } });
    expect(filtered.some((hit) => hit.docId === 'shells')).toBe(false);
  });
});

describe('reindexOwner', () => {
  it('is the way out of a model change: the old index refuses to load, the reindexed one loads', async () => {
    const storage = createMemoryStorage();
    const oldModel = registry.embedder('ollama:nomic-embed-text');
    const newModel = registry.embedder('other:mxbai-embed-large');
    const alice = [...chunksOf('wings', 'alice'), ...chunksOf('boundary', 'alice')];
    const bob = chunksOf('shells', 'bob');
    server.respond({ kind: 'embed' });
    await reindexOwner({ storage, ownerId: 'alice', embedder: oldModel, chunks: alice });
    await reindexOwner({ storage, ownerId: 'bob', embedder: oldModel, chunks: bob });
    const bobFiles = await Promise.all(
      (await storage.list('vectors/o-bob/')).map(async (key) => [key, await storage.read(key)]),
    );

    const refused = await loadVectorIndex(storage, vectorIndexId('alice'), { model: newModel.name }).catch(
      (error: unknown) => error,
    );
    expect(isPlatformError(refused) && refused.code).toBe('CHAT_ERR_RAG_EMBEDDING_MISMATCH');
    expect((refused as Error).message).toContain('parley rag reindex');

    server.respond({ kind: 'embed' });
    const progress: number[] = [];
    const result = await reindexOwner({
      storage,
      ownerId: 'alice',
      embedder: newModel,
      chunks: (async function* () {
        yield* alice;
      })(),
      onProgress: (done) => progress.push(done),
    });
    expect(result).toMatchObject({
      ownerId: 'alice',
      indexId: 'o-alice',
      model: 'other:mxbai-embed-large',
      dimension: 64,
      chunks: alice.length,
      embedded: alice.length,
      reused: 0,
      previous: { model: 'ollama:nomic-embed-text', dimension: 64, count: alice.length },
    });
    expect(progress.at(-1)).toBe(alice.length);
    const loaded = (await loadVectorIndex(storage, 'o-alice', { model: newModel.name, dimension: 64 }))!;
    expect(loaded.size()).toBe(alice.length);
    // Another owner's index is untouched, and alice's holds none of bob's chunks.
    for (const [key, bytes] of bobFiles) expect(await storage.read(key as string)).toEqual(bytes);
    const [query] = await newModel.embed(['buckling of cylindrical shells']);
    expect(loaded.search(query!, { topK: 50 }).every((hit) => hit.docId !== 'shells')).toBe(true);
  });

  it('reuses the vectors of unchanged chunks when the model is the same', async () => {
    const storage = createMemoryStorage();
    const embedder = registry.embedder('ollama:nomic-embed-text');
    const chunks = chunksOf('wings', 'alice');
    server.respond({ kind: 'embed' });
    await reindexOwner({ storage, ownerId: 'alice', embedder, chunks });
    server.respond({ kind: 'embed' });
    const again = await reindexOwner({
      storage,
      ownerId: 'alice',
      embedder,
      chunks: [...chunks, ...chunksOf('shells', 'alice')],
    });
    expect(again.reused).toBe(chunks.length);
    expect(again.embedded).toBe(chunksOf('shells', 'alice').length);
    // Only the new chunks went to the model (its dimension was known from the first run).
    expect(inputsSent()).toBe(again.embedded);
    const manifest = await readVectorIndexManifest(storage, 'o-alice');
    expect(manifest?.count).toBe(again.chunks);
  });

  it('replaces a corrupt index, and deletes the index of an owner left with no chunks', async () => {
    const storage = createMemoryStorage();
    const embedder = registry.embedder('ollama:nomic-embed-text');
    await storage.write('vectors/o-alice/index.json', new TextEncoder().encode('not json'));
    server.respond({ kind: 'embed' });
    const result = await reindexOwner({
      storage,
      ownerId: 'alice',
      embedder,
      chunks: chunksOf('shells', 'alice'),
    });
    expect(result.previous).toBeUndefined();
    expect((await loadVectorIndex(storage, 'o-alice', { model: embedder.name }))?.size()).toBe(result.chunks);
    const emptied = await reindexOwner({ storage, ownerId: 'alice', embedder, chunks: [] });
    expect(emptied).toMatchObject({ chunks: 0, index: undefined, dimension: undefined });
    expect(await storage.list('vectors/o-alice/')).toEqual([]);
  });
});
