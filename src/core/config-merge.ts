/**
 * Deep merge of configuration layers that remembers, for every value, which layer it came from — so an
 * invalid value can be reported with the file (or env var) that set it, not just its path.
 */

/** One source of configuration: a parsed file, one env var, or a module's defaults. */
export interface ConfigLayer {
  /** How to name this layer in messages: a file path, `env CHAT_X__Y`, `defaults of module <name>`. */
  source: string;
  values: Record<string, unknown>;
}

/** JSON pointer → source of the value there. Leaves, arrays and empty objects have an entry. */
export type ConfigSources = Map<string, string>;

/** True for a JSON object (not an array, not null). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Escapes one key as a JSON pointer segment (RFC 6901), as ajv does in `instancePath`. */
export function pointerSegment(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1');
}

/** Merges `layers` in order (later wins). Objects merge key by key; arrays and scalars replace. */
export function mergeLayers(layers: readonly ConfigLayer[]): {
  merged: Record<string, unknown>;
  sources: ConfigSources;
} {
  const merged: Record<string, unknown> = {};
  const sources: ConfigSources = new Map();
  for (const layer of layers) mergeInto(merged, layer.values, layer.source, '', sources);
  return { merged, sources };
}

function mergeInto(
  target: Record<string, unknown>,
  values: Record<string, unknown>,
  source: string,
  pointer: string,
  sources: ConfigSources,
): void {
  for (const [key, value] of Object.entries(values)) {
    const childPointer = `${pointer}/${pointerSegment(key)}`;
    const existing = target[key];
    if (isPlainObject(value) && isPlainObject(existing)) {
      // An empty object's own entry stands in for its (absent) leaves; once it has leaves, they speak.
      if (Object.keys(value).length > 0) sources.delete(childPointer);
      else if (Object.keys(existing).length === 0) sources.set(childPointer, source);
      mergeInto(existing, value, source, childPointer, sources);
      continue;
    }
    // A replaced value takes whatever was below it along: forget those sources.
    forgetBelow(sources, childPointer);
    if (isPlainObject(value)) {
      const fresh: Record<string, unknown> = {};
      target[key] = fresh;
      mergeInto(fresh, value, source, childPointer, sources);
      if (Object.keys(value).length === 0) sources.set(childPointer, source);
    } else {
      target[key] = structuredClone(value);
      sources.set(childPointer, source);
    }
  }
}

function forgetBelow(sources: ConfigSources, pointer: string): void {
  sources.delete(pointer);
  const prefix = `${pointer}/`;
  for (const key of sources.keys()) if (key.startsWith(prefix)) sources.delete(key);
}

/**
 * Names where the value at `pointer` came from: its own source, else the nearest ancestor's (a value
 * inside an array), else every source below it (an object merged from several layers).
 */
export function sourceOf(sources: ConfigSources, pointer: string): string | undefined {
  const own = sources.get(pointer);
  if (own !== undefined) return own;
  for (let ancestor = parentPointer(pointer); ancestor !== undefined; ancestor = parentPointer(ancestor)) {
    const found = sources.get(ancestor);
    if (found !== undefined) return found;
  }
  const prefix = `${pointer}/`;
  const below = new Set<string>();
  for (const [key, source] of sources) if (key.startsWith(prefix)) below.add(source);
  return below.size === 0 ? undefined : [...below].join(', ');
}

function parentPointer(pointer: string): string | undefined {
  if (pointer === '') return undefined;
  const parent = pointer.slice(0, pointer.lastIndexOf('/'));
  return parent === '' ? undefined : parent;
}
