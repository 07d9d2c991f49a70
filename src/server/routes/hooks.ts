/**
 * Incoming webhooks: `POST /v1/hooks/:name` takes deliveries another service signs the Standard Webhooks
 * way with the secret of `server.incoming_webhooks.<name>`, and emits each as an event on the bus
 * (`webhook.<name>`, or the configured `event`) for modules to act on. The signature is the credential: no
 * API key. An accepted delivery is answered 202 once the bus stored its event (on NATS, in JetStream), so
 * the sender's retry is only needed when parley did not answer; a retry of a delivery already accepted
 * (the same `webhook-id`) is answered 200 and not emitted again (on this node, among its last 10,000).
 */

import type { FastifyInstance } from 'fastify';
import { NotFoundError } from '../../core/errors.ts';
import { createRecentIds, type RecentIds } from '../../core/recent-ids.ts';
import { UnauthenticatedError } from '../../security/auth.ts';
import { verifyWebhook } from '../../security/webhook-signature.ts';
import { errorResponses } from '../schemas.ts';
import type { ServerContext } from '../server-context.ts';

/** Delivery ids remembered per hook, to answer a sender's retry without emitting it twice. */
const RECENT_DELIVERIES = 10_000;

/** The event data of an accepted delivery. */
export interface WebhookReceived {
  hook: string;
  /** The sender's `webhook-id`. */
  deliveryId: string;
  /** The body, parsed when it is JSON, else as it came. */
  payload: unknown;
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(' ') : value;
}

/** Registers /v1/hooks/:name in a scope of its own, where bodies are kept as they came (for the signature). */
export function registerHookRoutes(app: FastifyInstance, context: ServerContext): void {
  const hooks = context.platform.config.server.incoming_webhooks;
  const recent = new Map<string, RecentIds>();

  app.register(async (scope) => {
    // The signature is over the raw bytes: every content type arrives as the string it was.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => done(null, body));

    scope.post<{ Params: { name: string }; Body: string }>(
      '/v1/hooks/:name',
      {
        config: { auth: 'public' },
        schema: {
          tags: ['webhooks'],
          summary: 'Receive a signed webhook (Standard Webhooks headers); emitted on the bus as an event',
          security: [],
          params: {
            type: 'object',
            required: ['name'],
            properties: { name: { type: 'string', pattern: '^[a-z0-9][a-z0-9_]{0,63}$' } },
          },
          response: {
            200: {
              type: 'object',
              properties: { accepted: { type: 'boolean' }, duplicate: { type: 'boolean' } },
            },
            202: { type: 'object', properties: { accepted: { type: 'boolean' } } },
            ...errorResponses,
          },
        },
      },
      async (request, reply) => {
        const name = request.params.name;
        const hook = Object.hasOwn(hooks, name) ? hooks[name] : undefined;
        if (hook === undefined)
          throw new NotFoundError(`no incoming webhook "${name}" (server.incoming_webhooks)`);
        const body = typeof request.body === 'string' ? request.body : '';
        const id = header(request.headers['webhook-id']);
        const checked = verifyWebhook(
          hook.secret,
          {
            id,
            timestamp: header(request.headers['webhook-timestamp']),
            signature: header(request.headers['webhook-signature']),
          },
          body,
          { nowSeconds: Math.floor(Date.now() / 1000), toleranceSeconds: hook.tolerance_seconds },
        );
        if (!checked.valid) throw new UnauthenticatedError(`webhook "${name}" refused: ${checked.reason}`);
        const deliveryId = id as string;
        let seen = recent.get(name);
        if (seen === undefined) {
          seen = createRecentIds(RECENT_DELIVERIES);
          recent.set(name, seen);
        }
        if (seen.has(deliveryId)) return reply.status(200).send({ accepted: true, duplicate: true });

        let payload: unknown = body;
        try {
          payload = JSON.parse(body);
        } catch {
          // Not JSON: handed on as the text it is.
        }
        const data: WebhookReceived = { hook: name, deliveryId, payload };
        await context.platform.bus.emit(hook.event ?? `webhook.${name}`, data, { correlationId: deliveryId });
        seen.add(deliveryId);
        return reply.status(202).send({ accepted: true });
      },
    );
  });
}
