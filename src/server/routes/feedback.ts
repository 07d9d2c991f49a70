/**
 * Feedback on replies: `PUT /v1/sessions/:id/messages/:messageId/feedback` rates an assistant reply up or
 * down with an optional comment (again: changes it), `DELETE` withdraws the rating, and
 * `GET /v1/sessions/:id/feedback` lists the session's ratings. Requests to text_chat (`message.rate`,
 * `messages.feedback`) with the caller's user id: another user's session or message is a 404.
 */

import type { FastifyInstance } from 'fastify';
import { principalOf } from '../auth-hook.ts';
import { errorResponses, idParams } from '../schemas.ts';
import type { ServerContext } from '../server-context.ts';
import { checkSessionId } from './sessions.ts';

interface FeedbackBody {
  rating: 'up' | 'down';
  comment?: string;
}

const feedbackSchema = {
  type: 'object',
  required: ['messageId', 'rating', 'updatedAt'],
  properties: {
    messageId: { type: 'string' },
    rating: { type: 'string', enum: ['up', 'down'] },
    comment: { type: 'string' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
} as const;

const messageParams = {
  type: 'object',
  required: ['id', 'messageId'],
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 200 },
    messageId: { type: 'string', minLength: 1, maxLength: 200 },
  },
} as const;

/** Registers the feedback routes. */
export function registerFeedbackRoutes(app: FastifyInstance, context: ServerContext): void {
  const { chat } = context;
  const tags = ['messages'];

  app.put<{ Params: { id: string; messageId: string }; Body: FeedbackBody }>(
    '/v1/sessions/:id/messages/:messageId/feedback',
    {
      schema: {
        tags,
        summary: 'Rate a reply up or down, with an optional comment (again: change the rating)',
        description:
          'Only assistant replies can be rated (a user message → 400). The comment is at most ' +
          'text_chat.feedback.max_comment_length characters. Each rating is emitted as `message.rated` ' +
          "(webhooks can forward it). Another user's session or message, or a missing one → 404.",
        params: messageParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['rating'],
          properties: {
            rating: { type: 'string', enum: ['up', 'down'] },
            comment: { type: 'string' },
          },
        },
        response: { 200: feedbackSchema, ...errorResponses },
      },
    },
    async (request) => {
      const { rating, comment } = request.body;
      return chat.rateMessage(
        principalOf(request).userId,
        checkSessionId(request.params.id),
        request.params.messageId,
        { rating, ...(comment === undefined ? {} : { comment }) },
      );
    },
  );

  app.delete<{ Params: { id: string; messageId: string } }>(
    '/v1/sessions/:id/messages/:messageId/feedback',
    {
      schema: {
        tags,
        summary: 'Withdraw your rating of a reply',
        params: messageParams,
        response: {
          200: {
            type: 'object',
            required: ['messageId', 'rating'],
            properties: { messageId: { type: 'string' }, rating: { type: 'null' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) =>
      chat.rateMessage(
        principalOf(request).userId,
        checkSessionId(request.params.id),
        request.params.messageId,
        { rating: null },
      ),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/sessions/:id/feedback',
    {
      schema: {
        tags,
        summary: "The session's ratings of replies, oldest first",
        params: idParams,
        response: {
          200: {
            type: 'object',
            required: ['feedback'],
            properties: { feedback: { type: 'array', items: feedbackSchema } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => chat.listFeedback(principalOf(request).userId, checkSessionId(request.params.id)),
  );
}
