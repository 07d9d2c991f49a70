import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { GatherResult } from '../../core/bus-types.ts';
import { isPlatformError } from '../../core/errors.ts';
import type { EventEnvelope } from '../../core/events.ts';
import { createPlatform, type Platform } from '../../platform/create-platform.ts';
import rag from './index.ts';
import { makeDocx, makePdf } from './test-fixtures.ts';
import type {
  DocumentAddResult,
  DocumentChangedEvent,
  DocumentRecord,
  DocumentSummary,
  KnowledgeResponse,
  RagHit,
} from './types.ts';

const directories: string[] = [];
const platforms: Platform[] = [];

afterEach(async () => {
  for (const platform of platforms.splice(0)) await platform.close();
  for (const directory of directories.splice(0)) await rm(directory, { recursive: true, force: true });
});

/** A real platform (flatfile storage in a temp dir, in-process bus, shipped access policy) running rag. */
async function start(ragConfig: Record<string, unknown> = {}, dataDir?: string): Promise<Platform> {
  const directory = await mkdtemp(join(tmpdir(), 'parley-rag-'));
  directories.push(directory);
  const configDir = join(directory, 'config');
  await mkdir(join(configDir, 'modules'), { recursive: true });
  const shipped = JSON.parse(
    await readFile(join(import.meta.dirname, '../../../config/default.json'), 'utf8'),
  );
  await writeFile(
    join(configDir, 'default.json'),
    JSON.stringify({ data_dir: dataDir ?? join(directory, 'data'), security: shipped.security }),
  );
  await writeFile(join(configDir, 'modules', 'rag.json'), JSON.stringify({ rag: ragConfig }));
  const platform = await createPlatform({
    configDir,
    env: {},
    nodeEnv: 'test',
    definitions: new Map([['rag', rag as never]]),
    logDestination: join(directory, 'log.jsonl'),
  });
  platforms.push(platform);
  return platform;
}

function dataFile(platform: Platform, path: string): Promise<string> {
  return readFile(join(platform.config.storage.flatfile.root, 'rag', path), 'utf8');
}

async function rejection(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (isPlatformError(error)) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error('expected a rejection');
}

const add = (platform: Platform, data: Record<string, unknown>) =>
  platform.bus.request<DocumentAddResult>('rag.document.add', data as never);
const query = async (platform: Platform, data: Record<string, unknown>) =>
  (await platform.bus.request<{ hits: RagHit[] }>('rag.query', data as never)).hits;

const wings = [
  '# Wings',
  '',
  'The wing makes lift from the pressure difference between its surfaces.',
  '',
  '## Flaps',
  '',
  'Flaps extend to add lift and drag at low speed, for take-off and landing.',
  '',
].join('\n');

describe('rag module: documents over the bus', () => {
  it('adds a document in the seed layout, skips it unchanged, replaces its chunks when it changed, deletes it', async () => {
    const platform = await start();
    const changes: DocumentChangedEvent[] = [];
    platform.bus.on('rag.document.changed', (event: EventEnvelope<DocumentChangedEvent>) => {
      changes.push(event.data);
    });

    const added = await add(platform, { ownerId: 'alice', filename: 'wings.md', content: wings });
    expect(added).toMatchObject({ status: 'added', chunks: 2, title: 'Wings', kind: 'markdown' });
    expect(added.docId).toMatch(/^doc_[0-9a-f]{32}$/);

    expect(await dataFile(platform, `documents/${added.docId}/content.txt`)).toBe(wings);
    const record = JSON.parse(
      await dataFile(platform, `documents/${added.docId}/metadata.json`),
    ) as DocumentRecord;
    expect(record).toMatchObject({
      docId: added.docId,
      ownerId: 'alice',
      filename: 'wings.md',
      source: 'wings.md',
    });
    expect(record.contentHash).toMatch(/^sha256:[0-9a-f]{64}$/);
    const firstChunkIds = record.chunks.map((chunk) => chunk.id);

    const again = await add(platform, { ownerId: 'alice', filename: 'wings.md', content: wings });
    expect(again).toEqual({ ...added, status: 'unchanged' });
    const unchangedRecord = JSON.parse(await dataFile(platform, `documents/${added.docId}/metadata.json`));
    expect(unchangedRecord.updatedAt).toBe(record.updatedAt);

    // An edit to the Flaps section: same document, the Wings chunk keeps its id, the Flaps chunk is new.
    const edited = wings.replace('for take-off and landing', 'mostly for slow approaches');
    const updated = await add(platform, { ownerId: 'alice', filename: 'wings.md', content: edited });
    expect(updated).toMatchObject({ docId: added.docId, status: 'updated', chunks: 2 });
    const updatedRecord = JSON.parse(await dataFile(platform, `documents/${added.docId}/metadata.json`));
    expect(updatedRecord.chunks[0].id).toBe(firstChunkIds[0]);
    expect(updatedRecord.chunks[1].id).not.toBe(firstChunkIds[1]);
    expect(await query(platform, { ownerId: 'alice', query: 'take-off landing' })).toEqual([]);
    expect((await query(platform, { ownerId: 'alice', query: 'slow approaches' }))[0]?.text).toContain(
      'mostly for slow approaches',
    );

    const listed = await platform.bus.request<{ documents: DocumentSummary[] }>('rag.document.list', {
      ownerId: 'alice',
    });
    expect(listed.documents.map((document) => [document.docId, document.chunkCount])).toEqual([
      [added.docId, 2],
    ]);

    expect(
      await platform.bus.request('rag.document.delete', { ownerId: 'alice', docId: added.docId }),
    ).toEqual({
      docId: added.docId,
      deleted: true,
      chunks: 2,
    });
    expect(await query(platform, { ownerId: 'alice', query: 'wing lift flaps' })).toEqual([]);
    await expect(dataFile(platform, `documents/${added.docId}/content.txt`)).rejects.toThrow(/ENOENT/);
    await expect(dataFile(platform, `documents/${added.docId}/metadata.json`)).rejects.toThrow(/ENOENT/);
    const afterDelete = await platform.bus.request<{ documents: DocumentSummary[] }>('rag.document.list', {
      ownerId: 'alice',
    });
    expect(afterDelete.documents).toEqual([]);
    expect(changes.map((change) => change.change)).toEqual(['added', 'updated', 'deleted']);
  });

  it('returns hits with citation data: docId, title, offsets into content.txt, heading', async () => {
    const platform = await start({ chunk_size: 120, chunk_overlap: 20 });
    const { docId } = await add(platform, {
      ownerId: 'alice',
      filename: 'wings.md',
      title: 'Wing handbook',
      content: wings,
    });
    const hits = await query(platform, { ownerId: 'alice', query: 'Which surfaces extend for landing?' });
    expect(hits.length).toBeGreaterThan(0);
    const best = hits[0]!;
    expect(best).toMatchObject({
      docId,
      title: 'Wing handbook',
      filename: 'wings.md',
      heading: 'Wings > Flaps',
    });
    expect(best.text).toContain('Flaps extend');
    const content = await dataFile(platform, `documents/${docId}/content.txt`);
    for (const hit of hits) expect(content.slice(hit.start, hit.end)).toBe(hit.text);
    expect(hits.map((hit) => hit.score)).toEqual([...hits.map((hit) => hit.score)].sort((a, b) => b - a));
  });

  it('ingests PDF and DOCX sent as base64, and answers from them', async () => {
    const platform = await start();
    const pdf = makePdf([['Boundary layers thicken along the chord.']], 'Boundary Layers');
    const docx = makeDocx([
      { text: 'Propellers', style: 'Heading1' },
      { text: 'A propeller blade is a rotating wing.' },
    ]);
    const fromPdf = await add(platform, {
      ownerId: 'alice',
      filename: 'layers.pdf',
      contentBase64: Buffer.from(pdf).toString('base64'),
    });
    expect(fromPdf).toMatchObject({ status: 'added', kind: 'pdf', title: 'Boundary Layers' });
    const fromDocx = await add(platform, {
      ownerId: 'alice',
      filename: 'props.docx',
      contentBase64: Buffer.from(docx).toString('base64'),
    });
    expect(fromDocx).toMatchObject({ status: 'added', kind: 'docx', title: 'Propellers' });
    expect((await query(platform, { ownerId: 'alice', query: 'chord boundary' }))[0]?.docId).toBe(
      fromPdf.docId,
    );
    expect((await query(platform, { ownerId: 'alice', query: 'rotating blade' }))[0]).toMatchObject({
      docId: fromDocx.docId,
      heading: 'Propellers',
    });
  });

  it('rejects a file it cannot parse with a clear error, and stores nothing', async () => {
    const platform = await start();
    const failure = await rejection(
      add(platform, {
        ownerId: 'alice',
        filename: 'broken.pdf',
        contentBase64: Buffer.from('%PDF-1.7\nnot really').toString('base64'),
      }),
    );
    expect(failure.code).toBe('CHAT_ERR_DOCUMENT_UNREADABLE');
    expect(failure.message).toContain('broken.pdf');
    expect(
      (await platform.bus.request<{ documents: unknown[] }>('rag.document.list', { ownerId: 'alice' }))
        .documents,
    ).toEqual([]);
    const unsupported = await rejection(
      add(platform, {
        ownerId: 'alice',
        filename: 'a.png',
        contentBase64: Buffer.from([0x89, 0x50, 0x4e, 0x47]).toString('base64'),
      }),
    );
    expect(unsupported.code).toBe('CHAT_ERR_DOCUMENT_UNSUPPORTED_TYPE');
    const tooLarge = await rejection(
      add(await start({ max_document_bytes: 10 }), { ownerId: 'a', content: 'x'.repeat(11) }),
    );
    expect(tooLarge.code).toBe('CHAT_ERR_PAYLOAD_TOO_LARGE');
    const bothContents = await rejection(
      add(platform, { ownerId: 'alice', content: 'a', contentBase64: 'YQ==' }),
    );
    expect(bothContents.code).toBe('CHAT_ERR_VALIDATION_INVALID');
  });

  it('filters by metadata and scopes session documents to their session', async () => {
    const platform = await start();
    const manual = await add(platform, {
      ownerId: 'alice',
      filename: 'manual.md',
      content: 'The engine oil is checked before every flight.',
      metadata: { team: 'ops', tags: ['engine', 'checklist'] },
    });
    const sessionNote = await add(platform, {
      ownerId: 'alice',
      filename: 'note.md',
      content: 'The engine sounded rough on the last flight.',
      sessionId: 's1',
    });
    const ids = async (data: Record<string, unknown>) =>
      (await query(platform, { ownerId: 'alice', query: 'engine flight', ...data }))
        .map((hit) => hit.docId)
        .sort();

    expect(await ids({})).toEqual([manual.docId, sessionNote.docId].sort());
    expect(await ids({ filter: { team: 'ops' } })).toEqual([manual.docId]);
    expect(await ids({ filter: { tags: 'checklist' } })).toEqual([manual.docId]);
    expect(await ids({ filter: { docId: sessionNote.docId } })).toEqual([sessionNote.docId]);
    expect(await ids({ filter: { kind: 'pdf' } })).toEqual([]);
    expect(await ids({ sessionId: 's1' })).toEqual([manual.docId, sessionNote.docId].sort());
    expect(await ids({ sessionId: 's2' })).toEqual([manual.docId]);
    const sessionList = await platform.bus.request<{ documents: DocumentSummary[] }>('rag.document.list', {
      ownerId: 'alice',
      sessionId: 's1',
    });
    expect(sessionList.documents.map((document) => document.docId)).toEqual([sessionNote.docId]);
    const reserved = await rejection(
      add(platform, { ownerId: 'alice', content: 'x', metadata: { scope: 'all' } }),
    );
    expect(reserved.code).toBe('CHAT_ERR_VALIDATION_INVALID');
  });
});

describe('rag module: owners', () => {
  it('never returns another owner’s chunks, and treats another owner’s document as missing', async () => {
    const platform = await start();
    const alices = await add(platform, {
      ownerId: 'alice',
      filename: 'secret.md',
      content: 'The launch code is hidden in the hangar.',
    });
    const bobs = await add(platform, {
      ownerId: 'bob',
      filename: 'secret.md',
      content: 'Bob keeps the hangar key under a brick.',
    });
    // The same file name is a different document per owner.
    expect(bobs.docId).not.toBe(alices.docId);

    const bobHits = await query(platform, { ownerId: 'bob', query: 'launch code hangar' });
    expect(bobHits.map((hit) => hit.docId)).toEqual([bobs.docId]);
    expect(await query(platform, { ownerId: 'carol', query: 'launch code hangar' })).toEqual([]);
    // Even a filter naming alice's document finds nothing for bob.
    expect(
      await query(platform, { ownerId: 'bob', query: 'launch', filter: { docId: alices.docId } }),
    ).toEqual([]);

    const gathered = await platform.bus.gather<KnowledgeResponse>('knowledge.query', {
      userId: 'bob',
      query: 'launch code hangar',
    });
    expect(gathered.replies).toHaveLength(1);
    expect(gathered.replies[0]).toMatchObject({ responder: 'rag', data: { source: 'rag' } });
    expect(gathered.replies[0]!.data.results.map((hit) => hit.docId)).toEqual([bobs.docId]);

    for (const attempt of [
      platform.bus.request('rag.document.delete', { ownerId: 'bob', docId: alices.docId }),
      platform.bus.request('rag.document.get', { ownerId: 'bob', docId: alices.docId }),
      add(platform, { ownerId: 'bob', docId: alices.docId, content: 'overwritten by bob' }),
    ]) {
      expect((await rejection(attempt)).code).toBe('CHAT_ERR_NOT_FOUND');
    }
    const missing = await rejection(
      platform.bus.request('rag.document.get', { ownerId: 'bob', docId: `doc_${'0'.repeat(32)}` }),
    );
    expect(missing.code).toBe('CHAT_ERR_NOT_FOUND');
    // Alice's document is untouched.
    const alicesDocument = await platform.bus.request<DocumentSummary & { content: string }>(
      'rag.document.get',
      {
        ownerId: 'alice',
        docId: alices.docId,
        includeContent: true,
      },
    );
    expect(alicesDocument.content).toBe('The launch code is hidden in the hangar.');
  });

  it('answers knowledge.query for the envelope user, with the session scope, as a gather reply', async () => {
    const platform = await start();
    const library = await add(platform, {
      ownerId: 'alice',
      filename: 'a.md',
      content: 'Stall speed rises with weight.',
    });
    await add(platform, {
      ownerId: 'alice',
      filename: 'b.md',
      content: 'Stall warning horn test.',
      sessionId: 'other',
    });
    const result: GatherResult<KnowledgeResponse> = await platform.bus.gather<KnowledgeResponse>(
      'knowledge.query',
      { query: 'stall', sessionId: 'mine', topK: 500 },
      { userId: 'alice', timeout: 2000 },
    );
    expect(result.failed).toEqual([]);
    expect(result.replies[0]!.data.results.map((hit) => hit.docId)).toEqual([library.docId]);
    const noUser = await platform.bus.gather('knowledge.query', { query: 'stall' }, { timeout: 2000 });
    expect(noUser.failed[0]).toMatchObject({ responder: 'rag', code: 'CHAT_ERR_VALIDATION_INVALID' });
  });

  it('says when an owner has no documents at all, and emits knowledge.changed when one comes', async () => {
    const platform = await start();
    const changes: unknown[] = [];
    platform.bus.on('knowledge.changed', (event) => void changes.push(event.data), { mode: 'local' });
    const ask = (query: string) =>
      platform.bus.gather<KnowledgeResponse>(
        'knowledge.query',
        { userId: 'alice', query },
        { timeout: 2000 },
      );

    // Nothing at all: the gatherer may stop asking until knowledge.changed.
    expect((await ask('stall')).replies[0]!.data).toEqual({ source: 'rag', results: [], empty: true });
    await add(platform, { ownerId: 'alice', filename: 'a.md', content: 'Stall speed rises with weight.' });
    expect(changes).toEqual([{ userId: 'alice', source: 'rag' }]);
    // A document that does not match is still something: no promise then.
    expect((await ask('propeller pitch')).replies[0]!.data).toEqual({ source: 'rag', results: [] });
    expect((await ask('stall')).replies[0]!.data.results).toHaveLength(1);
  });
});

describe('rag module: persistence', () => {
  it('keeps documents and the index across a restart (a log line per change, snapshot written on shutdown)', async () => {
    const first = await start({
      index: { snapshot_every: 1000, snapshot_delay_ms: 60_000, max_loaded_owners: 10 },
    });
    const dataDir = first.config.data_dir;
    const root = first.config.storage.flatfile.root;
    const { docId } = await add(first, { ownerId: 'alice', filename: 'wings.md', content: wings });
    const [header, line] = (await dataFile(first, 'index/log/alice/0000000001.jsonl'))
      .trimEnd()
      .split('\n')
      .map((text) => JSON.parse(text));
    expect(header).toEqual({ generation: 1 });
    expect(line).toEqual({
      doc: docId,
      rev: expect.stringMatching(/^[0-9a-f]{16}$/),
      id: expect.any(String),
    });
    await first.close();
    platforms.splice(platforms.indexOf(first), 1);
    const snapshot = JSON.parse(await readFile(join(root, 'rag/index/bm25/alice.json'), 'utf8'));
    expect(snapshot).toMatchObject({
      format: 'parley-rag-owner',
      version: 2,
      ownerId: 'alice',
      generation: 1,
    });
    expect(snapshot.revisions[docId]).toBe(line.rev);

    const second = await start({}, dataDir);
    expect((await query(second, { ownerId: 'alice', query: 'flaps' }))[0]?.docId).toBe(docId);
    expect(await add(second, { ownerId: 'alice', filename: 'wings.md', content: wings })).toMatchObject({
      status: 'unchanged',
    });
  });
});
