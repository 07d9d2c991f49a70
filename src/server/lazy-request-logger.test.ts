import Fastify, { type FastifyBaseLogger } from 'fastify';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../observability/logger.ts';
import { lazyRequestLogger } from './lazy-request-logger.ts';

function collectingLogger() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({
    level: 'info',
    destination: { write: (line: string) => void lines.push(JSON.parse(line)) },
  }).child({ component: 'http' });
  return { log, lines };
}

/** Counts the children made of `parent`. */
function countingChildren(parent: FastifyBaseLogger) {
  let made = 0;
  const counted = Object.create(parent) as FastifyBaseLogger;
  counted.child = (bindings, options) => {
    made++;
    return parent.child(bindings, options);
  };
  return { counted, made: () => made };
}

describe('the lazy request logger', () => {
  it('makes no child for a request that logs nothing, and the real one on the first line', () => {
    const { log, lines } = collectingLogger();
    const { counted, made } = countingChildren(log);
    const lazy = lazyRequestLogger.call(
      undefined as never,
      counted,
      { reqId: 'req-1' },
      {},
      undefined as never,
    );
    expect(made()).toBe(0);
    expect(lazy.level).toBe('info');
    lazy.debug('not written');
    lazy.error({ code: 'X' }, 'request failed');
    lazy.warn('second');
    expect(made()).toBe(1);
    expect(lines).toEqual([
      expect.objectContaining({ component: 'http', reqId: 'req-1', code: 'X', msg: 'request failed' }),
      expect.objectContaining({ component: 'http', reqId: 'req-1', level: 'warn', msg: 'second' }),
    ]);
  });

  it('is what Fastify gives a request: a line logged by a route carries the request id', async () => {
    const { log, lines } = collectingLogger();
    const app = Fastify({ loggerInstance: log, childLoggerFactory: lazyRequestLogger });
    app.get('/', async (request) => {
      request.log.child({ step: 'inner' }).info('from the route');
      return { ok: true };
    });
    const response = await app.inject({ method: 'GET', url: '/' });
    await app.close();
    expect(response.statusCode).toBe(200);
    const line = lines.find((entry) => entry.msg === 'from the route');
    expect(line).toMatchObject({ component: 'http', step: 'inner', reqId: expect.any(String) });
  });
});
