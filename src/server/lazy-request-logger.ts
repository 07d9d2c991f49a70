import type { FastifyBaseLogger } from 'fastify';

type Bindings = Parameters<FastifyBaseLogger['child']>[0];
type ChildOptions = Parameters<FastifyBaseLogger['child']>[1];
type LogArguments = Parameters<FastifyBaseLogger['info']>;

/**
 * A request's logger (`request.log`, bound to its request id) made on first use. Fastify makes one for
 * every request, and a pino child costs the bindings serialized and the redaction set up again — a few
 * microseconds of every chat turn — while most requests log nothing (request logging is off; errors are
 * logged by the error handler).
 */
class LazyRequestLogger implements FastifyBaseLogger {
  readonly #parent: FastifyBaseLogger;
  readonly #bindings: Bindings;
  readonly #options: ChildOptions;
  #made: FastifyBaseLogger | undefined;

  constructor(parent: FastifyBaseLogger, bindings: Bindings, options: ChildOptions) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#options = options;
  }

  get #logger(): FastifyBaseLogger {
    this.#made ??= this.#parent.child(this.#bindings, this.#options);
    return this.#made;
  }

  get level(): string {
    return this.#made?.level ?? this.#parent.level;
  }

  set level(level: string) {
    this.#logger.level = level;
  }

  fatal(...args: LogArguments): void {
    this.#logger.fatal(...args);
  }

  error(...args: LogArguments): void {
    this.#logger.error(...args);
  }

  warn(...args: LogArguments): void {
    this.#logger.warn(...args);
  }

  info(...args: LogArguments): void {
    this.#logger.info(...args);
  }

  debug(...args: LogArguments): void {
    this.#logger.debug(...args);
  }

  trace(...args: LogArguments): void {
    this.#logger.trace(...args);
  }

  silent(...args: LogArguments): void {
    this.#logger.silent(...args);
  }

  child(bindings: Bindings, options?: ChildOptions): FastifyBaseLogger {
    return this.#logger.child(bindings, options);
  }
}

/** Fastify's `childLoggerFactory`: request loggers made only when something is logged. */
export function lazyRequestLogger(
  logger: FastifyBaseLogger,
  bindings: Bindings,
  options: ChildOptions,
): FastifyBaseLogger {
  return new LazyRequestLogger(logger, bindings, options);
}
