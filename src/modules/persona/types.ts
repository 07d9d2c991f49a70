/** A persona as the platform uses it: a name, the system prompt put before each turn, model settings. */
export interface Persona {
  /** Lowercase letters, digits, `_` and `-`; the key in config and the storage file name. */
  id: string;
  name: string;
  /** The system prompt of every turn of a session that uses the persona. */
  systemPrompt: string;
  /** "provider:model" the persona prefers; a session's or request's own model wins over it. */
  model?: string;
  /** Sampling temperature (0–2); a request's own temperature wins over it. */
  temperature?: number;
  /** `config` personas are read-only (edit the config); `storage` ones are managed through the api. */
  source: 'config' | 'storage';
}

/** What `put` takes: a persona without its source. */
export type PersonaInput = Omit<Persona, 'source'>;

/** One persona as config declares it (`persona.personas.<id>`), in the config's snake_case. */
export interface PersonaConfigEntry {
  name: string;
  system_prompt: string;
  model?: string;
  temperature?: number;
}

export interface PersonaConfig {
  /** Personas defined by the operator, by id. */
  personas: Record<string, PersonaConfigEntry>;
  /** The persona of sessions that choose none; unset, null or `""` means no system prompt. */
  default_persona?: string | null;
  /** Longest system prompt `put` accepts, in characters. */
  max_system_prompt_length: number;
}

/** What other modules and the server get from `ctx.getModule('persona')`. */
export interface PersonaApi {
  /** The persona `id`, or the default persona when `id` is undefined; `undefined` when there is none. */
  get(id?: string): Promise<Persona | undefined>;
  /** Every persona (config ones first, then stored ones), by id. */
  list(): Promise<Persona[]>;
  /** Validates and stores a persona (`persona/{id}.json`); config personas cannot be replaced. */
  put(input: PersonaInput): Promise<Persona>;
  /** Removes a stored persona; `false` when there was none. Config personas cannot be removed. */
  delete(id: string): Promise<boolean>;
}

/** `persona.get` request: the persona, or the default one when `personaId` is absent. Reply: Persona | null. */
export interface PersonaGetRequest {
  personaId?: string;
}

declare module '../../core/events.ts' {
  interface EventMap {
    'persona.get': PersonaGetRequest;
    'persona.list': Record<string, never>;
  }
}
