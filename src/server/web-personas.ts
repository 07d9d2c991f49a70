/**
 * `GET /v1/personas`: the personas a user can pick for a session (the web client's persona picker). Read
 * from the persona module over the bus (`persona.list`), as the server reads everything of a module. Only
 * what a picker needs goes out — id, name, preferred model — not the system prompts, which are the
 * operator's. Without the persona module the list is empty.
 */

import type { FastifyInstance } from 'fastify';
import type { Bus } from '../core/bus-types.ts';
import { isPlatformError } from '../core/errors.ts';
import { errorResponses } from './schemas.ts';

/** A persona as the picker shows it. */
export interface PersonaSummary {
  id: string;
  name: string;
  model?: string;
}

/** Registers GET /v1/personas. */
export function registerPersonaListRoute(app: FastifyInstance, bus: Bus): void {
  app.get(
    '/v1/personas',
    {
      schema: {
        tags: ['sessions'],
        summary: 'The personas a session can use (id, name, preferred model)',
        response: {
          200: {
            type: 'object',
            required: ['personas'],
            properties: {
              personas: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['id', 'name'],
                  properties: { id: { type: 'string' }, name: { type: 'string' }, model: { type: 'string' } },
                },
              },
            },
          },
          ...errorResponses,
        },
      },
    },
    async () => {
      let personas: Array<{ id: string; name: string; model?: string }>;
      try {
        personas = await bus.request<Array<{ id: string; name: string; model?: string }>>('persona.list', {});
      } catch (error) {
        if (isPlatformError(error, 'CHAT_ERR_BUS_NO_HANDLER')) return { personas: [] };
        throw error;
      }
      return {
        personas: personas.map(
          (persona): PersonaSummary => ({
            id: persona.id,
            name: persona.name,
            ...(persona.model === undefined ? {} : { model: persona.model }),
          }),
        ),
      };
    },
  );
}
