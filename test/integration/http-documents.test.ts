/**
 * Documents over real HTTP on loopback, with flatfile storage and the real rag module: multipart upload
 * (text, Markdown, HTML, PDF; a corrupt PDF is a per-file error and the rest are stored), listing,
 * metadata and text, the cited passage, queries, deletion; owner, other user and no key for every route;
 * the upload limits (413 naming the limit, both with and without a Content-Length), and a DOCX zip bomb
 * (a per-file 413).
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeDocx, makePdf } from '../../src/modules/rag/test-fixtures.ts';
import { type HttpHarness, readSse, startHttpHarness, type TestUser } from './http-harness.ts';

const UPLOAD_LIMIT = 65_536;
const MAX_FILES = 5;

let harness: HttpHarness;

/** A JSON object of a response body. */
// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary response bodies
type Entry = Record<string, any>;

beforeAll(async () => {
  harness = await startHttpHarness({
    env: {
      CHAT_SERVER__UPLOAD_LIMIT_BYTES: String(UPLOAD_LIMIT),
      CHAT_SERVER__UPLOAD_MAX_FILES: String(MAX_FILES),
    },
  });
});

afterAll(async () => {
  await harness?.close();
});

interface Upload {
  name: string;
  content: string | Uint8Array;
  type?: string;
}

/** Uploads files (and form fields) as multipart/form-data; returns status and parsed body. */
async function upload(
  user: TestUser | undefined,
  files: Upload[],
  fields: Record<string, string> = {},
): Promise<{ status: number; body: Entry }> {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  for (const file of files) {
    const blob = new Blob([file.content as string | Uint8Array<ArrayBuffer>], { type: file.type ?? '' });
    form.append('file', blob, file.name);
  }
  const response = await fetch(`${harness.baseUrl}/v1/documents`, {
    method: 'POST',
    headers: user === undefined ? {} : { authorization: `Bearer ${user.key}` },
    body: form,
  });
  const text = await response.text();
  return { status: response.status, body: text === '' ? undefined : JSON.parse(text) };
}

const wings = {
  name: 'wings.md',
  content:
    '# Wings\n\nSwept wings delay the drag rise at transonic speed.\n\n## Flutter\n\nFlutter is a self-excited ' +
    'oscillation of the wing; the flutter speed of the Albatross test wing was 212 knots.\n',
};
const notes = { name: 'notes.txt', content: 'Plain notes: the hangar door code is changed every Monday.' };
const page = {
  name: 'page.html',
  content:
    '<html><head><title>Landing gear</title></head><body><h1>Gear</h1><p>Retract the landing gear after a ' +
    'positive rate of climb.</p><script>alert(1)</script></body></html>',
  type: 'text/html',
};

describe('POST /v1/documents', () => {
  it('stores each file on its own: text, Markdown, HTML and PDF added, a corrupt PDF reported (207)', async () => {
    const { alice } = harness;
    const result = await upload(alice, [
      wings,
      notes,
      page,
      {
        name: 'engine.pdf',
        content: makePdf([['Check the engine oil before flight.']], 'Engine'),
        type: 'application/pdf',
      },
      { name: 'broken.pdf', content: '%PDF-1.4\nthis file was cut short', type: 'application/pdf' },
    ]);
    expect(result.status).toBe(207);
    const byName = Object.fromEntries(result.body.documents.map((entry: Entry) => [entry.filename, entry]));
    expect(byName['wings.md']).toMatchObject({ status: 'added', kind: 'markdown', title: 'Wings' });
    expect(byName['notes.txt']).toMatchObject({ status: 'added', kind: 'text', title: 'notes.txt' });
    expect(byName['page.html']).toMatchObject({ status: 'added', kind: 'html', title: 'Landing gear' });
    expect(byName['engine.pdf']).toMatchObject({ status: 'added', kind: 'pdf', title: 'Engine' });
    expect(byName['broken.pdf']).toMatchObject({
      status: 'failed',
      error: { code: 'CHAT_ERR_DOCUMENT_UNREADABLE', status: 422 },
    });
    expect(byName['broken.pdf'].error.message).toContain('broken.pdf');
    expect(byName['broken.pdf'].docId).toBeUndefined();

    // The same file again is the same document, unchanged; all stored: 200.
    const again = await upload(alice, [wings]);
    expect(again.status).toBe(200);
    expect(again.body.documents).toEqual([
      expect.objectContaining({ filename: 'wings.md', status: 'unchanged', docId: byName['wings.md'].docId }),
    ]);
  });

  it('refuses a DOCX that decompresses past rag.max_uncompressed_bytes (a zip bomb) with a per-file 413', async () => {
    const { alice } = harness;
    // 51 MiB of zeros deflate to about 50 KiB: a small upload, over the default 50 MiB once inflated.
    const bomb = makeDocx([{ text: 'Nothing to see' }], undefined, {
      files: { 'word/media/zeros.bin': new Uint8Array(51 * 1024 * 1024) },
      zip: { deflate: true },
    });
    expect(bomb.length).toBeLessThan(UPLOAD_LIMIT);
    const result = await upload(alice, [
      { name: 'bomb.docx', content: bomb },
      { name: 'ok.docx', content: makeDocx([{ text: 'Trim the aircraft for hands-off flight.' }]) },
    ]);
    expect(result.status).toBe(207);
    const [refused, stored] = result.body.documents;
    expect(refused).toMatchObject({
      filename: 'bomb.docx',
      status: 'failed',
      error: {
        code: 'CHAT_ERR_PAYLOAD_TOO_LARGE',
        status: 413,
        message: 'bomb.docx: decompresses to more than 50 MiB (rag.max_uncompressed_bytes)',
      },
    });
    expect(stored).toMatchObject({ filename: 'ok.docx', status: 'added', kind: 'docx' });
  });

  it('refuses an upload over server.upload_limit_bytes with 413 naming the limit, and stores none of it', async () => {
    const { alice, bob } = harness;
    const big = { name: 'big.txt', content: 'x'.repeat(UPLOAD_LIMIT + 1) };
    const small = { name: 'small.txt', content: 'small file before the big one' };
    const result = await upload(bob, [small, big]);
    expect(result.status).toBe(413);
    expect(result.body.error.code).toBe('CHAT_ERR_PAYLOAD_TOO_LARGE');
    expect(result.body.error.message).toContain(`${UPLOAD_LIMIT} bytes (server.upload_limit_bytes)`);

    // Streamed without a Content-Length, the bytes are counted as they come: the same answer.
    const boundary = 'parleyboundary';
    const head = `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="stream.txt"\r\ncontent-type: text/plain\r\n\r\n`;
    const encoder = new TextEncoder();
    const pieces = [
      encoder.encode(head),
      ...Array.from({ length: 20 }, () => new Uint8Array(8192).fill(120)),
    ];
    pieces.push(encoder.encode(`\r\n--${boundary}--\r\n`));
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = pieces.shift();
        if (next === undefined) controller.close();
        else controller.enqueue(next);
      },
    });
    const streamed = await fetch(`${harness.baseUrl}/v1/documents`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${bob.key}`,
        'content-type': `multipart/form-data; boundary=${boundary}`,
      },
      body,
      duplex: 'half',
    } as RequestInit);
    expect(streamed.status).toBe(413);
    expect(((await streamed.json()) as Entry).error.message).toContain('server.upload_limit_bytes');

    const tooMany = await upload(
      bob,
      Array.from({ length: MAX_FILES + 1 }, (_, index) => ({
        name: `f${index}.txt`,
        content: `file ${index}`,
      })),
    );
    expect(tooMany.status).toBe(413);
    expect(tooMany.body.error.message).toContain(`at most ${MAX_FILES} files (server.upload_max_files)`);

    // Nothing of the refused uploads was stored; the server still answers on the same connection pool.
    const listed = await harness.call('GET', '/v1/documents', { key: bob.key });
    expect(listed.status).toBe(200);
    expect(listed.body.documents).toEqual([]);
    expect((await harness.call('GET', '/v1/documents', { key: alice.key })).status).toBe(200);
  });

  it('answers bad uploads with 4xx: no key, not multipart, no file, unknown field, title for many files, bad metadata', async () => {
    const { alice } = harness;
    expect((await upload(undefined, [notes])).status).toBe(401);
    const json = await harness.call('POST', '/v1/documents', { key: alice.key, body: { content: 'hello' } });
    expect(json.status).toBe(415);
    expect(json.body.error.message).toContain('multipart/form-data');
    const none = await upload(alice, [], { title: 'nothing' });
    expect(none.status).toBe(400);
    expect(none.body.error.message).toContain('no file');
    const unknown = await upload(alice, [notes], { colour: 'blue' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toContain('"colour"');
    const titled = await upload(alice, [notes, wings], { title: 'One title' });
    expect(titled.status).toBe(400);
    expect(titled.body.error.message).toContain('single file');
    const metadata = await upload(alice, [notes], { metadata: '[1, 2]' });
    expect(metadata.status).toBe(400);
    const reserved = await upload(alice, [{ name: 'r.txt', content: 'reserved key' }], {
      metadata: JSON.stringify({ scope: 'x' }),
    });
    expect(reserved.status).toBe(207);
    expect(reserved.body.documents[0].error).toMatchObject({
      code: 'CHAT_ERR_VALIDATION_INVALID',
      status: 400,
    });
  });

  it('answers a body that is not well-formed multipart with 400 naming the problem, never 500', async () => {
    const bodies: Array<[string, string]> = [
      // A part cut short: the closing boundary never comes.
      [
        'multipart/form-data; boundary=zzz',
        '--zzz\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nunterminated',
      ],
      // No boundary to split it by.
      ['multipart/form-data', 'x'],
    ];
    for (const [contentType, body] of bodies) {
      const response = await fetch(`${harness.baseUrl}/v1/documents`, {
        method: 'POST',
        headers: { authorization: `Bearer ${harness.alice.key}`, 'content-type': contentType },
        body,
      });
      expect(response.status, contentType).toBe(400);
      const answer = (await response.json()) as { error: { code: string; message: string } };
      expect(answer.error.code).toBe('CHAT_ERR_VALIDATION_INVALID');
      expect(answer.error.message).toContain('multipart/form-data');
    }
  });
});

describe('reading, querying and deleting documents', () => {
  it('lists, reads, cites and deletes for the owner; another user gets 404 and no key gets 401', async () => {
    const { alice, bob, call } = harness;
    const list = await call('GET', '/v1/documents', { key: alice.key });
    expect(list.status).toBe(200);
    const titles = list.body.documents.map((document: Entry) => document.title);
    expect(titles).toEqual(expect.arrayContaining(['Wings', 'notes.txt', 'Landing gear', 'Engine']));
    expect(titles).not.toContain('broken.pdf');
    const wingsDoc = list.body.documents.find((document: Entry) => document.title === 'Wings');
    expect(wingsDoc).toMatchObject({
      kind: 'markdown',
      filename: 'wings.md',
      chunkCount: expect.any(Number),
    });
    expect(wingsDoc.chunks).toBeUndefined();
    expect((await call('GET', '/v1/documents', { key: bob.key })).body.documents).toEqual([]);
    expect((await call('GET', '/v1/documents')).status).toBe(401);

    const path = `/v1/documents/${wingsDoc.docId}`;
    const meta = await call('GET', path, { key: alice.key });
    expect(meta.status).toBe(200);
    expect(meta.body.content).toBeUndefined();
    const full = await call('GET', `${path}?content=1`, { key: alice.key });
    expect(full.body.content).toBe(wings.content);
    const html = list.body.documents.find((document: Entry) => document.title === 'Landing gear');
    const htmlText = (await call('GET', `/v1/documents/${html.docId}?content=1`, { key: alice.key })).body
      .content;
    expect(htmlText).toContain('Retract the landing gear');
    expect(htmlText).not.toContain('alert(1)');

    // A query's hit carries the offsets a citation keeps; the passage route gives that text back.
    const query = await call('POST', '/v1/documents/query', {
      key: alice.key,
      body: { query: 'flutter speed of the test wing', topK: 2 },
    });
    expect(query.status).toBe(200);
    const hit = query.body.hits[0];
    expect(hit).toMatchObject({ docId: wingsDoc.docId, title: 'Wings', heading: 'Wings > Flutter' });
    expect(wings.content.slice(hit.start, hit.end)).toBe(hit.text);
    const passage = await call('GET', `${path}/passage?start=${hit.start}&end=${hit.end}&context=10`, {
      key: alice.key,
    });
    expect(passage.status).toBe(200);
    expect(passage.body).toEqual({
      docId: wingsDoc.docId,
      title: 'Wings',
      filename: 'wings.md',
      start: hit.start,
      end: hit.end,
      text: hit.text,
      before: wings.content.slice(hit.start - 10, hit.start),
      after: wings.content.slice(hit.end, hit.end + 10),
      characters: wings.content.length,
    });
    const outside = await call('GET', `${path}/passage?start=0&end=${wings.content.length + 1}`, {
      key: alice.key,
    });
    expect(outside.status).toBe(400);
    expect(outside.body.error.message).toContain(`≤ ${wings.content.length}`);
    expect((await call('GET', `${path}/passage?start=5&end=2`, { key: alice.key })).status).toBe(400);
    expect((await call('GET', `${path}/passage?start=x&end=2`, { key: alice.key })).status).toBe(400);
    expect(
      (await call('POST', '/v1/documents/query', { key: alice.key, body: { query: 'x', topK: 1000 } }))
        .status,
    ).toBe(400);

    // Bob: alice's document does not exist for him, whatever the route; his queries never find it.
    for (const [method, url] of [
      ['GET', path],
      ['GET', `${path}?content=1`],
      ['GET', `${path}/passage?start=${hit.start}&end=${hit.end}`],
      ['DELETE', path],
    ] as const) {
      const response = await call(method, url, { key: bob.key });
      expect(response.status, `${method} ${url}`).toBe(404);
      expect(response.body.error.code).toBe('CHAT_ERR_NOT_FOUND');
      expect((await call(method, url)).status, `${method} ${url} without a key`).toBe(401);
    }
    const bobQuery = await call('POST', '/v1/documents/query', {
      key: bob.key,
      body: { query: 'flutter speed' },
    });
    expect(bobQuery.body.hits).toEqual([]);
    expect((await call('GET', '/v1/documents/not-a-doc-id', { key: alice.key })).status).toBe(404);
    expect((await call('GET', `/v1/documents/doc_${'0'.repeat(32)}`, { key: alice.key })).status).toBe(404);

    const deleted = await call('DELETE', path, { key: alice.key });
    expect(deleted.status).toBe(204);
    expect((await call('GET', path, { key: alice.key })).status).toBe(404);
    expect((await call('DELETE', path, { key: alice.key })).status).toBe(404);
    const after = await call('POST', '/v1/documents/query', {
      key: alice.key,
      body: { query: 'flutter speed' },
    });
    expect(after.body.hits.some((found: Entry) => found.docId === wingsDoc.docId)).toBe(false);
  });

  it('binds uploads to the caller’s own session: listed and searched with it, refused for another’s', async () => {
    const { alice, bob, call } = harness;
    const session = await call('POST', '/v1/sessions', { key: alice.key, body: { title: 'Trip' } });
    const sessionId = session.body.id;
    const bound = await upload(
      alice,
      [{ name: 'itinerary.md', content: '# Itinerary\n\nThe ferry leaves Oban at 07:40.' }],
      {
        sessionId,
        metadata: JSON.stringify({ trip: 'scotland' }),
      },
    );
    expect(bound.status).toBe(200);
    const listed = await call('GET', `/v1/documents?sessionId=${sessionId}`, { key: alice.key });
    expect(listed.body.documents.map((document: Entry) => document.title)).toEqual(['Itinerary']);
    expect(listed.body.documents[0]).toMatchObject({ sessionId, metadata: { trip: 'scotland' } });

    const inSession = await call('POST', '/v1/documents/query', {
      key: alice.key,
      body: { query: 'ferry Oban', sessionId },
    });
    expect(inSession.body.hits[0].title).toBe('Itinerary');
    const otherSession = await call('POST', '/v1/documents/query', {
      key: alice.key,
      body: { query: 'ferry Oban', sessionId: 'another-session' },
    });
    expect(otherSession.body.hits).toEqual([]);
    const filtered = await call('POST', '/v1/documents/query', {
      key: alice.key,
      body: { query: 'ferry Oban', filter: { trip: 'iceland' } },
    });
    expect(filtered.body.hits).toEqual([]);

    const foreign = await upload(bob, [notes], { sessionId });
    expect(foreign.status).toBe(404);
    expect((await call('GET', '/v1/documents', { key: bob.key })).body.documents).toEqual([]);
  });

  it('make a chat turn cite them: the model gets the passage, the reply (JSON, SSE, list) carries citations', async () => {
    const { alice, bob, call, model, llmCalls } = harness;
    const manual = '# Albatross\n\n## Fuel\n\nThe Albatross carries 212 litres of fuel in two wing tanks.\n';
    const uploaded = await upload(alice, [{ name: 'albatross.md', content: manual }]);
    const docId = uploaded.body.documents[0].docId;
    const session = (await call('POST', '/v1/sessions', { key: alice.key, body: {} })).body;
    model.respond({ kind: 'stream', chunks: ['212 litres', ' [1].'] });

    const reply = await call('POST', `/v1/sessions/${session.id}/messages`, {
      key: alice.key,
      body: { content: 'How much fuel does the Albatross carry?' },
    });
    expect(reply.status).toBe(200);
    expect(llmCalls.at(-1)!.system).toContain('The Albatross carries 212 litres of fuel');
    const citations = reply.body.metadata.citations;
    expect(citations[0]).toMatchObject({ docId, title: 'Albatross', heading: 'Albatross > Fuel' });
    // The cited chunk: the section from its headings to the end of its text.
    const cited = manual.trimEnd();
    expect(manual.slice(citations[0].start, citations[0].end)).toBe(cited);
    const passage = await call(
      'GET',
      `/v1/documents/${docId}/passage?start=${citations[0].start}&end=${citations[0].end}`,
      { key: alice.key },
    );
    expect(passage.body.text).toBe(cited);

    const listed = await call('GET', `/v1/sessions/${session.id}/messages`, { key: alice.key });
    expect(listed.body.messages.at(-1).metadata.citations).toEqual(citations);

    const streamed = await fetch(`${harness.baseUrl}/v1/sessions/${session.id}/messages?stream=sse`, {
      method: 'POST',
      headers: { authorization: `Bearer ${alice.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ content: 'Fuel of the Albatross?' }),
    });
    const events = await readSse(streamed);
    const end = events.find((event) => event.event === 'end')!.data as Entry;
    expect(end.message.metadata.citations[0]).toMatchObject({ docId });

    // Bob asks the same question: none of alice's documents reach his turn.
    const bobSession = (await call('POST', '/v1/sessions', { key: bob.key, body: {} })).body;
    const bobReply = await call('POST', `/v1/sessions/${bobSession.id}/messages`, {
      key: bob.key,
      body: { content: 'How much fuel does the Albatross carry?' },
    });
    expect(bobReply.status).toBe(200);
    expect(bobReply.body.metadata.citations).toBeUndefined();
    expect(llmCalls.at(-1)!.system ?? '').not.toContain('212 litres');
  });

  it('are described in the OpenAPI document', async () => {
    const spec = await harness.call('GET', '/openapi.json');
    expect(Object.keys(spec.body.paths)).toEqual(
      expect.arrayContaining([
        '/v1/documents',
        '/v1/documents/{id}',
        '/v1/documents/{id}/passage',
        '/v1/documents/query',
      ]),
    );
  });
});
