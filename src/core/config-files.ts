/**
 * Reads the file layers of the configuration directory: `default.json`, `modules/<name>.json` and
 * `environments/<NODE_ENV>.json`. A missing file is simply an absent layer; a file that exists but cannot
 * be read or parsed is a problem naming the file (with line and column for bad JSON).
 */

import { readdirSync, readFileSync } from 'node:fs';
import { basename, isAbsolute, join, relative } from 'node:path';
import { type ConfigProblem, configProblem } from './config-error.ts';
import { type ConfigLayer, isPlainObject } from './config-merge.ts';

export interface ReadConfigFilesOptions {
  configDir: string;
  nodeEnv: string;
  /**
   * The installed modules. A `modules/<name>.json` of a module that is not installed is skipped with a
   * warning, so deleting a module's folder leaves a platform that still starts (DESIGN.md §1.4).
   */
  knownModules: ReadonlySet<string>;
}

/** The file layers, lowest priority first: default.json, modules/*.json (by name), environments/<env>.json. */
export function readConfigFiles(options: ReadConfigFilesOptions): {
  layers: ConfigLayer[];
  problems: ConfigProblem[];
  warnings: string[];
} {
  const layers: ConfigLayer[] = [];
  const problems: ConfigProblem[] = [];
  const warnings: string[] = [];
  const add = (result: FileResult | undefined): void => {
    if (result === undefined) return;
    if ('problem' in result) problems.push(result.problem);
    else layers.push(result.layer);
  };

  add(readJsonObject(join(options.configDir, 'default.json')));

  for (const file of listJsonFiles(join(options.configDir, 'modules'), problems)) {
    if (!options.knownModules.has(basename(file, '.json'))) {
      warnings.push(
        `${displayPath(file)} configures module "${basename(file, '.json')}", which is not installed: skipped`,
      );
      continue;
    }
    const result = readJsonObject(file);
    add(result === undefined || 'problem' in result ? result : checkModuleFile(result.layer, file));
  }

  if (/^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/.test(options.nodeEnv)) {
    add(readJsonObject(join(options.configDir, 'environments', `${options.nodeEnv}.json`)));
  } else {
    problems.push(
      configProblem({
        source: 'NODE_ENV',
        path: '',
        rule: 'environment name',
        message: 'NODE_ENV must be a plain name (letters, digits, "_", "-", "."), as it names a file',
        value: options.nodeEnv,
      }),
    );
  }
  return { layers, problems, warnings };
}

/** A path as messages show it: relative to the working directory when it is inside it. */
export function displayPath(file: string): string {
  const fromHere = relative(process.cwd(), file);
  return fromHere !== '' && !fromHere.startsWith('..') && !isAbsolute(fromHere) ? fromHere : file;
}

type FileResult = { layer: ConfigLayer } | { problem: ConfigProblem };

function readJsonObject(file: string): FileResult | undefined {
  const source = displayPath(file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return { problem: unreadable(source, 'read', `cannot read the file: ${(error as Error).message}`) };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return { problem: unreadable(source, 'json syntax', describeJsonError(error as Error, text)) };
  }
  if (!isPlainObject(parsed)) {
    return {
      problem: configProblem({
        source,
        path: '',
        rule: 'type object',
        message: 'a config file must contain one JSON object',
        value: parsed,
      }),
    };
  }
  // Editors like a "$schema" key for completion; it is not configuration.
  const { $schema: _ignored, ...values } = parsed;
  return { layer: { source, values } };
}

// config/modules/<name>.json holds { "<name>": { ... } } (the seed's form): anything else is a mistake
// that would silently configure the wrong thing.
function checkModuleFile(layer: ConfigLayer, file: string): FileResult {
  const name = basename(file, '.json');
  const keys = Object.keys(layer.values);
  if (keys.length === 1 && keys[0] === name) return { layer };
  return {
    problem: configProblem({
      source: layer.source,
      path: '',
      rule: 'module file shape',
      message:
        keys.length === 0
          ? `a module file holds { "${name}": { ... } }, this one is empty`
          : `a module file holds { "${name}": { ... } } (its top-level key is its file name), found ${keys
              .map((key) => `"${key}"`)
              .join(', ')}`,
      value: keys,
    }),
  };
}

function listJsonFiles(directory: string, problems: ConfigProblem[]): string[] {
  try {
    return readdirSync(directory, { withFileTypes: true })
      .filter((entry) => entry.isFile() && entry.name.endsWith('.json'))
      .map((entry) => join(directory, entry.name))
      .sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    problems.push(
      unreadable(displayPath(directory), 'read', `cannot list the directory: ${(error as Error).message}`),
    );
    return [];
  }
}

function unreadable(source: string, rule: string, message: string): ConfigProblem {
  return configProblem({ code: 'CHAT_ERR_CONFIG_UNREADABLE', source, path: '', rule, message });
}

// V8 says "... at position 42 (line 3 column 5)" in recent versions; add the line and column when not.
function describeJsonError(error: Error, text: string): string {
  const message = `invalid JSON: ${error.message}`;
  if (/line \d+ column \d+/.test(message)) return message;
  const position = /at position (\d+)/.exec(message);
  if (position === null) return message;
  const before = text.slice(0, Number(position[1]));
  const line = before.split('\n').length;
  const column = before.length - before.lastIndexOf('\n');
  return `${message} (line ${line} column ${column})`;
}
