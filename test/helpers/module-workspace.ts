/**
 * A product's folder beside parley, as a module author has it: `modules/<name>/index.ts` files and parley
 * installed as a dependency (node_modules/parley, a link to this checkout, as `npm link` or a `file:`
 * dependency makes it), so modules import `defineModule` from 'parley/module' as the guide says.
 */

import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

const repositoryRoot = resolve(import.meta.dirname, '../..');

export interface ModuleWorkspace {
  root: string;
  /** The folder to name in `module_dirs`. */
  modulesDir: string;
  dataDir: string;
  /** Writes `modules/<path>` (e.g. `echo/index.ts`). */
  write(path: string, source: string): Promise<void>;
  remove(): Promise<void>;
}

/** Creates an empty workspace in a temp folder. */
export async function createModuleWorkspace(): Promise<ModuleWorkspace> {
  const root = await mkdtemp(join(tmpdir(), 'parley-modules-'));
  await mkdir(join(root, 'node_modules'));
  await symlink(repositoryRoot, join(root, 'node_modules', 'parley'), 'dir');
  const modulesDir = join(root, 'modules');
  await mkdir(modulesDir);
  return {
    root,
    modulesDir,
    dataDir: join(root, 'data'),
    async write(path, source) {
      const file = join(modulesDir, path);
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, source);
    },
    remove: () => rm(root, { recursive: true, force: true }),
  };
}

/** The env of a platform on the shipped config/, with its files and modules in `workspace`. */
export function workspaceEnv(
  workspace: ModuleWorkspace,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    CHAT_DATA_DIR: workspace.dataDir,
    CHAT_MODULE_DIRS: JSON.stringify([workspace.modulesDir]),
    CHAT_LOGGING__LEVEL: 'silent',
    ...extra,
  };
}
