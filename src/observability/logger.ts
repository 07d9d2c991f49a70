/**
 * The platform logger: pino, one JSON object per line on stdout (or a given destination), ISO time, the
 * level as a word, and credentials redacted wherever a log call passes them by accident.
 */

import { type DestinationStream, type LevelWithSilent, type Logger, pino } from 'pino';

export type { Logger };

export interface CreateLoggerOptions {
  /** Lowest level written; `logging.level` in config. Defaults to `info`. */
  level?: LevelWithSilent;
  /** Added to every line as `name` (e.g. the node or process role). */
  name?: string;
  /** A stream, a file path or a file descriptor; defaults to stdout. Writes are synchronous (no loss on crash). */
  destination?: DestinationStream | string | number;
}

/** Fields that are never written as they are, at the top level or one object down. */
export const REDACTED_PATHS = [
  'password',
  'secret',
  'token',
  'api_key',
  'authorization',
  '*.password',
  '*.secret',
  '*.token',
  '*.api_key',
  '*.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
];

/** A JSON-lines logger at `level`, with `err` serialised (code, status and details of PlatformErrors too). */
export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const destination =
    typeof options.destination === 'object'
      ? options.destination
      : pino.destination(options.destination ?? 1);
  return pino(
    {
      level: options.level ?? 'info',
      ...(options.name === undefined ? {} : { name: options.name }),
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACTED_PATHS, censor: '****' },
    },
    destination,
  );
}

/** A child logger whose every line carries `module: <name>` (what a module's `ctx.log` is). */
export function createModuleLogger(parent: Logger, moduleName: string): Logger {
  return parent.child({ module: moduleName });
}
