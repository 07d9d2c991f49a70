import { PlatformError, ValidationError } from '../../core/errors.ts';
import type { ModuleStorage } from '../../core/module.ts';
import { readJson, writeJson } from '../../storage/json.ts';
import type { Persona, PersonaConfig, PersonaInput } from './types.ts';

/** Persona ids double as file names, so they are kept to a safe, readable alphabet. */
export const PERSONA_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const MODEL_NAME_PATTERN = /^[^:\s]+:\S+$/;
const MAX_NAME_LENGTH = 100;

const personaKey = (id: string) => `${id}.json`;

/** The personas of config, as `Persona` objects (read-only ones). */
export function configPersonas(config: Readonly<PersonaConfig>): Map<string, Persona> {
  const personas = new Map<string, Persona>();
  for (const [id, entry] of Object.entries(config.personas ?? {})) {
    const persona: Persona = { id, name: entry.name, systemPrompt: entry.system_prompt, source: 'config' };
    if (entry.model !== undefined) persona.model = entry.model;
    if (entry.temperature !== undefined) persona.temperature = entry.temperature;
    personas.set(id, persona);
  }
  return personas;
}

/** Checks what `put` was given and returns the persona to store; throws ValidationError naming the field. */
export function validatePersona(input: unknown, maxSystemPromptLength: number): Persona {
  if (typeof input !== 'object' || input === null) throw new ValidationError('a persona must be an object');
  const { id, name, systemPrompt, model, temperature } = input as Record<string, unknown>;
  if (typeof id !== 'string' || !PERSONA_ID_PATTERN.test(id)) {
    throw new ValidationError(
      'persona id must be 1–64 lowercase letters, digits, "_" or "-", starting with a letter or digit',
      { details: { field: 'id', value: id } },
    );
  }
  if (typeof name !== 'string' || name.trim() === '' || name.length > MAX_NAME_LENGTH) {
    throw new ValidationError(
      `persona name must be a non-empty string of at most ${MAX_NAME_LENGTH} characters`,
      {
        details: { field: 'name' },
      },
    );
  }
  if (typeof systemPrompt !== 'string' || systemPrompt.trim() === '') {
    throw new ValidationError('persona systemPrompt must be a non-empty string', {
      details: { field: 'systemPrompt' },
    });
  }
  if (systemPrompt.length > maxSystemPromptLength) {
    throw new ValidationError(
      `persona systemPrompt is ${systemPrompt.length} characters; the limit is ${maxSystemPromptLength} (persona.max_system_prompt_length)`,
      { details: { field: 'systemPrompt', length: systemPrompt.length, limit: maxSystemPromptLength } },
    );
  }
  const persona: Persona = { id, name: name.trim(), systemPrompt, source: 'storage' };
  if (model !== undefined) {
    if (typeof model !== 'string' || !MODEL_NAME_PATTERN.test(model)) {
      throw new ValidationError('persona model must be "provider:model", for example "openai:gpt-4o-mini"', {
        details: { field: 'model', value: model },
      });
    }
    persona.model = model;
  }
  if (temperature !== undefined) {
    if (
      typeof temperature !== 'number' ||
      !Number.isFinite(temperature) ||
      temperature < 0 ||
      temperature > 2
    ) {
      throw new ValidationError('persona temperature must be a number from 0 to 2', {
        details: { field: 'temperature', value: temperature },
      });
    }
    persona.temperature = temperature;
  }
  return persona;
}

/** The persona stored under `id`, or `undefined`. */
export async function readStoredPersona(storage: ModuleStorage, id: string): Promise<Persona | undefined> {
  if (!PERSONA_ID_PATTERN.test(id)) return undefined;
  const stored = await readJson<PersonaInput>(storage, personaKey(id));
  return stored === undefined ? undefined : { ...stored, source: 'storage' };
}

/** Every stored persona, by id. */
export async function readStoredPersonas(storage: ModuleStorage): Promise<Persona[]> {
  const ids = (await storage.list(''))
    .filter((key) => key.endsWith('.json') && !key.includes('/'))
    .map((key) => key.slice(0, -'.json'.length));
  const personas = await Promise.all(ids.map((id) => readStoredPersona(storage, id)));
  return personas.filter((persona): persona is Persona => persona !== undefined);
}

/** Stores a validated persona, refusing the ids config owns. */
export async function writeStoredPersona(
  storage: ModuleStorage,
  persona: Persona,
  configIds: ReadonlySet<string>,
): Promise<Persona> {
  if (configIds.has(persona.id)) {
    throw new ValidationError(
      `persona "${persona.id}" is defined in config (persona.personas) and cannot be replaced through the api`,
      { details: { field: 'id', value: persona.id } },
    );
  }
  const { source: _source, ...stored } = persona;
  await writeJson(storage, personaKey(persona.id), stored);
  return persona;
}

/** Removes a stored persona; config ones cannot be removed. */
export async function deleteStoredPersona(
  storage: ModuleStorage,
  id: string,
  configIds: ReadonlySet<string>,
): Promise<boolean> {
  if (configIds.has(id)) {
    throw new ValidationError(
      `persona "${id}" is defined in config (persona.personas) and cannot be deleted`,
      {
        details: { field: 'id', value: id },
      },
    );
  }
  if (!PERSONA_ID_PATTERN.test(id)) return false;
  return storage.delete(personaKey(id));
}

/** Startup check: a configured default persona must exist, or every session would silently lose it. */
export async function assertDefaultPersonaExists(
  storage: ModuleStorage,
  defaultId: string | undefined,
  configIds: ReadonlySet<string>,
): Promise<void> {
  if (defaultId === undefined || configIds.has(defaultId)) return;
  if ((await readStoredPersona(storage, defaultId)) !== undefined) return;
  throw new PlatformError(
    'CHAT_ERR_CONFIG_INVALID',
    `persona.default_persona is "${defaultId}", but no persona has that id (define it under persona.personas)`,
    { details: { path: 'persona.default_persona', value: defaultId } },
  );
}
