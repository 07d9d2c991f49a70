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
});
