import { checkConfig, formatConfigForPrint, resolveConfig } from '../core/config.ts';
import { discoverConfiguredModules } from '../platform/discover-modules.ts';

async function moduleDescriptors(configDir: string | undefined) {
  const { definitions } = await discoverConfiguredModules(configDir === undefined ? {} : { configDir });
  return [...definitions.values()].map((definition) => ({
    name: definition.info.name,
    ...(definition.defaults === undefined ? {} : { defaults: definition.defaults }),
    schema: definition.configSchema,
  }));
}

/** `parley config check`: exit 0 when the effective config is valid, else print every problem and exit 1. */
export async function configCheck(configDir?: string): Promise<number> {
  const result = checkConfig({
    ...(configDir === undefined ? {} : { configDir }),
    modules: await moduleDescriptors(configDir),
  });
  if (result.ok) {
    process.stdout.write('config is valid\n');
    return 0;
  }
  process.stderr.write(`${result.message}\n`);
  return 1;
}

/** `parley config print [--sources]`: the effective config with secrets masked. */
export async function configPrint(configDir: string | undefined, withSources: boolean): Promise<number> {
  const { config, sources } = resolveConfig({
    ...(configDir === undefined ? {} : { configDir }),
    modules: await moduleDescriptors(configDir),
  });
  process.stdout.write(`${formatConfigForPrint(config, withSources ? { sources } : {})}\n`);
  return 0;
}
