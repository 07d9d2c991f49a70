/**
 * GET /v1/sessions/:id/export?format=markdown|json: the whole conversation as a download. The session is
 * read (another user's is a 404, like a missing one) and the first page of messages too before anything is
 * sent, so those failures get their status; the rest streams page by page (text_chat's `messages.export`),
 * so a conversation of any length is exported whole without being held in memory.
 */

import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Message } from '../../core/types.ts';
import { principalOf } from '../auth-hook.ts';
import {
  type ExportFormat,
  exportContentDisposition,
  exportMediaType,
  jsonExport,
  markdownExport,
} from '../chat-export.ts';
import { errorResponses, idParams } from '../schemas.ts';
import type { ServerContext } from '../server-context.ts';
import { checkSessionId } from './sessions.ts';

/** Registers the export route. */
export function registerSessionExportRoutes(app: FastifyInstance, context: ServerContext): void {
  const { chat } = context;

  app.get<{ Params: { id: string }; Querystring: { format: ExportFormat } }>(
    '/v1/sessions/:id/export',
    {
      schema: {
        tags: ['sessions'],
        summary: 'Download the whole conversation as Markdown or JSON',
        description:
          'An attachment (`content-disposition`) named after the chat. Markdown: the title, dates, each message ' +
          'with who wrote it and when, the sources a reply cited. JSON: `{ format: "parley-chat-export", version: 1, ' +
          'exportedAt, session, messages }` with every message as stored. Streamed: any length.',
        params: idParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { format: { type: 'string', enum: ['markdown', 'json'], default: 'markdown' } },
        },
        response: {
          200: { type: 'string', description: 'The Markdown or JSON file' },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const userId = principalOf(request).userId;
      const sessionId = checkSessionId(request.params.id);
      const format = request.query.format;
      const [session, first, { feedback }] = await Promise.all([
        chat.getSession(userId, sessionId),
        chat.exportMessages(userId, sessionId),
        chat.listFeedback(userId, sessionId),
      ]);
      async function* pages(): AsyncGenerator<readonly Message[]> {
        let page = first;
        yield page.messages;
        while (page.nextCursor !== undefined) {
          page = await chat.exportMessages(userId, sessionId, { after: page.nextCursor });
          yield page.messages;
        }
      }
      const source = { session, pages: pages(), feedback, exportedAt: new Date().toISOString() };
      const body = Readable.from(format === 'json' ? jsonExport(source) : markdownExport(source));
      // A failure after the first bytes can only cut the download short: say so in the log.
      body.on('error', (error) => request.log.error({ err: error, sessionId }, 'export failed midway'));
      return reply
        .header('content-type', exportMediaType(format))
        .header('content-disposition', exportContentDisposition(session, format))
        .header('cache-control', 'no-store')
        .send(body);
    },
  );
}
