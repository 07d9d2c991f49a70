import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isPlatformError } from '../../core/errors.ts';
import { createPlatform, type Platform } from '../../platform/create-platform.ts';
import persona from './index.ts';
import type { PersonaApi } from './types.ts';

const directories: string[] = [];
const platforms: Platform[] = [];

afterEach(async () => {
  for (const platform of platforms.splice(0)) await platform.close();
  for (const directory of directories.splice(0)) await rm(directory, { recursive: true, force: true });
});

/** A real platform (flatfile storage in a temp dir, in-process bus) running only the persona module. */
async function start(personaConfig: Record<string, unknown> = {}, dataDir?: string): Promise<Platform> {
  const directory = await mkdtemp(join(tmpdir(), 'parley-persona-'));
  directories.push(directory);
  const configDir = join(directory, 'config');
  await mkdir(join(configDir, 'modules'), { recursive: true });
  await writeFile(
    join(configDir, 'default.json'),
    JSON.stringify({ data_dir: dataDir ?? join(directory, 'data') }),
  );
  await writeFile(join(configDir, 'modules', 'persona.json'), JSON.stringify({ persona: personaConfig }));
  const platform = await createPlatform({
    configDir,
    env: {},
    nodeEnv: 'test',
    definitions: new Map([['persona', persona as never]]),
    logDestination: join(directory, 'log.jsonl'),
  });
  platforms.push(platform);
  return platform;
}

async function apiOf(platform: Platform): Promise<PersonaApi> {
  return (await platform.modules.getModule<PersonaApi>('persona'))!;
}

describe('persona module', () => {
  it('serves config personas and the default persona over the bus', async () => {
    const platform = await start({
      personas: { pirate: { name: 'Pirate', system_prompt: 'Talk like a pirate.', temperature: 1.2 } },
      default_persona: 'pirate',
    });
    const pirate = {
      id: 'pirate',
      name: 'Pirate',
      systemPrompt: 'Talk like a pirate.',
      temperature: 1.2,
      source: 'config',
    };
    expect(await platform.bus.request('persona.get', { personaId: 'pirate' })).toEqual(pirate);
    expect(await platform.bus.request('persona.get', {})).toEqual(pirate);
    expect(await platform.bus.request('persona.get', { personaId: 'nobody' })).toBeNull();
    const listed = await platform.bus.request<Array<{ id: string }>>('persona.list', {});
    expect(listed.map((p) => p.id)).toEqual(['assistant', 'pirate']);
  });

  it('stores personas in persona/{id}.json, lists and deletes them', async () => {
    const platform = await start();
    const api = await apiOf(platform);
    const stored = await api.put({
      id: 'tutor',
      name: ' Tutor ',
      systemPrompt: 'Teach step by step.',
      model: 'openai:gpt-4o-mini',
    });
    expect(stored).toEqual({
      id: 'tutor',
      name: 'Tutor',
      systemPrompt: 'Teach step by step.',
      model: 'openai:gpt-4o-mini',
      source: 'storage',
    });
    const file = join(platform.config.storage.flatfile.root, 'persona', 'tutor.json');
    expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({
      id: 'tutor',
      systemPrompt: 'Teach step by step.',
    });
    expect(await platform.bus.request('persona.get', { personaId: 'tutor' })).toEqual(stored);
    expect((await api.list()).map((p) => p.id)).toEqual(['assistant', 'tutor']);
    expect(await api.delete('tutor')).toBe(true);
    expect(await api.get('tutor')).toBeUndefined();
  });

  it('rejects invalid personas with a ValidationError naming the field', async () => {
    const api = await apiOf(await start({ max_system_prompt_length: 10 }));
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ id: '../x', name: 'X', systemPrompt: 'p' }, 'id'],
      [{ id: 'x', name: '', systemPrompt: 'p' }, 'name'],
      [{ id: 'x', name: 'X', systemPrompt: 'a prompt that is too long' }, 'systemPrompt'],
      [{ id: 'x', name: 'X', systemPrompt: 'p', temperature: 3 }, 'temperature'],
      [{ id: 'x', name: 'X', systemPrompt: 'p', model: 'gpt-4o' }, 'model'],
    ];
    for (const [input, field] of cases) {
      const error = await api.put(input as never).catch((caught: unknown) => caught);
      expect(isPlatformError(error, 'CHAT_ERR_VALIDATION_INVALID'), field).toBe(true);
      expect((error as { details: { field: string } }).details.field).toBe(field);
    }
    expect(await api.list()).toHaveLength(1);
  });

  it('keeps config personas read-only and the default persona undeletable', async () => {
    const api = await apiOf(await start());
    const replace = await api
      .put({ id: 'assistant', name: 'Mine', systemPrompt: 'p' })
      .catch((e: unknown) => e);
    expect(isPlatformError(replace, 'CHAT_ERR_VALIDATION_INVALID')).toBe(true);
    const remove = await api.delete('assistant').catch((e: unknown) => e);
    expect(isPlatformError(remove, 'CHAT_ERR_VALIDATION_INVALID')).toBe(true);
  });

  it('has no default persona when default_persona is null', async () => {
    const platform = await start({ default_persona: null });
    expect(await platform.bus.request('persona.get', {})).toBeNull();
  });

  it('refuses to start when default_persona names no persona', async () => {
    const error = await start({ default_persona: 'ghost' }).catch((caught: unknown) => caught);
    expect(isPlatformError(error, 'CHAT_ERR_CONFIG_INVALID')).toBe(true);
    expect((error as Error).message).toContain('persona.default_persona');
  });

  it('accepts a stored default persona', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'parley-persona-data-'));
    directories.push(directory);
    const first = await start({}, directory);
    await (await apiOf(first)).put({ id: 'stored', name: 'Stored', systemPrompt: 'From storage.' });
    await first.close();
    platforms.splice(platforms.indexOf(first), 1);
    const second = await start({ default_persona: 'stored' }, directory);
    expect(await second.bus.request('persona.get', {})).toMatchObject({ id: 'stored', source: 'storage' });
  });
});
