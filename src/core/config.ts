/**
 * Loads parley's configuration (DESIGN.md §4 Config). Layers, highest priority first:
 *   1. env vars `CHAT_<SECTION>__<KEY>` (`__` between levels, lowercased; values parsed as JSON when they parse)
 *   2. config/environments/<NODE_ENV>.json
 *   3. config/modules/<name>.json (`{ "<name>": { ... } }`)
 *   4. config/default.json
 *   5. each module's own defaults
 * then JSON Schema defaults. Objects merge deeply; arrays and scalars replace. `${ENV_VAR}` and
 * `${ENV_VAR:-default}` in string values are replaced from the environment. The result is validated,
 * deep-frozen, and every problem found stops startup at once in one ConfigError.
 */

import { resolve } from 'node:path';
import { envLayers, envVarPointer, substituteEnvReferences } from './config-env.ts';
import { ConfigError, type ConfigProblem, configProblem, formatConfigProblems } from './config-error.ts';
import { readConfigFiles } from './config-files.ts';
import {
  type ConfigLayer,
  type ConfigSources,
  isPlainObject,
  mergeLayers,
  pointerSegment,
} from './config-merge.ts';
import {
  type ModuleConfig,
  type ModuleConfigDescriptor,
  PLATFORM_SECTIONS,
  type PlatformConfig,
} from './config-types.ts';
import { validateConfig } from './config-validate.ts';
import type { ModuleDefinition } from './module.ts';

export { ConfigError, type ConfigProblem, formatConfigProblems } from './config-error.ts';
export { maskSecrets } from './config-mask.ts';
export { type FormatConfigOptions, formatConfigForPrint } from './config-print.ts';
export { parseByteSize } from './config-size.ts';
export * from './config-types.ts';

export interface LoadConfigOptions {
  /** The config directory (default.json, modules/, environments/); defaults to `./config`. */
  configDir?: string;
  /** Where `CHAT_*` variables and `${ENV_VAR}` references are read; defaults to `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Picks environments/<nodeEnv>.json; defaults to `env.NODE_ENV`, else `development`. */
  nodeEnv?: string;
  /** The modules the platform knows: their slices get defaults and schema checks; other keys are typos. */
  modules?: readonly ModuleConfigDescriptor[];
}

/** The effective config and, for every value, the layer it came from (JSON pointer → source). */
export interface ResolvedConfig {
  config: Readonly<PlatformConfig>;
  sources: ReadonlyMap<string, string>;
  /** Things worth logging that do not stop startup (a config file for a module that is not installed). */
  warnings: string[];
}

/** What `parley config check` reports: the config when valid, else every problem and the message. */
export type ConfigCheckResult =
  | { ok: true; config: Readonly<PlatformConfig>; sources: ReadonlyMap<string, string>; warnings: string[] }
  | { ok: false; problems: readonly ConfigProblem[]; message: string };

/** Loads, merges, validates and deep-freezes the configuration; throws ConfigError listing every problem. */
export function loadConfig(options: LoadConfigOptions = {}): Readonly<PlatformConfig> {
  return resolveConfig(options).config;
}

/** Like `loadConfig`, also returning where each value came from (for `parley config print --sources`). */
export function resolveConfig(options: LoadConfigOptions = {}): ResolvedConfig {
  const env = options.env ?? process.env;
  const nodeEnv = options.nodeEnv ?? env.NODE_ENV ?? 'development';
  const configDir = resolve(options.configDir ?? 'config');
  const modules = options.modules ?? [];
  const problems: ConfigProblem[] = [];

  problems.push(...checkModuleNames(modules));
  const moduleNames = new Set(modules.map((module) => module.name));

  const layers: ConfigLayer[] = [];
  for (const module of modules) {
    const source = `defaults of module ${module.name}`;
    if (module.defaults === undefined) continue;
    if (!isPlainObject(module.defaults)) {
      problems.push(
        configProblem({
          source,
          path: '',
          rule: 'type object',
          message: 'must be an object',
          value: module.defaults,
        }),
      );
      continue;
    }
    layers.push({ source, values: { [module.name]: module.defaults } });
  }
  const files = readConfigFiles({ configDir, nodeEnv, knownModules: moduleNames });
  problems.push(...files.problems);
  layers.push(...files.layers);

  const substituted: ConfigLayer[] = [];
  for (const layer of layers) {
    const result = substituteEnvReferences(layer, env);
    problems.push(...result.problems);
    substituted.push(result.layer);
  }
  const fileLayers = substituted.map((layer) => dropUnknownKeys(layer, moduleNames, problems));

  const attempt = (keepAsText: ReadonlySet<string>) => {
    const fromEnv = envLayers(env, keepAsText);
    const attemptProblems = [...fromEnv.problems];
    const envKnown = fromEnv.layers.map((layer) => dropUnknownKeys(layer, moduleNames, attemptProblems));
    const { merged, sources } = mergeLayers([...fileLayers, ...envKnown]);
    attemptProblems.push(...validateConfig(merged, modules, sources));
    return { merged, sources, problems: attemptProblems };
  };
  let result = attempt(new Set());
  // `CHAT_REDIS_PASSWORD=12345` parses as a number; where the schema wants a string, the variable's
  // text was meant. Those variables are re-read as text and the config checked again.
  const meantAsText = envVarsWantingText(result.problems);
  if (meantAsText.size > 0) result = attempt(meantAsText);
  problems.push(...result.problems);

  if (problems.length > 0) throw new ConfigError(problems);
  const { merged, sources } = result;
  deriveDefaults(merged, sources);
  recordSchemaDefaults(merged, '', sources);
  return { config: deepFreeze(merged) as Readonly<PlatformConfig>, sources, warnings: files.warnings };
}

/**
 * The `module_dirs` setting, read before the modules are known (their definitions are needed to resolve
 * the rest of the config). Relative folders are resolved against the working directory, as `data_dir`
 * is. A malformed value is ignored here: `resolveConfig` reports it with the file and the rule.
 */
export function readModuleDirs(options: Omit<LoadConfigOptions, 'modules'> = {}): string[] {
  const env = options.env ?? process.env;
  const nodeEnv = options.nodeEnv ?? env.NODE_ENV ?? 'development';
  const configDir = resolve(options.configDir ?? 'config');
  const files = readConfigFiles({ configDir, nodeEnv, knownModules: new Set() });
  const layers = files.layers.map((layer) => substituteEnvReferences(layer, env).layer);
  const { merged } = mergeLayers([...layers, ...envLayers(env).layers]);
  const dirs = merged.module_dirs;
  if (!Array.isArray(dirs) || !dirs.every((dir) => typeof dir === 'string' && dir !== '')) return [];
  return dirs.map((dir: string) => resolve(dir));
}

/** Validates without throwing: the function behind `parley config check`. */
export function checkConfig(options: LoadConfigOptions = {}): ConfigCheckResult {
  try {
    const { config, sources, warnings } = resolveConfig(options);
    return { ok: true, config, sources, warnings };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return { ok: false, problems: error.problems, message: formatConfigProblems(error.problems) };
  }
}

/** A module's slice of the effective config, or `undefined` when the name is not a configured module. */
export function getModuleConfig(
  config: Readonly<PlatformConfig>,
  name: string,
): Readonly<ModuleConfig> | undefined {
  if ((PLATFORM_SECTIONS as readonly string[]).includes(name)) return undefined;
  const slice = config[name];
  return isPlainObject(slice) ? (slice as Readonly<ModuleConfig>) : undefined;
}

/** The descriptor `loadConfig` needs, taken from a module's definition. */
export function describeModuleConfig(definition: ModuleDefinition<never, unknown>): ModuleConfigDescriptor {
  const descriptor: ModuleConfigDescriptor = { name: definition.info.name, schema: definition.configSchema };
  if (definition.defaults !== undefined) descriptor.defaults = definition.defaults;
  return descriptor;
}

/** Freezes `value` and everything inside it. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

function envVarsWantingText(problems: readonly ConfigProblem[]): Set<string> {
  const names = new Set<string>();
  for (const problem of problems) {
    if (!problem.source.startsWith('env ') || !/\btype string\b/.test(problem.rule)) continue;
    const name = problem.source.slice('env '.length);
    // Only a variable that set exactly this value: one holding a whole JSON object stays JSON.
    if (envVarPointer(name) === problem.path) names.add(name);
  }
  return names;
}

function checkModuleNames(modules: readonly ModuleConfigDescriptor[]): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const seen = new Set<string>();
  for (const { name } of modules) {
    const source = `module ${name}`;
    if ((PLATFORM_SECTIONS as readonly string[]).includes(name)) {
      problems.push(
        configProblem({
          source,
          path: `/${name}`,
          rule: 'module name',
          message: 'is a platform section name',
        }),
      );
    } else if (seen.has(name)) {
      problems.push(
        configProblem({ source, path: `/${name}`, rule: 'module name', message: 'is declared twice' }),
      );
    }
    seen.add(name);
  }
  return problems;
}

// A top-level key that is neither a platform section nor a known module is almost always a typo
// (`text_caht`) or a module that is not installed; silently ignoring it would hide the mistake.
function dropUnknownKeys(
  layer: ConfigLayer,
  moduleNames: ReadonlySet<string>,
  problems: ConfigProblem[],
): ConfigLayer {
  const values: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(layer.values)) {
    if ((PLATFORM_SECTIONS as readonly string[]).includes(key) || moduleNames.has(key)) {
      values[key] = value;
      continue;
    }
    const candidates = [...PLATFORM_SECTIONS, ...moduleNames];
    const suggestion = closest(key, candidates);
    const known = moduleNames.size > 0 ? [...moduleNames].join(', ') : 'none';
    problems.push(
      configProblem({
        source: layer.source,
        path: `/${pointerSegment(key)}`,
        rule: 'known top-level key',
        message:
          `"${key}" is neither a platform section (${PLATFORM_SECTIONS.join(', ')}) nor a known module (${known})` +
          (suggestion === undefined ? '' : `; did you mean "${suggestion}"?`),
        value,
      }),
    );
  }
  return { source: layer.source, values };
}

// storage.flatfile.root follows data_dir unless set: one knob moves all of parley's files.
function deriveDefaults(merged: Record<string, unknown>, sources: ConfigSources): void {
  const storage = merged.storage as Record<string, unknown>;
  const flatfile = storage.flatfile as Record<string, unknown>;
  if (flatfile.root === undefined) {
    flatfile.root = merged.data_dir;
    sources.set('/storage/flatfile/root', `data_dir (${sources.get('/data_dir') ?? 'schema default'})`);
  }
}

// Values no layer set came from a schema default: say so, so `config print --sources` covers every line.
function recordSchemaDefaults(value: unknown, pointer: string, sources: ConfigSources): void {
  if (isPlainObject(value) && Object.keys(value).length > 0) {
    for (const [key, child] of Object.entries(value)) {
      recordSchemaDefaults(child, `${pointer}/${pointerSegment(key)}`, sources);
    }
  } else if (pointer !== '' && !sources.has(pointer)) {
    sources.set(pointer, 'schema default');
  }
}

function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}
