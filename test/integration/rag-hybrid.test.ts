/**
 * Dense retrieval plugged into the real rag module: with `rag.embedding_model` set, documents are embedded
 * (by a real OpenAI-compatible HTTP server on loopback) and queries fuse BM25 with the vectors by
 * reciprocal rank; after the model changes, adding fails with a mismatch that names `parley rag reindex`,
 * queries keep answering from BM25, and the command (run as a real process) rebuilds the vectors.
 */

import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PlatformError } from '../../src/core/errors.ts';
import type { RagApi } from '../../src/modules/rag/types.ts';
import { createPlatform, type Platform } from '../../src/platform/create-platform.ts';
import { type FakeEmbeddingsServer, startFakeEmbeddingsServer } from '../helpers/fake-embeddings-server.ts';

const repoRoot = resolve(import.meta.dirname, '../..');

let server: FakeEmbeddingsServer;
let dir: string;

beforeAll(async () => {
  server = await startFakeEmbeddingsServer(32);
  dir = await mkdtemp(join(tmpdir(), 'parley-hybrid-'));
});

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

/** The config of one run: the data folder, the embedding provider, and `model` as rag's embedding model. */
function envFor(model: string | undefined): Record<string, string> {
  return {
    NODE_ENV: 'test',
    CHAT_DATA_DIR: join(dir, 'data'),
    CHAT_LOGGING__LEVEL: 'silent',
    CHAT_LLM: JSON.stringify({
      max_retries: 0,
      providers: { emb: { type: 'openai-compatible', base_url: server.baseUrl } },
    }),
    ...(model === undefined ? {} : { CHAT_RAG__EMBEDDING_MODEL: model }),
  };
}

async function withRag<T>(model: string | undefined, use: (rag: RagApi, platform: Platform) => Promise<T>) {
  const platform = await createPlatform({ env: envFor(model) });
  try {
    const rag = await platform.modules.getModule<RagApi>('rag');
    if (rag === undefined) throw new Error('rag is not loaded');
    return await use(rag, platform);
  } finally {
    await platform.close();
  }
}

function runCli(args: string[], env: Record<string, string>) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
    const child = spawn(process.execPath, [join(repoRoot, 'src/cli/main.ts'), ...args], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

const documents = {
  wings: '# Wings\n\nFlutter of swept wings at transonic speed.\n\nAileron reversal of flexible wings.',
  shells: '# Shells\n\nBuckling of thin cylindrical shells under axial compression.',
};

describe('hybrid retrieval in the rag module', () => {
  it('embeds documents and fuses BM25 with dense vectors; BM25 alone without an embedding model', async () => {
    server.respond({ kind: 'embed' });
    await withRag('emb:one', async (rag) => {
      for (const [name, content] of Object.entries(documents)) {
        await rag.addDocument({ ownerId: 'alice', content, filename: `${name}.md` });
      }
      await rag.addDocument({ ownerId: 'bob', content: documents.shells, filename: 'shells.md' });
      // Every chunk went to the embedding model, under the configured name.
      const embedded = server.requests.flatMap((request) => request.body.input);
      expect(server.requests.every((request) => request.body.model === 'one')).toBe(true);
      expect(embedded.some((text) => text.includes('Buckling of thin cylindrical shells'))).toBe(true);

      server.respond({ kind: 'embed' });
      const hits = await rag.query({ ownerId: 'alice', query: 'buckling of cylindrical shells', topK: 2 });
      expect(hits[0]).toMatchObject({ title: 'Shells' });
      // First in both lists: the reciprocal-rank score 1/(60+1) + 1/(60+1), not a BM25 score.
      expect(hits[0]!.score).toBeCloseTo(2 / 61, 6);
      expect(server.requests.map((request) => request.body.input)).toEqual([
        ['buckling of cylindrical shells'],
      ]);
    });
    // The vectors were written in the seed's layout: rag/vectors/{index_id}/{embeddings.npy,index.json}.
    expect((await readdir(join(dir, 'data', 'rag', 'vectors', 'o-alice'))).sort()).toEqual(
      expect.arrayContaining(['embeddings.npy', 'index.json']),
    );

    server.respond({ kind: 'embed' });
    await withRag(undefined, async (rag) => {
      const hits = await rag.query({ ownerId: 'alice', query: 'buckling of cylindrical shells', topK: 2 });
      expect(hits[0]!.title).toBe('Shells');
      expect(hits[0]!.score).toBeGreaterThan(2 / 61); // a BM25 score
      expect(server.requests).toHaveLength(0);
      await expect(rag.reindexVectors()).rejects.toMatchObject({ code: 'CHAT_ERR_CONFIG_INVALID' });
    });
  });

  it('after a model change: adding fails naming `parley rag reindex`, queries fall back to BM25, the command rebuilds', async () => {
    server.respond({ kind: 'embed' });
    await withRag('emb:two', async (rag) => {
      const failure = (await rag
        .addDocument({ ownerId: 'alice', content: 'Heat transfer to a flat plate.', filename: 'plates.md' })
        .catch((error: unknown) => error)) as PlatformError;
      expect(failure.code).toBe('CHAT_ERR_RAG_EMBEDDING_MISMATCH');
      expect(failure.message).toContain('emb:one');
      expect(failure.message).toContain('emb:two');
      expect(failure.message).toContain('parley rag reindex');
      // Nothing of the failed add was stored.
      expect(
        (await rag.listDocuments({ ownerId: 'alice' })).map((document) => document.title).sort(),
      ).toEqual(['Shells', 'Wings']);
      const hits = await rag.query({ ownerId: 'alice', query: 'flutter of swept wings', topK: 1 });
      expect(hits[0]!.title).toBe('Wings');
      // Fused from the BM25 list alone: the dense side failed (logged) and was left out.
      expect(hits[0]!.score).toBeCloseTo(1 / 61, 6);
    });

    server.respond({ kind: 'embed' });
    const reindexed = await runCli(['rag', 'reindex'], envFor('emb:two'));
    expect(reindexed.stderr).toBe('');
    expect(reindexed.code).toBe(0);
    expect(reindexed.stdout).toMatch(
      /alice: 2 chunks with emb:two \(dimension 32\): 2 embedded, 0 reused, was emb:one/,
    );
    expect(reindexed.stdout).toContain('reindexed 2 owners, 3 chunks');
    expect(new Set(server.requests.map((request) => request.body.model))).toEqual(new Set(['two']));

    server.respond({ kind: 'embed' });
    await withRag('emb:two', async (rag) => {
      await rag.addDocument({
        ownerId: 'alice',
        content: 'Heat transfer to a flat plate.',
        filename: 'plates.md',
      });
      const hits = await rag.query({ ownerId: 'alice', query: 'heat transfer flat plate', topK: 1 });
      expect(hits[0]).toMatchObject({ title: 'plates.md' });
      expect(hits[0]!.score).toBeCloseTo(2 / 61, 6);
    });

    const unknownUser = await runCli(['rag', 'reindex', '--user', 'nobody'], envFor('emb:two'));
    expect(unknownUser.code).toBe(2);
    expect(unknownUser.stderr).toContain('no user "nobody"');
  });
});
