import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { lazyRequestLogger } from './lazy-request-logger.ts';

describe('lazy request logger', () => {
  it('makes the child logger only when something is logged, bound to the request id', () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const parent = pino({ level: 'info' }, destination);
    const child = vi.spyOn(parent, 'child');
    const log = lazyRequestLogger(parent, { reqId: 'req-1' }, {});
    expect(log.level).toBe('info');
    log.debug('below the level');
    // Asked for its level and called below it: pino's child was still made (the call went through it),
    // but nothing was written.
    expect(lines).toEqual([]);

    const quiet = lazyRequestLogger(parent, { reqId: 'req-2' }, {});
    expect(quiet.level).toBe('info');
    expect(child).toHaveBeenCalledTimes(1);

    log.error({ code: 'X' }, 'request failed');
    expect(child).toHaveBeenCalledTimes(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      reqId: 'req-1',
      code: 'X',
      msg: 'request failed',
      level: 50,
    });
  });
});
