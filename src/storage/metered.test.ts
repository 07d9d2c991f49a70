import { describe, expect, it } from 'vitest';
import type { StorageOperation } from '../core/observers.ts';
import { createMemoryStorage } from './drivers/memory.ts';
import { meterStorage } from './metered.ts';

describe('meterStorage', () => {
  it('reports each call it passes on, with whether it failed, and keeps readFrom only where the driver has it', async () => {
    const seen: { operation: StorageOperation; failed: boolean }[] = [];
    const storage = meterStorage(createMemoryStorage(), {
      operationCompleted: (operation, seconds, failed) => {
        expect(seconds).toBeGreaterThanOrEqual(0);
        seen.push({ operation, failed });
      },
    });
    const bytes = new TextEncoder().encode('{"a":1}\n');
    await storage.write('a.json', bytes);
    await storage.append('log.jsonl', bytes);
    expect(await storage.read('a.json')).toEqual(bytes);
    await storage.exists('a.json');
    await storage.list('');
    await storage.delete('a.json');
    await expect(storage.write('../outside', bytes)).rejects.toThrow();
    expect(seen).toEqual([
      { operation: 'write', failed: false },
      { operation: 'append', failed: false },
      { operation: 'read', failed: false },
      { operation: 'exists', failed: false },
      { operation: 'list', failed: false },
      { operation: 'delete', failed: false },
      { operation: 'write', failed: true },
    ]);

    const { readFrom: _readFrom, ...withoutReadFrom } = createMemoryStorage();
    expect(meterStorage(withoutReadFrom, { operationCompleted() {} }).readFrom).toBeUndefined();
  });

  it('closes only once every call it handed out has settled, however many wait for the close', async () => {
    const inner = createMemoryStorage();
    const gate = Promise.withResolvers<void>();
    const slow = {
      ...inner,
      async read(key: string) {
        const value = await inner.read(key);
        await gate.promise;
        return value;
      },
    };
    const storage = meterStorage(slow, { operationCompleted() {} });
    const reading = storage.read('a.json');
    let closed = 0;
    const closing = [storage.close(), storage.close()].map((close) => close.then(() => (closed += 1)));
    await new Promise((resolve) => setImmediate(resolve));
    expect(closed).toBe(0);
    gate.resolve();
    await reading;
    await Promise.all(closing);
    expect(closed).toBe(2);
  });
});
