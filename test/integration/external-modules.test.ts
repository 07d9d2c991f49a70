/**
 * Your own modules: folders named in `module_dirs` are loaded like src/modules — config slice, capability
 * grants and storage scope included — and a folder that is not a proper module stops startup, saying why.
 */

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isPlatformError } from '../../src/core/errors.ts';
import { createPlatform, type Platform } from '../../src/platform/create-platform.ts';
import { discoverModules } from '../../src/platform/discover-modules.ts';
import { createModuleWorkspace, type ModuleWorkspace, workspaceEnv } from '../helpers/module-workspace.ts';

const GREETER = `
import { defineModule, isAccessDenied } from 'parley/module';

export default defineModule<{ greeting: string }>({
  info: { name: 'greeter', version: '1.0.0', capabilities: ['access_user_data'], dependencies: [] },
  configSchema: {
    type: 'object',
    properties: { greeting: { type: 'string', default: 'hello' } },
  },
  handles: ['greeter.greet'],
  setup(ctx) {
    return {
      handlers: {
        'greeter.greet': async (event: { data: { name: string } }) => {
          const text = \`\${ctx.config.greeting}, \${event.data.name}\`;
          await ctx.storage.write('last.txt', new TextEncoder().encode(text));
          const status = await ctx
            .emit('user.status_changed', { userId: 'u1', status: 'online' })
            .then(() => 'emitted', (error: unknown) => (isAccessDenied(error) ? 'denied' : String(error)));
          return { text, status };
        },
      },
    };
  },
});
`;

describe('modules from module_dirs', () => {
  let workspace: ModuleWorkspace;
  let platform: Platform | undefined;

  beforeEach(async () => {
    workspace = await createModuleWorkspace();
  });
  afterEach(async () => {
    await platform?.close();
    platform = undefined;
    await workspace.remove();
  });

  it('loads a module from a folder outside src/ with its config slice, grants, scoped storage and lazy loading', async () => {
    await workspace.write('greeter/index.ts', GREETER);
    const grants = JSON.stringify(['memory', 'persona', 'presence', 'notifications', 'greeter']);
    platform = await createPlatform({
      env: workspaceEnv(workspace, {
        CHAT_GREETER__GREETING: 'hi',
        CHAT_GREETER__LAZY: 'true',
        CHAT_SECURITY__CAPABILITIES__ACCESS_USER_DATA: grants,
      }),
    });
    expect(platform.modules.list().find((module) => module.name === 'greeter')).toMatchObject({
      lazy: true,
      ready: false,
    });

    const reply = await platform.bus.request('greeter.greet', { name: 'Ada' });

    expect(reply).toEqual({ text: 'hi, Ada', status: 'emitted' });
    expect(await readFile(join(workspace.dataDir, 'greeter', 'last.txt'), 'utf8')).toBe('hi, Ada');
  });

  it('denies what the config does not grant, as for a built-in module', async () => {
    await workspace.write('greeter/index.ts', GREETER);
    platform = await createPlatform({ env: workspaceEnv(workspace) });
    expect(await platform.bus.request('greeter.greet', { name: 'Ada' })).toEqual({
      text: 'hello, Ada',
      status: 'denied',
    });
  });

  it('accepts plain JavaScript modules (index.mjs)', async () => {
    await workspace.write(
      'counter/index.mjs',
      `export default {
        info: { name: 'counter', version: '0.1.0', capabilities: [], dependencies: [] },
        configSchema: {},
        setup: () => ({ handlers: { 'counter.next': (event) => event.data.n + 1 } }),
      };`,
    );
    const found = await discoverModules({ moduleDirs: [workspace.modulesDir] });
    expect(found.files.get('counter')).toBe(join(workspace.modulesDir, 'counter', 'index.mjs'));
    expect(found.definitions.get('counter')?.info.version).toBe('0.1.0');
  });

  it('refuses a module whose name a built-in module has', async () => {
    await workspace.write('presence/index.ts', GREETER.replaceAll("'greeter", "'presence"));
    const error = await discoverModules({ moduleDirs: [workspace.modulesDir] }).catch((e: unknown) => e);
    expect(isPlatformError(error, 'CHAT_ERR_MODULE_INVALID')).toBe(true);
    expect((error as Error).message).toMatch(
      /presence\/index\.ts: a module named "presence" is already loaded from .*src\/modules\/presence\/index\.ts/,
    );
  });

  it('refuses a folder whose index has no default export', async () => {
    await workspace.write('helper/index.ts', 'export const defineNothing = 1;\n');
    await expect(discoverModules({ moduleDirs: [workspace.modulesDir] })).rejects.toThrow(
      /helper\/index\.ts must default-export defineModule\(\{ info: \{ name: 'helper'.*it has no default export/,
    );
  });

  it('refuses a module whose info.name is not its folder name', async () => {
    await workspace.write('greeting/index.ts', GREETER);
    await expect(discoverModules({ moduleDirs: [workspace.modulesDir] })).rejects.toThrow(
      /info\.name is "greeter", not the folder's name "greeting"/,
    );
  });

  it('stops startup when module_dirs names a folder that does not exist', async () => {
    const missing = join(workspace.root, 'nowhere');
    const error = await createPlatform({
      env: { ...workspaceEnv(workspace), CHAT_MODULE_DIRS: JSON.stringify([missing]) },
    }).catch((e: unknown) => e);
    expect(isPlatformError(error, 'CHAT_ERR_MODULE_INVALID')).toBe(true);
    expect((error as Error).message).toContain(`module_dirs names "${missing}", which is not a folder`);
  });
});
