import { ValidationError } from '../../core/errors.ts';
import type { EventEnvelope } from '../../core/events.ts';
import { defineModule } from '../../core/module.ts';
import defaults from './config.json' with { type: 'json' };
import configSchema from './config.schema.json' with { type: 'json' };
import {
  assertDefaultPersonaExists,
  configPersonas,
  deleteStoredPersona,
  readStoredPersona,
  readStoredPersonas,
  validatePersona,
  writeStoredPersona,
} from './personas.ts';
import type { Persona, PersonaApi, PersonaConfig, PersonaGetRequest } from './types.ts';

/**
 * Personas: a name, a system prompt and model settings, from config (read-only) or storage
 * (`persona/{id}.json`, managed through the api). text_chat asks for a session's persona each turn over the
 * bus (`persona.get`), so an edited persona applies from the next turn on.
 */
export default defineModule<PersonaConfig, PersonaApi>({
  info: {
    name: 'persona',
    version: '1.0.0',
    // Personas are platform-wide settings, not user data: the module needs no capability.
    capabilities: [],
    dependencies: [],
  },
  configSchema,
  defaults,
  handles: ['persona.get', 'persona.list'],
  async setup(ctx) {
    const fromConfig = configPersonas(ctx.config);
    const configIds = new Set(fromConfig.keys());
    const defaultId =
      ctx.config.default_persona === null || ctx.config.default_persona === ''
        ? undefined
        : ctx.config.default_persona;
    await assertDefaultPersonaExists(ctx.storage, defaultId, configIds);

    const api: PersonaApi = {
      async get(id) {
        const wanted = id ?? defaultId;
        if (wanted === undefined) return undefined;
        return fromConfig.get(wanted) ?? readStoredPersona(ctx.storage, wanted);
      },
      async list() {
        const stored = (await readStoredPersonas(ctx.storage)).filter(
          (persona) => !configIds.has(persona.id),
        );
        return [...fromConfig.values(), ...stored].sort((a, b) => a.id.localeCompare(b.id));
      },
      async put(input) {
        const persona = validatePersona(input, ctx.config.max_system_prompt_length);
        await writeStoredPersona(ctx.storage, persona, configIds);
        ctx.log.info({ personaId: persona.id }, 'persona stored');
        return persona;
      },
      async delete(id) {
        if (id === defaultId) {
          throw new ValidationError(`persona "${id}" is the default persona (persona.default_persona)`, {
            details: { field: 'id', value: id },
          });
        }
        return deleteStoredPersona(ctx.storage, id, configIds);
      },
    };

    return {
      api,
      handlers: {
        // null, not undefined, for "no such persona": a reply must survive JSON on a networked bus.
        'persona.get': async (event: EventEnvelope<PersonaGetRequest>): Promise<Persona | null> => {
          const personaId = event.data?.personaId;
          if (personaId !== undefined && typeof personaId !== 'string') {
            throw new ValidationError('persona.get: personaId must be a string', {
              details: { field: 'personaId' },
            });
          }
          return (await api.get(personaId)) ?? null;
        },
        'persona.list': () => api.list(),
      },
      health: () => ({ healthy: true }),
    };
  },
});
