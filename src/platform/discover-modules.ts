import { access, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type LoadConfigOptions, readModuleDirs } from '../core/config.ts';
import { displayPath } from '../core/config-files.ts';
import { PlatformError } from '../core/errors.ts';
import type { ModuleDefinition } from '../core/module.ts';

const modulesDirectory = fileURLToPath(new URL('../modules/', import.meta.url));

/** The files a module folder of `module_dirs` may start from, in the order they are looked for. */
const EXTERNAL_INDEX_FILES = ['index.ts', 'index.js', 'index.mjs'];

/** A module name is its config key, event namespace and storage root: lowercase, digits and `_`. */
const MODULE_NAME = /^[a-z][a-z0-9_]*$/;

/** The modules the platform offers, and the file each was imported from (a worker imports it again). */
export interface DiscoveredModules {
  definitions: Map<string, ModuleDefinition<never, unknown>>;
  files: Map<string, string>;
}

export interface DiscoverModulesOptions {
  /** The built-in modules' folder; default src/modules. */
  builtInDirectory?: string;
  /** Folders of the user's own modules (`module_dirs`, already resolved). */
  moduleDirs?: readonly string[];
}

/**
 * Finds every module folder under src/modules (each with an `index.ts` default-exporting
 * `defineModule(...)`), then under each of `module_dirs` (`index.ts`, `.js` or `.mjs`). Discovered, not
 * listed, so deleting a module's folder leaves a platform that still starts (DESIGN.md §1.4). A folder
 * whose export is not a module named after it, or whose name another module has, stops startup.
 */
export async function discoverModules(options: DiscoverModulesOptions = {}): Promise<DiscoveredModules> {
  const found: DiscoveredModules = { definitions: new Map(), files: new Map() };
  await addModulesIn(found, options.builtInDirectory ?? modulesDirectory, ['index.ts'], 'built-in');
  for (const directory of options.moduleDirs ?? []) {
    await addModulesIn(found, directory, EXTERNAL_INDEX_FILES, 'module_dirs');
  }
  return found;
}

/** The built-in modules and those of the `module_dirs` the config in `configDir` (and env) names. */
export function discoverConfiguredModules(
  options: Omit<LoadConfigOptions, 'modules'> = {},
): Promise<DiscoveredModules> {
  return discoverModules({ moduleDirs: readModuleDirs(options) });
}

async function addModulesIn(
  found: DiscoveredModules,
  directory: string,
  indexFiles: readonly string[],
  origin: 'built-in' | 'module_dirs',
): Promise<void> {
  if (origin === 'module_dirs' && !(await isDirectory(directory))) {
    throw invalid(`module_dirs names "${displayPath(directory)}", which is not a folder`, { directory });
  }
  const entries = await readdir(directory, { withFileTypes: true });
  const folders = entries
    .filter((entry) => entry.isDirectory() && !entry.name.startsWith('.') && entry.name !== 'node_modules')
    .map((entry) => entry.name)
    .sort((a, b) => a.localeCompare(b));
  for (const folder of folders) {
    const indexFile = await firstExisting(indexFiles.map((file) => join(directory, folder, file)));
    // A folder without an index file (the parts of a module still being built, shared helpers) is not a module.
    if (indexFile === undefined) continue;
    const shown = displayPath(indexFile);
    if (origin === 'module_dirs' && !MODULE_NAME.test(folder)) {
      throw invalid(
        `${shown}: a module folder is named like a config key (lowercase letters, digits and "_", starting with a letter); "${folder}" is not`,
        { file: indexFile },
      );
    }
    const existing = found.files.get(folder);
    if (existing !== undefined) {
      throw invalid(
        `${shown}: a module named "${folder}" is already loaded from ${displayPath(existing)}; rename the folder and its info.name`,
        { file: indexFile, clashesWith: existing },
      );
    }
    const definition = await importDefinition(indexFile);
    const problem = definitionProblem(definition, folder);
    if (problem !== undefined) {
      throw invalid(
        `${shown} must default-export defineModule({ info: { name: '${folder}', … }, … }): ${problem}`,
        {
          file: indexFile,
        },
      );
    }
    found.definitions.set(folder, definition as ModuleDefinition<never, unknown>);
    found.files.set(folder, indexFile);
  }
}

async function importDefinition(file: string): Promise<unknown> {
  try {
    return ((await import(pathToFileURL(file).href)) as { default?: unknown }).default;
  } catch (error) {
    throw invalid(`${displayPath(file)} could not be imported: ${(error as Error).message}`, { file }, error);
  }
}

/** What is wrong with a default export that should be a module named `folder`, if anything. */
function definitionProblem(definition: unknown, folder: string): string | undefined {
  if (definition === undefined) return 'it has no default export';
  const candidate = definition as Partial<ModuleDefinition<never, unknown>>;
  if (typeof candidate !== 'object' || candidate === null)
    return `its default export is a ${typeof definition}`;
  const info = candidate.info;
  if (typeof info !== 'object' || info === null) return 'its default export has no "info"';
  if (info.name !== folder)
    return `info.name is ${JSON.stringify(info.name)}, not the folder's name "${folder}"`;
  if (typeof info.version !== 'string') return 'info.version is not a string';
  if (!Array.isArray(info.capabilities)) return 'info.capabilities is not an array';
  if (!Array.isArray(info.dependencies)) return 'info.dependencies is not an array';
  if (typeof candidate.configSchema !== 'object' || candidate.configSchema === null)
    return 'configSchema is not an object';
  if (typeof candidate.setup !== 'function') return 'setup is not a function';
  return undefined;
}

function invalid(message: string, details: Record<string, unknown>, cause?: unknown): PlatformError {
  return new PlatformError('CHAT_ERR_MODULE_INVALID', message, {
    details,
    ...(cause === undefined ? {} : { cause }),
  });
}

async function firstExisting(files: readonly string[]): Promise<string | undefined> {
  for (const file of files) {
    try {
      await access(file);
      return file;
    } catch {}
  }
  return undefined;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
