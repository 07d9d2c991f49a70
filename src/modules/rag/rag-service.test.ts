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
    // Snapshots only when a test asks for them: what is not snapshotted must come back from the list.
    index: { snapshot_every: 1000, snapshot_delay_ms: 60_000, max_loaded_owners: 100, version_check_ms: 0 },
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

const filenamesOf = async (node: RagService, ownerId: string) =>
  (await node.api.listDocuments({ ownerId })).map((document) => document.filename);

const text = (topic: string) => `# ${topic}\n\nNotes about ${topic} and how ${topic} behaves in flight.\n`;

/** Adds `filename`, notes about `topic` (see `text`), to `ownerId`'s documents on `node`. */
const addNotesAbout = (node: RagService, ownerId: string, filename: string, topic: string) =>
  node.api.addDocument({ ownerId, filename, content: text(topic) });

describe('rag service: durability of the per-owner index', () => {
  it('a node that stops without writing a snapshot loses nothing acknowledged: the document list is read', async () => {
    const storage = createMemoryStorage();
    const crashed = service(storage);
    const kept = await addNotesAbout(crashed, 'alice', 'wings.md', 'wings');
    const removed = await addNotesAbout(crashed, 'alice', 'flaps.md', 'flaps');
    await crashed.api.deleteDocument({ ownerId: 'alice', docId: removed.docId });
    expect(await storage.exists('rag/index/bm25/alice.json')).toBe(false);
    // `crashed` is dropped without dispose, as a killed process would be.

    const restarted = service(storage);
    const documents = await restarted.api.listDocuments({ ownerId: 'alice' });
    expect(documents.map((document) => document.docId)).toEqual([kept.docId]);
    expect((await restarted.api.query({ ownerId: 'alice', query: 'wings' }))[0]?.docId).toBe(kept.docId);
    expect(await restarted.api.query({ ownerId: 'alice', query: 'flaps' })).toEqual([]);
    expect(await addNotesAbout(restarted, 'alice', 'wings.md', 'wings')).toMatchObject({
      status: 'unchanged',
    });
  });

  it('reads the change log after the snapshot: documents added or deleted after it are read or dropped', async () => {
    const storage = createMemoryStorage();
    const node = service(storage);
    const rudder = await addNotesAbout(node, 'alice', 'a.md', 'rudder');
    await node.flush();
    const snapshot = JSON.parse(decoder.decode(await storage.read('rag/index/bm25/alice.json')));
    const log = decoder.decode(await storage.read('rag/index/log/alice/0000000001.jsonl'));
    const [header, line] = log
      .trimEnd()
      .split('\n')
      .map((text) => JSON.parse(text));
    expect(header).toEqual({ generation: 1 });
    expect(line).toEqual({
      doc: rudder.docId,
      rev: expect.stringMatching(/^[0-9a-f]{16}$/),
      id: expect.any(String),
    });
    expect(snapshot).toMatchObject({
      version: 2,
      generation: 1,
      offset: encoder.encode(log).length,
      revisions: { [rudder.docId]: line.rev },
    });
    await addNotesAbout(node, 'alice', 'b.md', 'aileron');
    await node.api.deleteDocument({ ownerId: 'alice', docId: rudder.docId });

    const restarted = service(storage);
    expect(
      (await restarted.api.listDocuments({ ownerId: 'alice' })).map((document) => document.filename),
    ).toEqual(['b.md']);
    expect(await restarted.api.query({ ownerId: 'alice', query: 'aileron' })).toHaveLength(1);
    expect(await restarted.api.query({ ownerId: 'alice', query: 'rudder' })).toEqual([]);
  });

  it('loads an owner stored before the change log (snapshot version 1 and a journal)', async () => {
    const storage = createMemoryStorage();
    const node = service(storage);
    const kept = await addNotesAbout(node, 'al.ice', 'a.md', 'rudder');
    const journaled = await addNotesAbout(node, 'al.ice', 'b.md', 'slats');
    const deleted = await addNotesAbout(node, 'al.ice', 'c.md', 'spoilers');
    // What the earlier format stored: a snapshot up to sequence 2 and journal lines after it, no log;
    // deleting c.md had deleted its files.
    for (const key of await storage.list('rag/index/')) await storage.delete(key);
    const record = JSON.parse(
      decoder.decode(await storage.read(`rag/documents/${kept.docId}/metadata.json`)),
    );
    const other = JSON.parse(
      decoder.decode(await storage.read(`rag/documents/${deleted.docId}/metadata.json`)),
    );
    await storage.write(
      'rag/index/bm25/al%2Eice.json',
      encoder.encode(
        JSON.stringify({
          format: 'parley-rag-owner',
          version: 1,
          ownerId: 'al.ice',
          sequence: 2,
          documents: [record, other],
          bm25: {},
        }),
      ),
    );
    for (const key of await storage.list(`rag/documents/${deleted.docId}/`)) await storage.delete(key);
    const lines = [
      { seq: 2, op: 'delete', docId: kept.docId },
      { seq: 3, op: 'put', docId: journaled.docId },
      { seq: 4, op: 'delete', docId: deleted.docId },
    ];
    await storage.write(
      'rag/index/journal/al%2Eice.jsonl',
      encoder.encode(lines.map((line) => `${JSON.stringify(line)}\n`).join('')),
    );

    const upgraded = service(storage);
    const filenames = (await upgraded.api.listDocuments({ ownerId: 'al.ice' })).map(
      (document) => document.filename,
    );
    expect(filenames.sort()).toEqual(['a.md', 'b.md']);
    expect(await upgraded.api.query({ ownerId: 'al.ice', query: 'slats' })).toHaveLength(1);
    await upgraded.dispose();
    const snapshot = JSON.parse(decoder.decode(await storage.read('rag/index/bm25/al%2Eice.json')));
    expect(snapshot).toMatchObject({ version: 2, generation: 1, offset: 0 });
    expect(snapshot.documents).toHaveLength(2);
    // From now on the snapshot is read, not the earlier format.
    await storage.delete('rag/index/journal/al%2Eice.jsonl');
    expect((await filenamesOf(service(storage), 'al.ice')).sort()).toEqual(['a.md', 'b.md']);
  });

  it('writes a snapshot once snapshot_every changes piled up', async () => {
    const storage = createMemoryStorage();
    const node = service(storage, {
      index: { snapshot_every: 2, snapshot_delay_ms: 60_000, max_loaded_owners: 10, version_check_ms: 0 },
    });
    await addNotesAbout(node, 'alice', 'a.md', 'rudder');
    expect(await storage.exists('rag/index/bm25/alice.json')).toBe(false);
    await addNotesAbout(node, 'alice', 'b.md', 'elevator');
    await node.api.listDocuments({ ownerId: 'alice' }); // the snapshot is queued behind the change
    await node.flush();
    const snapshot = JSON.parse(decoder.decode(await storage.read('rag/index/bm25/alice.json')));
    expect(snapshot.documents).toHaveLength(2);
  });

  it('rebuilds an owner from the documents when the snapshot is unreadable or the BM25 settings changed', async () => {
    const storage = createMemoryStorage();
    const node = service(storage);
    const { docId } = await addNotesAbout(node, 'alice', 'a.md', 'propeller');
    await addNotesAbout(node, 'bob', 'b.md', 'propeller');
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
      index: { snapshot_every: 1, snapshot_delay_ms: 60_000, max_loaded_owners: 1, version_check_ms: 0 },
    });
    const alices = await addNotesAbout(node, 'alice', 'a.md', 'trim tabs');
    await node.flush();
    await addNotesAbout(node, 'bob', 'b.md', 'trim tabs');
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

    const bob = await addNotesAbout(node, 'bob', 'bob.md', 'lift');
    bobsChunk = await firstChunk(bob.docId);
    const aerofoil = await node.api.addDocument({
      ownerId: 'alice',
      filename: 'aerofoil.md',
      content: 'Camber and angle of attack decide the pressure difference.',
    });
    const other = await addNotesAbout(node, 'alice', 'lift.md', 'lift');
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
    const { docId } = await addNotesAbout(node, 'alice', 'a.md', 'spoilers');
    expect((await node.api.query({ ownerId: 'alice', query: 'spoilers' }))[0]?.docId).toBe(docId);
    await expect(addNotesAbout(node, 'alice', 'refused.md', 'slats')).rejects.toThrow('embedding API down');
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

/**
 * `storage` with a random pause before every operation, of up to `maxMs(key, operation)`: writers on two
 * nodes interleave (a node slow to write metadata.json lets another node's write of the same document
 * overtake; a slow append lands after another node closed the log generation it was meant for).
 */
function jittered(storage: Storage, maxMs: (key: string, operation: string) => number): Storage {
  const later = async <T>(operation: string, key: string, run: () => Promise<T>): Promise<T> => {
    await new Promise((resolve) => setTimeout(resolve, Math.random() * maxMs(key, operation)));
    return run();
  };
  return {
    read: (key) => later('read', key, () => storage.read(key)),
    write: (key, data) => later('write', key, () => storage.write(key, data)),
    delete: (key) => later('delete', key, () => storage.delete(key)),
    list: (prefix) => later('list', prefix, () => storage.list(prefix)),
    exists: (key) => later('exists', key, () => storage.exists(key)),
    append: (key, data) => later('append', key, () => storage.append(key, data)),
    close: () => storage.close(),
  };
}

describe('rag service: several nodes over one storage', () => {
  const filenames = async (node: RagService, ownerId = 'alice') =>
    (await node.api.listDocuments({ ownerId })).map((document) => document.filename).sort();

  it('a document added, replaced or deleted on one node is found, replaced or gone on the others', async () => {
    const storage = createMemoryStorage();
    const [one, two, three] = [service(storage), service(storage), service(storage)];
    // Each node has loaded alice before the changes, so each holds a copy that must not go stale.
    for (const node of [one, two, three])
      expect(await node.api.listDocuments({ ownerId: 'alice' })).toEqual([]);

    const added = await addNotesAbout(one, 'alice', 'gear.md', 'landing gear');
    for (const node of [two, three]) {
      expect(
        (await node.api.query({ ownerId: 'alice', query: 'landing gear' })).map((hit) => hit.docId),
      ).toEqual([added.docId]);
    }
    await three.api.addDocument({
      ownerId: 'alice',
      filename: 'gear.md',
      content: '# Gear\n\nThe tricycle undercarriage retracts forward.\n',
    });
    const [replaced] = await one.api.query({ ownerId: 'alice', query: 'tricycle undercarriage' });
    expect(replaced).toMatchObject({
      docId: added.docId,
      text: expect.stringContaining('The tricycle undercarriage retracts forward.'),
    });
    expect(await one.api.query({ ownerId: 'alice', query: 'behaves in flight' })).toEqual([]);
    expect(
      await two.api.getDocument({ ownerId: 'alice', docId: added.docId, includeContent: true }),
    ).toMatchObject({
      content: '# Gear\n\nThe tricycle undercarriage retracts forward.\n',
    });

    await two.api.deleteDocument({ ownerId: 'alice', docId: added.docId });
    for (const node of [one, three]) {
      expect(await node.api.query({ ownerId: 'alice', query: 'tricycle undercarriage' })).toEqual([]);
      expect(await node.api.listDocuments({ ownerId: 'alice' })).toEqual([]);
      await expect(node.api.deleteDocument({ ownerId: 'alice', docId: added.docId })).rejects.toMatchObject({
        code: 'CHAT_ERR_NOT_FOUND',
      });
    }
  });

  it('two nodes adding different documents of one owner at the same time lose none, nor do their snapshots', async () => {
    const storage = createMemoryStorage();
    const shared = jittered(storage, () => 3);
    const [one, two] = [service(shared), service(shared)];
    await Promise.all([
      one.api.listDocuments({ ownerId: 'alice' }),
      two.api.listDocuments({ ownerId: 'alice' }),
    ]);
    const topics = Array.from({ length: 24 }, (_, n) => `topic${n}`);
    await Promise.all(
      topics.map((topic, n) => addNotesAbout(n % 2 === 0 ? one : two, 'alice', `${topic}.md`, topic)),
    );
    const expected = topics.map((topic) => `${topic}.md`).sort();
    // Each node wrote a snapshot from its own copy, one after the other: the last one written lacks
    // documents of the other node, and a node started now must still find every document.
    await one.flush();
    await two.flush();
    const started = service(storage);
    expect(await filenames(started)).toEqual(expected);
    expect(await started.api.query({ ownerId: 'alice', query: 'topic7' })).toHaveLength(1);
    for (const node of [one, two]) {
      expect(await filenames(node)).toEqual(expected);
      expect(await node.api.query({ ownerId: 'alice', query: 'topic22' })).toHaveLength(1);
    }
  });

  it('closes log generations while two nodes write: no change is lost, an idle and a new node catch up', async () => {
    const storage = createMemoryStorage();
    // About four lines per generation, so the log is closed again and again while both nodes write.
    const smallLog = (over: Storage) =>
      createRagService({
        storage: scopeStorage(over, 'rag'),
        config: config(),
        log,
        logGenerationBytes: 300,
      });
    const idle = smallLog(storage);
    expect(await idle.api.listDocuments({ ownerId: 'alice' })).toEqual([]);
    // Slow log writes: a line often lands after another node closed the generation it was meant for.
    const slowLog = (_key: string, operation: string) => (operation === 'append' ? 20 : 1);
    const [one, two] = [smallLog(jittered(storage, slowLog)), smallLog(jittered(storage, slowLog))];
    const topics = Array.from({ length: 60 }, (_, n) => `topic${n}`);
    const added = await Promise.all(
      topics.map((topic, n) => addNotesAbout(n % 2 === 0 ? one : two, 'alice', `${topic}.md`, topic)),
    );
    await Promise.all(
      added
        .filter((_, n) => n % 5 === 0)
        .map((document, n) =>
          (n % 2 === 0 ? two : one).api.deleteDocument({ ownerId: 'alice', docId: document.docId }),
        ),
    );
    const expected = topics
      .filter((_, n) => n % 5 !== 0)
      .map((topic) => `${topic}.md`)
      .sort();
    const generations = await storage.list('rag/index/log/alice/');
    expect(Number.parseInt(generations.at(-1)!.split('/').at(-1)!, 10)).toBeGreaterThan(10);
    // Closed generations older than the last closed one are deleted, but for the first.
    expect(generations[0]).toBe('rag/index/log/alice/0000000001.jsonl');
    expect(generations.length).toBeLessThanOrEqual(4);
    for (const node of [one, two, idle, smallLog(storage)]) {
      expect(await filenames(node)).toEqual(expected);
      expect(await node.api.query({ ownerId: 'alice', query: 'topic37' })).toHaveLength(1);
      expect(await node.api.query({ ownerId: 'alice', query: 'topic35' })).toEqual([]);
    }
  });

  it('two nodes replacing one document at the same time leave one of the two versions, whole, everywhere', async () => {
    const storage = createMemoryStorage();
    for (let round = 0; round < 20; round++) {
      // Node one dawdles before writing a record, so node two's text and record often come in between.
      const slowRecords = jittered(storage, (key) => (key.endsWith('metadata.json') ? 12 : 2));
      const [one, two] = [service(slowRecords), service(jittered(storage, () => 2))];
      const versions = [
        `Version one of round ${round}: ailerons.`,
        `Version two of round ${round}: elevators.`,
      ];
      const [first, second] = await Promise.all([
        one.api.addDocument({ ownerId: 'alice', filename: 'crossed.md', content: versions[0]! }),
        two.api.addDocument({ ownerId: 'alice', filename: 'crossed.md', content: versions[1]! }),
      ]);
      expect(first.docId).toBe(second.docId);
      const { docId } = first;
      const content = decoder.decode(await storage.read(`rag/documents/${docId}/content.txt`));
      expect(versions).toContain(content);
      const record = JSON.parse(decoder.decode(await storage.read(`rag/documents/${docId}/metadata.json`)));
      expect(record.characters).toBe(content.length);
      const fresh = service(storage);
      for (const node of [one, two, fresh]) {
        const stored = await node.api.getDocument({ ownerId: 'alice', docId, includeContent: true });
        expect(stored.content, `round ${round}`).toBe(content);
        const [hit] = await node.api.query({
          ownerId: 'alice',
          query: content.includes('ailerons') ? 'ailerons' : 'elevators',
        });
        expect(hit?.text).toBe(content);
      }
    }
  });

  it('with version_check_ms, a node answers from its copy until rag.index.changed or the interval tells it to look', async () => {
    const storage = createMemoryStorage();
    let now = 1_000_000;
    const announced: Array<{ ownerId: string; version: string }> = [];
    const writer = createRagService({
      storage: scopeStorage(storage, 'rag'),
      config: config(),
      log,
      indexChanged: async (event) => {
        announced.push(event);
      },
    });
    const reader = createRagService({
      storage: scopeStorage(storage, 'rag'),
      config: config({
        index: {
          snapshot_every: 1000,
          snapshot_delay_ms: 60_000,
          max_loaded_owners: 100,
          version_check_ms: 5000,
        },
      }),
      log,
      // The reader's clock (a request within 5 s of its last check does not read storage).
      now: () => new Date(now),
    });
    {
      expect(await reader.api.query({ ownerId: 'alice', query: 'flaps' })).toEqual([]);
      const added = await addNotesAbout(writer, 'alice', 'flaps.md', 'flaps');
      expect(announced).toEqual([{ ownerId: 'alice', version: expect.stringMatching(/^[0-9a-f]{16}$/) }]);
      expect(await reader.api.query({ ownerId: 'alice', query: 'flaps' })).toEqual([]);
      reader.indexChanged(announced[0]!);
      expect((await reader.api.query({ ownerId: 'alice', query: 'flaps' }))[0]?.docId).toBe(added.docId);

      await writer.api.deleteDocument({ ownerId: 'alice', docId: added.docId });
      expect(await reader.api.query({ ownerId: 'alice', query: 'flaps' })).toHaveLength(1);
      now += 5000; // the announcement was lost; the interval ends the wait
      expect(await reader.api.query({ ownerId: 'alice', query: 'flaps' })).toEqual([]);
    }
  });
});
