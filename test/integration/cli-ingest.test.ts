import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeDocx, makePdf } from '../../src/modules/rag/test-fixtures.ts';

const repoRoot = resolve(import.meta.dirname, '../..');
const cli = join(repoRoot, 'src/cli/main.ts');

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: NodeJS.ProcessEnv): Promise<RunResult> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [cli, ...args], { cwd: repoRoot, env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

describe('parley ingest', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-ingest-'));
    env = { CHAT_DATA_DIR: join(dir, 'data') };
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('ingests a folder, reports a corrupt PDF without stopping the batch, and skips unchanged files next time', async () => {
    const docs = join(dir, 'docs');
    await mkdir(join(docs, 'manuals'), { recursive: true });
    await mkdir(join(docs, '.git'));
    await writeFile(join(docs, 'wings.md'), '# Wings\n\nThe wing makes lift.\n');
    await writeFile(
      join(docs, 'page.html'),
      '<html><head><title>Flaps</title></head><body><p>Flaps add drag.</p></body></html>',
    );
    await writeFile(
      join(docs, 'manuals', 'engine.pdf'),
      makePdf([['Check the engine oil before flight.']], 'Engine'),
    );
    await writeFile(join(docs, 'manuals', 'props.docx'), makeDocx([{ text: 'Propellers turn.' }]));
    await writeFile(join(docs, 'manuals', 'corrupt.pdf'), '%PDF-1.4\nthis file was cut short');
    await writeFile(join(docs, 'photo.jpg'), 'not a document'); // not a supported extension: not picked up
    await writeFile(join(docs, '.git', 'notes.md'), 'hidden'); // hidden folders are skipped

    const first = await run(['ingest', docs], env);
    expect(first.code).toBe(1);
    expect(first.stdout).toContain('ingested 5 files: 4 added, 0 updated, 0 unchanged, 1 failed');
    expect(first.stderr).toContain('1 file failed:');
    expect(first.stderr).toMatch(/corrupt\.pdf: not a readable PDF file/);
    // Not a terminal: one line per file.
    expect(first.stderr).toMatch(/\[\d\/5\] .*engine\.pdf added \(1 chunk\)/);
    expect(first.stderr).not.toMatch(/\n\s+at /);

    const documents = await readdir(join(dir, 'data', 'rag', 'documents'));
    expect(documents).toHaveLength(4);
    const titles = await Promise.all(
      documents.map(async (docId) => {
        const record = JSON.parse(
          await readFile(join(dir, 'data', 'rag', 'documents', docId, 'metadata.json'), 'utf8'),
        );
        return record.title as string;
      }),
    );
    expect(titles.sort()).toEqual(['Engine', 'Flaps', 'Wings', 'props.docx'].sort());

    await writeFile(join(docs, 'wings.md'), '# Wings\n\nThe wing makes lift, and the tail keeps it level.\n');
    await rm(join(docs, 'manuals', 'corrupt.pdf'));
    const second = await run(['ingest', docs, '--user', 'admin', '--meta', 'team=ops'], env);
    expect(second.code).toBe(0);
    // The metadata changed for every file, so all are rewritten; content hashes decide "unchanged" otherwise.
    expect(second.stdout).toContain('ingested 4 files: 0 added, 4 updated, 0 unchanged, 0 failed');
    const third = await run(['ingest', docs, '--meta', 'team=ops'], env);
    expect(third.stdout).toContain('ingested 4 files: 0 added, 0 updated, 4 unchanged, 0 failed');
    expect(third.code).toBe(0);
  });

  it('exits 2 with a clear message for an unknown user or no paths', async () => {
    await writeFile(join(dir, 'a.md'), 'text');
    const unknown = await run(['ingest', join(dir, 'a.md'), '--user', 'nobody'], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no user "nobody"');
    const nothing = await run(['ingest'], env);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toContain('name the files or folders to ingest');
  });
});
