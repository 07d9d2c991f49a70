import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { defineModule } from '../../src/core/module.ts';
import { createPlatform } from '../../src/platform/create-platform.ts';

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'parley-shutdown-'));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

it('close() lets an in-flight handler finish its write, and only then disposes modules and storage', async () => {
  const order: string[] = [];
  const slowWriter = defineModule({
    info: { name: 'slow_writer', version: '1.0.0', capabilities: [], dependencies: [] },
    configSchema: {},
    setup: (ctx) => ({
      handlers: {
        'job.created': async () => {
          await new Promise((resolve) => setTimeout(resolve, 200));
          await ctx.storage.append('log.jsonl', new TextEncoder().encode('{"done":true}\n'));
          order.push('handler finished');
        },
      },
      dispose: () => void order.push('disposed'),
    }),
  });
  const platform = await createPlatform({
    env: { CHAT_DATA_DIR: dataDir, CHAT_LOGGING__LEVEL: 'silent' },
    definitions: new Map([['slow_writer', slowWriter as never]]),
  });
  const emitted = platform.bus.emit('job.created', {});
  await new Promise((resolve) => setTimeout(resolve, 20)); // the handler is now mid-flight
  await platform.close();
  await emitted;
  expect(order).toEqual(['handler finished', 'disposed']);
  expect(await readFile(join(dataDir, 'slow_writer', 'log.jsonl'), 'utf8')).toBe('{"done":true}\n');
  await expect(platform.bus.emit('job.created', {})).rejects.toMatchObject({ code: 'CHAT_ERR_BUS_CLOSED' });
});
