import { access, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ModuleDefinition } from '../core/module.ts';

const modulesDirectory = fileURLToPath(new URL('../modules/', import.meta.url));

/**
 * Finds every module folder under src/modules (each with an `index.ts` default-exporting
 * `defineModule(...)`). Discovered, not listed, so deleting a module's folder leaves a platform that
 * still starts (DESIGN.md §1.4).
 */
export async function discoverModules(
  directory: string = modulesDirectory,
): Promise<Map<string, ModuleDefinition<never, unknown>>> {
  const entries = await readdir(directory, { withFileTypes: true });
  const definitions = new Map<string, ModuleDefinition<never, unknown>>();
  for (const entry of entries.filter((e) => e.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
    const indexFile = join(directory, entry.name, 'index.ts');
    // A folder without index.ts (the parts of a module still being built) is not a module yet.
    if (!(await fileExists(indexFile))) continue;
    const imported = (await import(indexFile)) as { default?: ModuleDefinition<never, unknown> };
    const definition = imported.default;
    if (definition?.info?.name !== entry.name) {
      throw new Error(
        `src/modules/${entry.name}/index.ts must default-export defineModule({ info: { name: '${entry.name}' } })`,
      );
    }
    definitions.set(entry.name, definition);
  }
  return definitions;
}

async function fileExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
