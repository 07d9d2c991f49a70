import { parseArgs } from 'node:util';
import { isPlatformError } from '../core/errors.ts';
import { configCheck, configPrint } from './config-command.ts';
import { serve } from './serve.ts';

const usage = `usage: parley <command> [options]

commands:
  serve                 load config and modules and serve HTTP (Ctrl-C stops cleanly)
  config check          validate the effective configuration (exit 0, or the problems)
  config print          print the effective configuration, secrets masked (--sources: where each value came from)

options:
  --config <dir>        the config folder (default ./config)
  -h, --help            this help
`;

/** The `parley` command: parses argv and runs a subcommand; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      sources: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command, subcommand] = positionals;
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
