import { describe, expect, it } from 'vitest';
import { createByteBoundedCache } from './byte-bounded-cache.ts';

describe('byte-bounded cache', () => {
  it('drops the least recently used entries once the sizes (plus the names) pass the bound', () => {
    const cache = createByteBoundedCache<string>(30);
    cache.set('a', 'A', 9); // costs 10 with its name
    cache.set('b', 'B', 9);
    cache.set('c', 'C', 9);
    expect(cache.stats()).toEqual({ entries: 3, bytes: 30, evictions: 0 });
    // Using `a` makes `b` the least recently used.
    expect(cache.get('a')).toBe('A');
    cache.set('d', 'D', 9);
    expect(cache.get('b')).toBeUndefined();
    expect([cache.get('a'), cache.get('c'), cache.get('d')]).toEqual(['A', 'C', 'D']);
    expect(cache.stats()).toEqual({ entries: 3, bytes: 30, evictions: 1 });
  });

  it('replaces an entry in place, and never keeps one larger than the bound (dropping the old one)', () => {
    const cache = createByteBoundedCache<string>(30);
    cache.set('a', 'old', 9);
    cache.set('a', 'new', 19);
    expect(cache.get('a')).toBe('new');
    expect(cache.stats().bytes).toBe(20);
    cache.set('a', 'huge', 30);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.stats()).toEqual({ entries: 0, bytes: 0, evictions: 0 });
  });

  it('holds nothing with a bound of 0, and forgets on delete and clear', () => {
    const none = createByteBoundedCache<string>(0);
    none.set('a', 'A', 0);
    expect(none.get('a')).toBeUndefined();
    const cache = createByteBoundedCache<string>(100);
    cache.set('a', 'A', 1);
    cache.set('b', 'B', 1);
    cache.delete('a');
    expect(cache.get('a')).toBeUndefined();
    expect(cache.stats().bytes).toBe(2);
    cache.clear();
    expect(cache.stats()).toEqual({ entries: 0, bytes: 0, evictions: 0 });
  });
});
