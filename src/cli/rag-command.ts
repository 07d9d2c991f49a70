/**
 * `parley rag reindex [--user <name or id>]`: rebuilds the dense vector indexes from the stored documents
 * with the configured embedding model (`rag.embedding_model`) — the way out of
 * CHAT_ERR_RAG_EMBEDDING_MISMATCH after the model or its dimension changed. Builds the platform in process
 * (like `parley ingest`), so it runs while `parley serve` is stopped.
 */
import { parseArgs } from 'node:util';
import { isPlatformError } from '../core/errors.ts';
import type { RagApi, VectorReindexReport } from '../modules/rag/types.ts';
import { createPlatform } from '../platform/create-platform.ts';
import { createAuth } from '../security/auth.ts';

const usage = `usage: parley rag reindex [options]

Embeds every document's chunks again with the configured embedding model (rag.embedding_model) and
replaces the stored vector indexes. Needed after the embedding model (or its dimension) changed: until
then adding documents fails with CHAT_ERR_RAG_EMBEDDING_MISMATCH and queries use BM25 alone. Vectors of
unchanged chunks are reused when the model is the same.

options:
  --user <name>         only this user's documents (a user name or id; default: every user's)
  --config <dir>        the config folder (default ./config)
  -h, --help            this help

Run it while parley serve is stopped (one process owns a data folder).
`;

/** Where the command writes; the process streams by default (tests pass their own). */
export interface RagCommandStreams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

function describe(report: VectorReindexReport, userName: string): string {
  if (report.chunks === 0) return `${userName}: no chunks; vector index removed`;
  const before =
    report.previous === undefined
      ? 'no previous index'
      : `was ${report.previous.model} (dimension ${report.previous.dimension}, ${report.previous.count} vectors)`;
  return (
    `${userName}: ${report.chunks} chunks with ${report.model} (dimension ${report.dimension}): ` +
    `${report.embedded} embedded, ${report.reused} reused, ${before}; ${(report.milliseconds / 1000).toFixed(1)} s`
  );
}

/** Runs `parley rag <subcommand>` with its own arguments; resolves to the exit code. */
export async function ragCommand(
  argv: string[],
  streams: RagCommandStreams = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const { stdout, stderr } = streams;
  let values: { user?: string; config?: string; help?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        user: { type: 'string' },
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    stderr.write(`parley rag: ${error instanceof Error ? error.message : String(error)}\n\n${usage}`);
    return 2;
  }
  if (values.help === true) {
    stdout.write(usage);
    return 0;
  }
  if (positionals.length !== 1 || positionals[0] !== 'reindex') {
    stderr.write(
      `parley rag: ${positionals.length === 0 ? 'name a subcommand' : `unknown subcommand "${positionals.join(' ')}"`}\n\n${usage}`,
    );
    return 2;
  }

  const platform = await createPlatform({
    ...(values.config === undefined ? {} : { configDir: values.config }),
    logDestination: process.stderr,
    env: { ...process.env, CHAT_LOGGING__LEVEL: process.env.CHAT_LOGGING__LEVEL ?? 'fatal' },
  });
  try {
    const rag = await platform.modules.getModule<RagApi>('rag');
    if (rag === undefined) {
      stderr.write('parley rag reindex: the rag module is not enabled (rag.enabled in config)\n');
      return 1;
    }
    const auth = createAuth(platform.storage);
    let ownerId: string | undefined;
    if (values.user !== undefined) {
      const user = (await auth.users.get(values.user)) ?? (await auth.users.findByName(values.user));
      if (user === undefined) {
        stderr.write(`parley rag reindex: no user "${values.user}"\n`);
        return 2;
      }
      ownerId = user.id;
    }
    const interactive = stderr.isTTY === true;
    const reports = await rag.reindexVectors({
      ...(ownerId === undefined ? {} : { ownerId }),
      onProgress: (owner, done, total) => {
        if (interactive) stderr.write(`\r\u001b[2K${owner}: ${done}/${total} chunks`);
      },
    });
    if (interactive) stderr.write('\r\u001b[2K');
    for (const report of reports) {
      const user = await auth.users.get(report.ownerId).catch(() => undefined);
      stdout.write(`${describe(report, user?.name ?? report.ownerId)}\n`);
    }
    const chunks = reports.reduce((sum, report) => sum + report.chunks, 0);
    stdout.write(
      `reindexed ${reports.length} ${reports.length === 1 ? 'owner' : 'owners'}, ${chunks} chunks\n`,
    );
    return 0;
  } catch (error) {
    const message = isPlatformError(error) || error instanceof Error ? error.message : String(error);
    stderr.write(`parley rag reindex: ${message}\n`);
    return 1;
  } finally {
    await platform.close();
  }
}
