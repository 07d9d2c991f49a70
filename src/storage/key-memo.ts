/**
 * What a storage layer worked out from a key (that it is valid, its full key under a root, whose it is),
 * kept by the key. A chat turn passes the same few keys through every layer several times; working them
 * out again each time (splitting, matching patterns, building a new string that the next layer's Map then
 * hashes afresh) was a share of each turn. The same key string object found again is also found fast: V8
 * keeps a string's hash in it.
 *
 * Bounded by clearing it whole when full, not by evicting one key at a time: a long-lived Map whose keys
 * are deleted one by one keeps its old tables' entries alive past young collections (ADR 0007, session 14).
 */
export class KeyMemo<V> {
  readonly #values = new Map<string, V>();
  readonly #maxKeys: number;

  constructor(maxKeys = 4096) {
    this.#maxKeys = maxKeys;
  }

  get(key: string): V | undefined {
    return this.#values.get(key);
  }

  /** Remembers `value` for `key` and returns it. */
  remember(key: string, value: V): V {
    if (this.#values.size >= this.#maxKeys) this.#values.clear();
    this.#values.set(key, value);
    return value;
  }
}
