import { parseArgs } from 'node:util';
import { isPlatformError } from '../core/errors.ts';
import { auditVerify, keysCreate, keysList, keysRevoke, usersCreate, usersList } from './auth-commands.ts';
import { chat } from './chat.ts';
import { configCheck, configPrint } from './config-command.ts';
import {
  encryptionRotate,
  encryptionSealPlaintext,
  encryptionShred,
  encryptionStatus,
} from './encryption-command.ts';
import { ingest } from './ingest.ts';
import { ragCommand } from './rag-command.ts';
import { serve } from './serve.ts';

const usage = `usage: parley <command> [options]

commands:
  serve                 load config and modules and serve HTTP (Ctrl-C stops cleanly)
  config check          validate the effective configuration (exit 0, or the problems)
  config print          print the effective configuration, secrets masked (--sources: where each value came from)
  chat                  a streaming chat REPL: against a server (--url, --key) or in-process (--user, default admin)
  users create <name>   create a user (--role admin|user, default user) and print its first API key once
  users list            list users
  keys create           create an API key for --user <name> (--name <label>) and print it once
  keys list             list API keys (--user <name> to filter); never the keys themselves
  keys revoke <id>      revoke an API key
  audit verify          check the audit log's hash chains (exit 0 intact, 1 with what was changed or removed)
  encryption status     master keys and the data keys each wraps (encryption at rest)
  encryption rotate     re-wrap every data key under security.encryption.active_key_id
  encryption shred      destroy a user's data keys (--user <name or id> --yes): their data becomes unreadable
  encryption seal-plaintext  seal sensitive values stored before encryption was on (servers stopped)
  ingest <paths>        add files or folders to a user's document library (parley ingest --help)
  rag reindex           embed documents again with rag.embedding_model (--user <name>; parley rag --help)

options:
  --config <dir>        the config folder (default ./config)
  -h, --help            this help
`;

/** The `parley` command: parses argv and runs a subcommand; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'ingest') return ingest(argv.slice(1)); // it parses its own options
  if (argv[0] === 'rag') return ragCommand(argv.slice(1));
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      url: { type: 'string' },
      key: { type: 'string' },
      user: { type: 'string' },
      role: { type: 'string' },
      name: { type: 'string' },
      sources: { type: 'boolean', default: false },
      yes: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command, subcommand, argument] = positionals;
  if (values.help || command === undefined) {
    process.stdout.write(usage);
    return command === undefined && !values.help ? 2 : 0;
  }
  switch (`${command} ${subcommand ?? ''}`.trim()) {
    case 'serve':
      await serve(values.config === undefined ? {} : { configDir: values.config });
      return 0;
    case 'config check':
      return configCheck(values.config);
    case 'config print':
      return configPrint(values.config, values.sources);
    case 'chat':
      return chat({
        ...(values.config === undefined ? {} : { configDir: values.config }),
        ...(values.url === undefined ? {} : { url: values.url }),
        ...(values.key === undefined ? {} : { key: values.key }),
        ...(values.user === undefined ? {} : { user: values.user }),
      });
    case 'users create':
      return usersCreate(values.config, argument, values.role);
    case 'users list':
      return usersList(values.config);
    case 'keys create':
      return keysCreate(values.config, values.user, values.name);
    case 'keys list':
      return keysList(values.config, values.user);
    case 'keys revoke':
      return keysRevoke(values.config, argument);
    case 'audit verify':
      return auditVerify(values.config);
    case 'encryption status':
      return encryptionStatus(values.config);
    case 'encryption rotate':
      return encryptionRotate(values.config);
    case 'encryption seal-plaintext':
      return encryptionSealPlaintext(values.config);
    case 'encryption shred':
      return encryptionShred(values.config, values.user, values.yes);
    default:
      process.stderr.write(`parley: unknown command "${positionals.join(' ')}"\n\n${usage}`);
      return 2;
  }
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => {
      if (code !== 0) process.exitCode = code;
    },
    (error: unknown) => {
      // A clear message, not a stack trace: startup errors (bad config, missing module) are PlatformErrors.
      process.stderr.write(
        `parley: ${isPlatformError(error) ? error.message : String(error instanceof Error ? error.stack : error)}\n`,
      );
      process.exitCode = 1;
    },
  );
}
