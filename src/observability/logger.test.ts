import { describe, expect, it } from 'vitest';
import { ValidationError } from '../core/errors.ts';
import type { ModuleLogger } from '../core/module.ts';
import { createLogger, createModuleLogger } from './logger.ts';

function capture(): { lines: () => Record<string, unknown>[]; destination: { write(line: string): void } } {
  const written: string[] = [];
  return {
    lines: () => written.map((line) => JSON.parse(line) as Record<string, unknown>),
    destination: { write: (line: string) => void written.push(line) },
  };
}

describe('createLogger', () => {
  it('writes one JSON object per line with ISO time and the level as a word', () => {
    const { lines, destination } = capture();
    createLogger({ destination, name: 'node-a' }).info({ userId: 'u1' }, 'hello');
    const [line] = lines();
    expect(line).toMatchObject({ level: 'info', name: 'node-a', userId: 'u1', msg: 'hello' });
    expect(new Date(String(line?.time)).toISOString()).toBe(line?.time);
  });

  it('drops lines below the configured level', () => {
    const { lines, destination } = capture();
    const log = createLogger({ destination, level: 'warn' });
    log.info('quiet');
    log.warn('loud');
    expect(lines().map((line) => line.msg)).toEqual(['loud']);
  });

  it('gives module loggers the module name, and fits the ModuleLogger interface of core', () => {
    const { lines, destination } = capture();
    const moduleLog: ModuleLogger = createModuleLogger(createLogger({ destination }), 'text_chat');
    moduleLog.child({ sessionId: 's1' }).info('turn');
    expect(lines()[0]).toMatchObject({ module: 'text_chat', sessionId: 's1', msg: 'turn' });
  });

  it('redacts credentials passed by accident', () => {
    const { lines, destination } = capture();
    createLogger({ destination }).info(
      { password: 'p', provider: { api_key: 'sk-1' }, user: 'ann' },
      'login',
    );
    expect(lines()[0]).toMatchObject({ password: '****', provider: { api_key: '****' }, user: 'ann' });
  });

  it('serialises platform errors with their code', () => {
    const { lines, destination } = capture();
    createLogger({ destination }).error({ err: new ValidationError('bad input') }, 'failed');
    expect(lines()[0]?.err).toMatchObject({
      type: 'ValidationError',
      message: 'bad input',
      code: 'CHAT_ERR_VALIDATION_INVALID',
    });
  });
});
