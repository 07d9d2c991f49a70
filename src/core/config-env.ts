/**
 * The environment's part in configuration: `CHAT_*` variables as the highest layer, and `${ENV_VAR}`
 * references inside config values (how secrets stay out of files).
 */

import { type ConfigProblem, configProblem } from './config-error.ts';
import { type ConfigLayer, isPlainObject, pointerSegment } from './config-merge.ts';

/** The prefix of config env vars: `CHAT_SERVER__PORT=8080` sets `server.port`. */
export const ENV_PREFIX = 'CHAT_';
const LEVEL_SEPARATOR = '__';

/**
 * One layer per `CHAT_*` variable (so each value can be traced to its variable), in name order: a
 * variable for an object (`CHAT_SERVER='{"port":1}'`) comes before the ones for its keys, which win.
 * Variables named in `keepAsText` are taken as plain strings, not parsed as JSON.
 */
export function envLayers(
  env: Readonly<Record<string, string | undefined>>,
  keepAsText: ReadonlySet<string> = new Set(),
): {
  layers: ConfigLayer[];
  problems: ConfigProblem[];
} {
  const layers: ConfigLayer[] = [];
  const problems: ConfigProblem[] = [];
  const names = Object.keys(env)
    .filter((name) => name.startsWith(ENV_PREFIX))
    .sort();
  for (const name of names) {
    const raw = env[name];
    if (raw === undefined) continue;
    const source = `env ${name}`;
    const levels = name
      .slice(ENV_PREFIX.length)
      .split(LEVEL_SEPARATOR)
      .map((level) => level.toLowerCase());
    if (levels.some((level) => level === '')) {
      problems.push(
        configProblem({
          source,
          path: '',
          rule: 'env var name',
          message: `a config env var is CHAT_ then levels separated by "__" (CHAT_SERVER__PORT); "${name}" has an empty level`,
        }),
      );
      continue;
    }
    layers.push({ source, values: nest(levels, keepAsText.has(name) ? raw : parseEnvValue(raw)) });
  }
  return { layers, problems };
}

/** The JSON pointer a config env var sets: `CHAT_SERVER__PORT` → `/server/port`. */
export function envVarPointer(name: string): string {
  const levels = name.slice(ENV_PREFIX.length).split(LEVEL_SEPARATOR);
  return levels.map((level) => `/${pointerSegment(level.toLowerCase())}`).join('');
}

/** An env var's value as JSON when it parses (numbers, booleans, arrays, objects), else the string. */
export function parseEnvValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function nest(levels: string[], value: unknown): Record<string, unknown> {
  let nested: unknown = value;
  for (let index = levels.length - 1; index >= 0; index--) nested = { [levels[index]!]: nested };
  return nested as Record<string, unknown>;
}

// `${NAME}`, `${NAME:-default}`; `$${...}` is a literal `${...}`.
const REFERENCE = /\$(\$?)\{([^}]*)\}/g;
const REFERENCE_BODY = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s;

/**
 * Replaces `${NAME}` / `${NAME:-default}` in every string of `values` (a copy is returned). `:-` takes
 * the default when the variable is unset or empty, as in the shell. An unset variable without a default
 * is a problem naming the layer and path.
 */
export function substituteEnvReferences(
  layer: ConfigLayer,
  env: Readonly<Record<string, string | undefined>>,
): { layer: ConfigLayer; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];

  function substituteString(text: string, pointer: string): string {
    return text.replace(REFERENCE, (whole, escaped: string, body: string) => {
      if (escaped !== '') return whole.slice(1);
      const match = REFERENCE_BODY.exec(body);
      if (match === null) {
        problems.push(
          configProblem({
            source: layer.source,
            path: pointer,
            rule: 'env reference',
            message: `"\${${body}}" is not a valid reference: use \${NAME} or \${NAME:-default}`,
            value: text,
          }),
        );
        return whole;
      }
      const [, name, fallback] = match as unknown as [string, string, string | undefined];
      const value = env[name];
      if (fallback !== undefined && (value === undefined || value === '')) return fallback;
      if (value !== undefined) return value;
      problems.push(
        configProblem({
          code: 'CHAT_ERR_CONFIG_MISSING_ENV',
          source: layer.source,
          path: pointer,
          rule: 'env reference',
          message: `environment variable ${name} is not set (write \${${name}:-default} to give a default)`,
          value: text,
        }),
      );
      return whole;
    });
  }

  function walk(value: unknown, pointer: string): unknown {
    if (typeof value === 'string') return substituteString(value, pointer);
    if (Array.isArray(value)) return value.map((item, index) => walk(item, `${pointer}/${index}`));
    if (isPlainObject(value)) {
      const copy: Record<string, unknown> = {};
      for (const [key, child] of Object.entries(value))
        copy[key] = walk(child, `${pointer}/${pointerSegment(key)}`);
      return copy;
    }
    return value;
  }

  const values = walk(layer.values, '') as Record<string, unknown>;
  return { layer: { source: layer.source, values }, problems };
}
