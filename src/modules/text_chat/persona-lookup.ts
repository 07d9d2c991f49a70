import type { ModuleContext } from '../../core/module.ts';
import type { PersonaReply, TextChatConfig } from './types.ts';

/**
 * The persona of a turn: the session's, or the default one when it names none; undefined for none. Given
 * at once (not as a promise) when it is known without asking: an await costs a turn even when there is
 * nothing to wait for.
 */
export type PersonaLookup = (
  personaId: string | undefined,
) => PersonaReply | undefined | Promise<PersonaReply | undefined>;

/**
 * Asks the persona module (`persona.get`) for a turn's persona. A persona from config (`source: 'config'`)
 * cannot change while the node runs — editing one means editing the config and restarting, and a stored
 * persona can never take a config persona's id — so its reply is kept for the node's life and later turns
 * skip the bus request (one of the few a turn makes). A stored persona is asked for on every turn, so an
 * edit applies from the next turn on. No persona module: none.
 */
export function createPersonaLookup(ctx: ModuleContext<TextChatConfig>): PersonaLookup {
  // Requested id ('' for the default persona) → a config persona's reply.
  const fixed = new Map<string, PersonaReply>();

  async function ask(personaId: string | undefined): Promise<PersonaReply | undefined> {
    const persona = await ctx.request<PersonaReply | null>(
      'persona.get',
      personaId === undefined ? {} : { personaId },
    );
    if (persona === null) {
      if (personaId !== undefined) {
        ctx.log.warn(
          { personaId },
          "the session's persona no longer exists; answering without a system prompt",
        );
      }
      return undefined;
    }
    if (persona.source === 'config') fixed.set(personaId ?? '', persona);
    return persona;
  }

  return (personaId) => {
    if (ctx.missingOptionalDependencies.includes('persona')) return undefined;
    return fixed.get(personaId ?? '') ?? ask(personaId);
  };
}
