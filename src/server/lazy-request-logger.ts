/**
 * The logger of each request (`request.log`), made only when something logs through it. Fastify gives
 * every request a pino child carrying its `reqId`; making one costs a serialised bindings string, a
 * redaction pass and a new logger object, on every request, although a request that succeeds logs nothing
 * (request logging is off: create-server.ts). This stand-in carries the same bindings and makes the real
 * child on its first use, so a line logged for a request is the same as before.
 */

import type { FastifyBaseLogger, FastifyServerOptions } from 'fastify';
import type { Bindings, ChildLoggerOptions as ChildOptions } from 'pino';

type ChildLoggerFactory = NonNullable<FastifyServerOptions['childLoggerFactory']>;
type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** What one request's stand-in holds until its child is made. */
interface LazyLogger extends FastifyBaseLogger {
  parent: FastifyBaseLogger;
  bindings: Bindings;
  options: ChildOptions;
  made: FastifyBaseLogger | undefined;
}

function made(lazy: LazyLogger): FastifyBaseLogger {
  if (lazy.made === undefined) lazy.made = lazy.parent.child(lazy.bindings, lazy.options);
  return lazy.made;
}

/** Forwards a log method to the child, made on the first call. */
function forward(level: LogLevel) {
  return function (this: LazyLogger, ...args: unknown[]): void {
    (made(this)[level] as (...parts: unknown[]) => void)(...args);
  };
}

// One prototype shared by every request: a stand-in is one small object with four fields.
const lazyLoggerMethods = {
  get level(): string {
    return made(this as unknown as LazyLogger).level;
  },
  set level(level: string) {
    made(this as unknown as LazyLogger).level = level;
  },
  fatal: forward('fatal'),
  error: forward('error'),
  warn: forward('warn'),
  info: forward('info'),
  debug: forward('debug'),
  trace: forward('trace'),
  silent: forward('silent'),
  child(this: LazyLogger, bindings: Bindings, options?: ChildOptions): FastifyBaseLogger {
    return made(this).child(bindings, options);
  },
};

/** Fastify's `childLoggerFactory`: the request's logger, made when first used. */
export const lazyRequestLogger: ChildLoggerFactory = (parent, bindings, options) => {
  const lazy = Object.create(lazyLoggerMethods) as LazyLogger;
  lazy.parent = parent;
  lazy.bindings = bindings;
  lazy.options = options;
  lazy.made = undefined;
  return lazy;
};
