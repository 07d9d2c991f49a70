/**
 * `parley ingest <files or folders>`: adds documents to a user's library through the rag module, in
 * process (the platform is built from config as `serve` builds it, and each file goes through the bus as
 * `rag.document.add`). A progress bar on stderr, one line per file when stderr is not a terminal, the files
 * that failed and why, and a summary at the end; exit 1 when any file failed.
 */
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { basename, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isPlatformError } from '../core/errors.ts';
import type { DocumentAddRequest, DocumentAddResult, RagConfig } from '../modules/rag/types.ts';
import { createPlatform, type Platform } from '../platform/create-platform.ts';
import { bootstrapAdmin, createAuth } from '../security/auth.ts';
import { formatBootstrapNotice } from './bootstrap-notice.ts';

// Kept here rather than imported from the rag module: the CLI must start (and say "rag is not enabled")
// even when the module's folder is gone.
const SUPPORTED_EXTENSIONS = new Set([
  'txt',
  'text',
  'log',
  'csv',
  'tsv',
  'json',
  'md',
  'markdown',
  'mdown',
  'mkd',
  'html',
  'htm',
  'xhtml',
  'pdf',
  'docx',
]);

const usage = `usage: parley ingest <files or folders> [options]

Adds documents (text, Markdown, HTML, PDF, DOCX) to a user's library for retrieval. Folders are walked
recursively for files with a supported extension (hidden files and folders are skipped). The same file
ingested again is skipped when unchanged and replaced when changed.

options:
  --user <name>         whose library (a user name or id; default admin, created on a first start)
  --title <title>       the document title (one file only; default: from the file, else its name)
  --meta <key=value>    metadata for filters, repeatable (--meta team=ops --meta year=2024)
  --config <dir>        the config folder (default ./config)
  -h, --help            this help

Run it while parley serve is stopped (one process owns a data folder), or upload over the HTTP API.
`;

/** The outcome of one file. */
interface FileOutcome {
  path: string;
  status: DocumentAddResult['status'] | 'failed';
  chunks: number;
  error?: string;
}

/** Where the command writes; the process streams by default (tests pass their own). */
export interface IngestStreams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
}

/** Files to ingest: explicit files as given, folders walked for supported extensions; sorted, no repeats. */
async function collectFiles(paths: string[]): Promise<{ files: string[]; missing: FileOutcome[] }> {
  const files = new Set<string>();
  const missing: FileOutcome[] = [];
  for (const path of paths) {
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(path);
    } catch {
      missing.push({ path, status: 'failed', chunks: 0, error: 'no such file or folder' });
      continue;
    }
    if (!info.isDirectory()) {
      files.add(resolve(path));
      continue;
    }
    const entries = await readdir(path, { recursive: true, withFileTypes: true });
    for (const entry of entries) {
      if (!entry.isFile()) continue;
      const full = join(entry.parentPath, entry.name);
      const inside = relative(path, full).split(/[\\/]/);
      if (inside.some((segment) => segment.startsWith('.'))) continue;
      const extension = entry.name.toLowerCase().match(/\.([a-z0-9]+)$/)?.[1];
      if (extension !== undefined && SUPPORTED_EXTENSIONS.has(extension)) files.add(resolve(full));
    }
  }
  return { files: [...files].sort(), missing };
}

/** Parses `key=value` pairs; numbers and booleans keep their type. */
function parseMetadata(pairs: string[]): Record<string, string | number | boolean> {
  const metadata: Record<string, string | number | boolean> = {};
  for (const pair of pairs) {
    const separator = pair.indexOf('=');
    if (separator < 1) throw new Error(`--meta takes key=value, not "${pair}"`);
    const key = pair.slice(0, separator);
    const raw = pair.slice(separator + 1);
    metadata[key] =
      raw === 'true'
        ? true
        : raw === 'false'
          ? false
          : raw !== '' && Number.isFinite(Number(raw))
            ? Number(raw)
            : raw;
  }
  return metadata;
}

/** A one-line progress bar redrawn in place on a terminal; one line per file elsewhere. */
function createProgress(stream: IngestStreams['stderr'], total: number) {
  const interactive = stream.isTTY === true;
  let drawn = false;
  const clear = () => {
    if (interactive && drawn) stream.write('\r\u001b[2K');
    drawn = false;
  };
  return {
    /** Shows that `done` files are finished and `current` is next. */
    update(done: number, current: string | undefined) {
      if (!interactive) return;
      const columns = stream.columns || 80;
      const label = `${done}/${total}`;
      const width = Math.max(10, Math.min(30, columns - label.length - 20));
      const filled = total === 0 ? width : Math.round((done / total) * width);
      const name = current === undefined ? '' : basename(current);
      const line = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${label} ${name}`;
      stream.write(`\r\u001b[2K${line.slice(0, columns - 1)}`);
      drawn = true;
    },
    /** Reports a finished file: a line above the bar (a failure), or the per-file line without a terminal. */
    report(done: number, outcome: FileOutcome) {
      if (interactive) {
        if (outcome.status !== 'failed') return;
        clear();
        stream.write(`failed ${outcome.path}: ${outcome.error}\n`);
        return;
      }
      const what =
        outcome.status === 'failed'
          ? `failed: ${outcome.error}`
          : `${outcome.status} (${plural(outcome.chunks, 'chunk')})`;
      stream.write(`[${done}/${total}] ${outcome.path} ${what}\n`);
    },
    finish: clear,
  };
}

/** Whose library: a user by id or name, the admin made first if the data folder has no users yet. */
async function resolveUser(platform: Platform, wanted: string, stdout: NodeJS.WritableStream) {
  const auth = createAuth(platform.storage);
  const created = await bootstrapAdmin(auth, platform.audit);
  if (created !== undefined) {
    const { host, port } = platform.config.server;
    stdout.write(formatBootstrapNotice(created.user.name, created.apiKey.key, `http://${host}:${port}`));
  }
  return (await auth.users.get(wanted)) ?? (await auth.users.findByName(wanted));
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}

/** Runs `parley ingest` with its own arguments; resolves to the exit code. */
export async function ingest(
  argv: string[],
  streams: IngestStreams = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const { stdout, stderr } = streams;
  let values: { user?: string; title?: string; meta?: string[]; config?: string; help?: boolean };
  let positionals: string[];
  let metadata: Record<string, string | number | boolean>;
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        user: { type: 'string' },
        title: { type: 'string' },
        meta: { type: 'string', multiple: true },
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
    metadata = parseMetadata(values.meta ?? []);
  } catch (error) {
    stderr.write(`parley ingest: ${error instanceof Error ? error.message : String(error)}\n\n${usage}`);
    return 2;
  }
  if (values.help === true) {
    stdout.write(usage);
    return 0;
  }
  if (positionals.length === 0) {
    stderr.write(`parley ingest: name the files or folders to ingest\n\n${usage}`);
    return 2;
  }

  const started = performance.now();
  const { files, missing } = await collectFiles(positionals);
  if (values.title !== undefined && files.length + missing.length !== 1) {
    stderr.write('parley ingest: --title applies to one file; it would give every document the same title\n');
    return 2;
  }

  const platform = await createPlatform({
    ...(values.config === undefined ? {} : { configDir: values.config }),
    // The terminal shows the progress: logs go to stderr, and only fatal ones unless asked for more.
    logDestination: process.stderr,
    env: { ...process.env, CHAT_LOGGING__LEVEL: process.env.CHAT_LOGGING__LEVEL ?? 'fatal' },
  });
  const outcomes: FileOutcome[] = [...missing];
  try {
    const rag = platform.config.rag as Readonly<RagConfig & { enabled?: boolean }> | undefined;
    if (rag === undefined || rag.enabled === false) {
      stderr.write('parley ingest: the rag module is not enabled (rag.enabled in config)\n');
      return 1;
    }
    const userName = values.user ?? 'admin';
    const user = await resolveUser(platform, userName, stdout);
    if (user === undefined) {
      stderr.write(
        `parley ingest: no user "${userName}": pass --user <name> (parley users create <name> makes one)\n`,
      );
      return 2;
    }

    const progress = createProgress(stderr, files.length + missing.length);
    let done = 0;
    for (const outcome of missing) progress.report(++done, outcome);
    for (const file of files) {
      progress.update(done, file);
      const inCwd = relative(process.cwd(), file);
      const shown = inCwd === '' || inCwd.startsWith('..') ? file : inCwd;
      let outcome: FileOutcome;
      try {
        const size = (await stat(file)).size;
        if (size > rag.max_document_bytes) {
          throw new Error(`${size} bytes is over rag.max_document_bytes (${rag.max_document_bytes})`);
        }
        const request: DocumentAddRequest = {
          ownerId: user.id,
          filename: basename(file),
          // The real path identifies the file: ingesting it again, from anywhere, updates the same document.
          source: await realpath(file),
          contentBase64: (await readFile(file)).toString('base64'),
          metadata,
        };
        if (values.title !== undefined) request.title = values.title;
        const result = await platform.bus.request<DocumentAddResult>('rag.document.add', request, {
          timeout: rag.ingest_timeout_ms,
          userId: user.id,
        });
        outcome = { path: shown, status: result.status, chunks: result.chunks };
      } catch (error) {
        const message = isPlatformError(error) || error instanceof Error ? error.message : String(error);
        // Parser messages start with the file name, which the report already shows.
        const prefix = `${basename(file)}: `;
        const reason = message.startsWith(prefix) ? message.slice(prefix.length) : message;
        outcome = { path: shown, status: 'failed', chunks: 0, error: reason };
      }
      outcomes.push(outcome);
      progress.report(++done, outcome);
    }
    progress.update(done, undefined);
    progress.finish();
  } finally {
    await platform.close();
  }

  const count = (status: FileOutcome['status']) =>
    outcomes.filter((outcome) => outcome.status === status).length;
  const failed = outcomes.filter((outcome) => outcome.status === 'failed');
  if (failed.length > 0) {
    stderr.write(`\n${plural(failed.length, 'file')} failed:\n`);
    for (const outcome of failed) stderr.write(`  ${outcome.path}: ${outcome.error}\n`);
  }
  const chunks = outcomes.reduce(
    (sum, outcome) => sum + (outcome.status === 'unchanged' ? 0 : outcome.chunks),
    0,
  );
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  stdout.write(
    `ingested ${plural(outcomes.length, 'file')}: ${count('added')} added, ${count('updated')} updated, ` +
      `${count('unchanged')} unchanged, ${count('failed')} failed; ${plural(chunks, 'chunk')} indexed in ${seconds} s\n`,
  );
  return failed.length > 0 ? 1 : 0;
}
