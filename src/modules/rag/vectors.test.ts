import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../../test/helpers/seeded-random.ts';
import { isPlatformError } from '../../core/errors.ts';
import { createMemoryStorage } from '../../storage/drivers/memory.ts';
import { annAvailable } from './ann.ts';
import { decodeNpy } from './npy.ts';
import {
  createVectorIndex,
  deleteVectorIndex,
  loadVectorIndex,
  readVectorIndexManifest,
  type VectorIndex,
  vectorIndexId,
} from './vectors.ts';

/** Vectors around `clusters` random centres: near neighbours exist, as with real embeddings. */
function clusteredVectors(count: number, dimension: number, seed: number, clusters = 20): Float32Array[] {
  const next = seededRandom(seed);
  const gaussian = () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  const centres = Array.from({ length: clusters }, () => Float32Array.from({ length: dimension }, gaussian));
  return Array.from({ length: count }, () => {
    const centre = centres[Math.floor(next() * clusters)]!;
    return centre.map((value) => value + gaussian());
  });
}

function cosine(left: ArrayLike<number>, right: ArrayLike<number>): number {
  let product = 0;
  let leftSquares = 0;
  let rightSquares = 0;
  for (let position = 0; position < left.length; position++) {
    product += left[position]! * right[position]!;
    leftSquares += left[position]! ** 2;
    rightSquares += right[position]! ** 2;
  }
  return product / Math.sqrt(leftSquares * rightSquares);
}

/** The reference answer: every vector scored, sorted. */
function bruteForce(
  entries: ReadonlyArray<{ chunkId: string; vector: Float32Array }>,
  query: Float32Array,
  topK: number,
): string[] {
  return entries
    .map((entry) => ({ chunkId: entry.chunkId, score: cosine(entry.vector, query) }))
    .sort((left, right) => right.score - left.score)
    .slice(0, topK)
    .map((entry) => entry.chunkId);
}

function fill(index: VectorIndex, vectors: Float32Array[], perDocument = 10) {
  const entries = vectors.map((vector, position) => ({
    chunkId: `c${position}`,
    docId: `d${Math.floor(position / perDocument)}`,
    vector,
    metadata: { parity: position % 2 === 0 ? 'even' : 'odd', tags: [`t${position % 5}`] },
  }));
  for (const entry of entries) index.add(entry.chunkId, entry.docId, entry.vector, entry.metadata);
  return entries;
}

function expectCode(action: () => unknown, code: string, message?: RegExp): void {
  try {
    action();
  } catch (error) {
    expect(isPlatformError(error) && error.code).toBe(code);
    if (message !== undefined) expect((error as Error).message).toMatch(message);
    return;
  }
  throw new Error(`expected ${code}`);
}

async function expectRejectCode(promise: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(isPlatformError(error) && error.code).toBe(code);
  if (message !== undefined) expect((error as Error).message).toMatch(message);
}

const MODEL = 'openai-compatible:test-embedder';

describe('createVectorIndex: exact search (small collections)', () => {
  it('returns the most similar chunks by cosine, best first, with cosine scores', () => {
    const index = createVectorIndex({ dimension: 16, model: MODEL });
    const entries = fill(index, clusteredVectors(300, 16, 1));
    for (const query of clusteredVectors(20, 16, 2)) {
      const hits = index.search(query, { topK: 7 });
      expect(hits.map((hit) => hit.chunkId)).toEqual(bruteForce(entries, query, 7));
      const best = entries.find((entry) => entry.chunkId === hits[0]!.chunkId)!;
      expect(hits[0]!.score).toBeCloseTo(cosine(best.vector, query), 5);
      expect(hits[0]!.docId).toBe(best.docId);
    }
    expect(index.stats()).toEqual({ vectors: 300, documents: 30, search: 'exact' });
  });

  it('replaces a chunk added again, and removes every chunk of a document', () => {
    const index = createVectorIndex({ dimension: 3, model: MODEL });
    index.add('a1', 'doc-a', [1, 0, 0]);
    index.add('a2', 'doc-a', [0.9, 0.1, 0]);
    index.add('b1', 'doc-b', [0, 1, 0]);
    index.add('a1', 'doc-a', [0, 0, 1]);
    expect(index.size()).toBe(3);
    expect(index.search([0, 0, 1], { topK: 1 })[0]).toMatchObject({ chunkId: 'a1', docId: 'doc-a' });
    expect(index.remove('doc-a')).toBe(2);
    expect(index.remove('doc-a')).toBe(0);
    expect(index.search([1, 0, 0]).map((hit) => hit.chunkId)).toEqual(['b1']);
    expect(index.has('a1')).toBe(false);
  });

  it('stays exact through many removals (rows move, answers do not change)', () => {
    const index = createVectorIndex({ dimension: 8, model: MODEL });
    let entries = fill(index, clusteredVectors(400, 8, 3), 7);
    for (const docId of ['d0', 'd13', 'd57', 'd20', 'd56', 'd1']) {
      index.remove(docId);
      entries = entries.filter((entry) => entry.docId !== docId);
    }
    expect(index.size()).toBe(entries.length);
    for (const query of clusteredVectors(10, 8, 4)) {
      expect(index.search(query, { topK: 10 }).map((hit) => hit.chunkId)).toEqual(
        bruteForce(entries, query, 10),
      );
    }
  });

  it('filters by metadata: equality, any of a list, and list-valued metadata', () => {
    const index = createVectorIndex({ dimension: 8, model: MODEL });
    const entries = fill(index, clusteredVectors(200, 8, 5));
    const query = clusteredVectors(1, 8, 6)[0]!;
    const even = index.search(query, { topK: 50, filter: { parity: 'even' } });
    expect(even).toHaveLength(50);
    expect(even.every((hit) => Number(hit.chunkId.slice(1)) % 2 === 0)).toBe(true);
    const evens = entries.filter((entry) => entry.metadata.parity === 'even');
    expect(even.map((hit) => hit.chunkId)).toEqual(bruteForce(evens, query, 50));
    const tagged = index.search(query, { topK: 500, filter: { tags: ['t1', 't3'] } });
    expect(tagged).toHaveLength(80);
    expect(tagged.every((hit) => [1, 3].includes(Number(hit.chunkId.slice(1)) % 5))).toBe(true);
    expect(index.search(query, { filter: { parity: 'neither' } })).toEqual([]);
    expect(index.search(query, { filter: { missing: 'x' } })).toEqual([]);
    expectCode(
      () => index.search(query, { filter: { parity: { $ne: 1 } as never } }),
      'CHAT_ERR_VALIDATION_INVALID',
    );
  });

  it('refuses a vector of another dimension with the reindex hint, and leaves the index as it was', () => {
    const index = createVectorIndex({ dimension: 4, model: MODEL });
    index.add('c1', 'd1', [1, 2, 3, 4]);
    expectCode(
      () => index.add('c1', 'd1', [1, 2, 3]),
      'CHAT_ERR_RAG_EMBEDDING_MISMATCH',
      /parley rag reindex/,
    );
    expectCode(() => index.search([1, 2, 3, 4, 5]), 'CHAT_ERR_RAG_EMBEDDING_MISMATCH', /dimension 4/);
    expectCode(() => index.add('c2', 'd1', [1, Number.NaN, 3, 4]), 'CHAT_ERR_VALIDATION_INVALID');
    expect(index.size()).toBe(1);
    expect([...index.vectorOf('c1')!].map((value) => Number(value.toFixed(4)))).toEqual([
      0.1826, 0.3651, 0.5477, 0.7303,
    ]);
  });
});

describe.skipIf(!annAvailable)('createVectorIndex: the HNSW graph (usearch)', () => {
  const dimension = 32;
  const ann = { minVectors: 500 };

  it('builds the graph once the index reaches ann.minVectors, and finds what exact search finds', () => {
    const index = createVectorIndex({ dimension, model: MODEL, ann });
    const vectors = clusteredVectors(3000, dimension, 7);
    fill(index, vectors.slice(0, 499));
    expect(index.stats().search).toBe('exact');
    fill(index, vectors);
    expect(index.stats().search).toBe('hnsw');
    let found = 0;
    const queries = clusteredVectors(100, dimension, 8);
    for (const query of queries) {
      const truth = new Set(index.search(query, { topK: 10, exact: true }).map((hit) => hit.chunkId));
      const hits = index.search(query, { topK: 10 });
      expect(hits).toHaveLength(10);
      for (let position = 1; position < hits.length; position++) {
        expect(hits[position - 1]!.score).toBeGreaterThanOrEqual(hits[position]!.score);
      }
      found += hits.filter((hit) => truth.has(hit.chunkId)).length;
    }
    expect(found / (queries.length * 10)).toBeGreaterThan(0.95);
  });

  it('takes batches with addMany (all or nothing) into the graph as well as one by one', () => {
    const index = createVectorIndex({ dimension, model: MODEL, ann });
    const vectors = clusteredVectors(3000, dimension, 18);
    for (let start = 0; start < vectors.length; start += 500) {
      index.addMany(
        vectors.slice(start, start + 500).map((vector, offset) => ({
          chunkId: `c${start + offset}`,
          docId: `d${(start + offset) >> 3}`,
          vector,
        })),
      );
    }
    expect(index.stats()).toMatchObject({ vectors: 3000, search: 'hnsw' });
    const bad = [
      { chunkId: 'x1', docId: 'dx', vector: vectors[0]! },
      { chunkId: 'x2', docId: 'dx', vector: [1] },
    ];
    expectCode(() => index.addMany(bad), 'CHAT_ERR_RAG_EMBEDDING_MISMATCH');
    expect(index.size()).toBe(3000);
    let found = 0;
    const queries = clusteredVectors(50, dimension, 19);
    for (const query of queries) {
      const truth = new Set(index.search(query, { topK: 10, exact: true }).map((hit) => hit.chunkId));
      found += index.search(query, { topK: 10 }).filter((hit) => truth.has(hit.chunkId)).length;
    }
    expect(found / (queries.length * 10)).toBeGreaterThan(0.95);
  });

  it('keeps removed documents out of graph results and filters broad and narrow', () => {
    const index = createVectorIndex({ dimension, model: MODEL, ann });
    let entries = fill(index, clusteredVectors(2000, dimension, 9));
    for (let document = 0; document < 200; document += 3) {
      index.remove(`d${document}`);
      entries = entries.filter((entry) => entry.docId !== `d${document}`);
    }
    const removed = new Set(['d0', 'd3', 'd99']);
    for (const query of clusteredVectors(30, dimension, 10)) {
      const hits = index.search(query, { topK: 20 });
      expect(hits.some((hit) => removed.has(hit.docId))).toBe(false);
      const odd = index.search(query, { topK: 20, filter: { parity: 'odd' } });
      expect(odd).toHaveLength(20);
      expect(odd.every((hit) => Number(hit.chunkId.slice(1)) % 2 === 1)).toBe(true);
      // Narrow: one document's chunks, answered exactly.
      const one = index.search(query, { topK: 5, filter: { parity: 'even', tags: 't0' } });
      const expected = entries.filter(
        (entry) => entry.metadata.parity === 'even' && entry.metadata.tags[0] === 't0',
      );
      expect(one.map((hit) => hit.chunkId)).toEqual(bruteForce(expected, query, 5));
    }
  });
});

describe('save and loadVectorIndex', () => {
  it('writes embeddings.npy (unit rows, NumPy format) and index.json, and loads the same index back', async () => {
    const storage = createMemoryStorage();
    const index = createVectorIndex({ dimension: 6, model: MODEL });
    const entries = fill(index, clusteredVectors(50, 6, 11));
    index.remove('d2');
    await index.save(storage, 'o-alice');
    expect(await storage.list('vectors/o-alice/')).toEqual([
      'vectors/o-alice/embeddings.npy',
      'vectors/o-alice/index.json',
    ]);

    const matrix = decodeNpy((await storage.read('vectors/o-alice/embeddings.npy'))!);
    expect([matrix.rows, matrix.columns]).toEqual([40, 6]);
    const manifest = (await readVectorIndexManifest(storage, 'o-alice'))!;
    expect(manifest).toMatchObject({
      model: MODEL,
      dimension: 6,
      metric: 'cosine',
      normalized: true,
      count: 40,
    });
    const row = manifest.chunkIds.indexOf('c7');
    const stored = matrix.data.subarray(row * 6, row * 6 + 6);
    expect(Math.hypot(...stored)).toBeCloseTo(1, 5);
    expect(cosine(stored, entries[7]!.vector)).toBeCloseTo(1, 5);
    expect(manifest.metadata[row]).toEqual({ parity: 'odd', tags: ['t2'] });

    const loaded = (await loadVectorIndex(storage, 'o-alice', { model: MODEL, dimension: 6 }))!;
    expect(loaded.size()).toBe(40);
    for (const query of clusteredVectors(5, 6, 12)) {
      expect(loaded.search(query, { topK: 8, filter: { parity: 'odd' } })).toEqual(
        index.search(query, { topK: 8, filter: { parity: 'odd' } }),
      );
    }
    expect(await loadVectorIndex(storage, 'o-bob', { model: MODEL })).toBeUndefined();
  });

  it('refuses an index built with another model or dimension, naming `parley rag reindex`', async () => {
    const storage = createMemoryStorage();
    const index = createVectorIndex({ dimension: 4, model: 'ollama:nomic-embed-text' });
    index.add('c1', 'd1', [1, 0, 0, 0]);
    await index.save(storage, 'o-alice');
    await expectRejectCode(
      loadVectorIndex(storage, 'o-alice', { model: 'openai:text-embedding-3-small' }),
      'CHAT_ERR_RAG_EMBEDDING_MISMATCH',
      /built with embedding model ollama:nomic-embed-text \(dimension 4\), but openai:text-embedding-3-small is configured now; run `parley rag reindex`/,
    );
    await expectRejectCode(
      loadVectorIndex(storage, 'o-alice', { model: 'ollama:nomic-embed-text', dimension: 768 }),
      'CHAT_ERR_RAG_EMBEDDING_MISMATCH',
      /dimension 768/,
    );
  });

  it('detects a torn save (files that disagree) instead of reading a shorter index', async () => {
    const storage = createMemoryStorage();
    const index = createVectorIndex({ dimension: 4, model: MODEL });
    fill(index, clusteredVectors(20, 4, 13));
    await index.save(storage, 'o-alice');
    const oldNpy = (await storage.read('vectors/o-alice/embeddings.npy'))!;
    index.remove('d0');
    await index.save(storage, 'o-alice');
    // The new index.json with the old embeddings: what a crash between two writes of a driver could leave.
    await storage.write('vectors/o-alice/embeddings.npy', oldNpy);
    await expectRejectCode(
      loadVectorIndex(storage, 'o-alice', { model: MODEL }),
      'CHAT_ERR_RAG_INDEX_CORRUPT',
      /parley rag reindex/,
    );
    await storage.write('vectors/o-alice/index.json', new TextEncoder().encode('{"format":'));
    await expectRejectCode(
      loadVectorIndex(storage, 'o-alice', { model: MODEL }),
      'CHAT_ERR_RAG_INDEX_CORRUPT',
    );
    expect(await deleteVectorIndex(storage, 'o-alice')).toBe(2);
    expect(await loadVectorIndex(storage, 'o-alice', { model: MODEL })).toBeUndefined();
  });

  it.skipIf(!annAvailable)(
    'stores the graph, loads it back, and rebuilds it when it is missing or damaged',
    async () => {
      const storage = createMemoryStorage();
      const ann = { minVectors: 300 };
      const index = createVectorIndex({ dimension: 16, model: MODEL, ann });
      fill(index, clusteredVectors(1200, 16, 14));
      index.remove('d5');
      index.add('c-new', 'd-new', clusteredVectors(1, 16, 15)[0]!);
      await index.save(storage, 'o-alice');
      expect(await storage.exists('vectors/o-alice/ann.usearch')).toBe(true);
      const queries = clusteredVectors(20, 16, 16);
      const expected = queries.map((query) => index.search(query, { topK: 10 }));

      const loaded = (await loadVectorIndex(storage, 'o-alice', { model: MODEL, ann }))!;
      expect(loaded.stats()).toEqual({ vectors: 1191, documents: 120, search: 'hnsw' });
      expect(queries.map((query) => loaded.search(query, { topK: 10 }))).toEqual(expected);

      // A damaged graph file is ignored and the graph rebuilt from the embeddings.
      await storage.write('vectors/o-alice/ann.usearch', new Uint8Array([1, 2, 3]));
      const rebuilt = (await loadVectorIndex(storage, 'o-alice', { model: MODEL, ann }))!;
      expect(rebuilt.stats().search).toBe('hnsw');
      const truth = queries.map((query) =>
        rebuilt.search(query, { topK: 10, exact: true }).map((hit) => hit.chunkId),
      );
      const recall =
        queries
          .map(
            (query, position) =>
              rebuilt.search(query, { topK: 10 }).filter((hit) => truth[position]!.includes(hit.chunkId))
                .length,
          )
          .reduce((sum, value) => sum + value, 0) / 200;
      expect(recall).toBeGreaterThan(0.95);

      // Other graph settings than the stored graph's: rebuilt with the configured ones.
      const other = (await loadVectorIndex(storage, 'o-alice', {
        model: MODEL,
        ann: { ...ann, connectivity: 8 },
      }))!;
      expect(other.stats().search).toBe('hnsw');

      // Saved again without a graph (it shrank below minVectors): the stale graph file goes.
      for (let document = 0; document < 100; document++) other.remove(`d${document}`);
      const small = createVectorIndex({ dimension: 16, model: MODEL, ann });
      small.add('c1', 'd1', clusteredVectors(1, 16, 17)[0]!);
      await small.save(storage, 'o-alice');
      expect(await storage.exists('vectors/o-alice/ann.usearch')).toBe(false);
    },
  );
});

describe('vectorIndexId', () => {
  it('gives each owner its own index folder, readable when the owner id is a safe segment', () => {
    expect(vectorIndexId('alice')).toBe('o-alice');
    expect(vectorIndexId('user_01J9Z')).toBe('o-user_01J9Z');
    const unsafe = ['../bob', 'bob/..', 'Bob Smith', 'ü', 'a'.repeat(65)].map(vectorIndexId);
    for (const id of unsafe) expect(id).toMatch(/^h-[0-9a-f]{32}$/);
    expect(new Set([...unsafe, vectorIndexId('alice'), vectorIndexId('Alice')]).size).toBe(7);
    expectCode(() => vectorIndexId(''), 'CHAT_ERR_VALIDATION_INVALID');
  });
});
