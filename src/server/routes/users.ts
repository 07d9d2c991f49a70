/**
 * Users and API keys. Managing them needs the admin role; `GET /v1/me` tells any caller who they are.
 * A key is in the answer that creates it and nowhere else: only its hash is stored.
 */

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { NotFoundError, ValidationError } from '../../core/errors.ts';
import { eraseUser } from '../../security/erase-user.ts';
import type { UserRole } from '../../security/users.ts';
import { principalOf } from '../auth-hook.ts';
import { errorResponses, idParams, userSchema } from '../schemas.ts';
import type { ServerContext } from '../server-context.ts';
import { emptyBodyIsObject } from './sessions.ts';

const createdKeySchema = {
  type: 'object',
  required: ['key', 'apiKey'],
  properties: {
    key: { type: 'string', description: 'The API key. Shown once: store it now.' },
    apiKey: { $ref: 'ApiKey#' },
  },
} as const;

/** A user, and what they store against resource_limits.max_storage_per_user. */
const userWithStorageSchema = {
  type: 'object',
  required: userSchema.required,
  properties: {
    ...userSchema.properties,
    storage: {
      type: 'object',
      description:
        'Bytes the user stores (as this node counts them; see src/storage/README.md) and their limit (resource_limits.max_storage_per_user); absent when the quota is off ("0B")',
      required: ['usedBytes', 'limitBytes'],
      properties: { usedBytes: { type: 'integer' }, limitBytes: { type: 'integer' } },
    },
  },
} as const;

/** How long an erasure waits for every module to delete a user's data. */
const USER_ERASE_TIMEOUT_MS = 120_000;

/** Registers /v1/me, /v1/users and /v1/keys. */
export function registerUserRoutes(app: FastifyInstance, context: ServerContext): void {
  const { users, keys } = context.auth;
  const admin = { auth: 'admin' } as const;

  /** Records what the caller did in the audit log (before the change is acknowledged). */
  async function audit(
    request: FastifyRequest,
    action: string,
    target: Record<string, string>,
    details?: Record<string, unknown>,
  ): Promise<void> {
    const principal = principalOf(request);
    await context.platform.audit?.record({
      actor: { type: 'user', id: principal.userId, name: principal.userName },
      action,
      target,
      ...(details === undefined ? {} : { details }),
    });
  }

  app.get(
    '/v1/me',
    {
      schema: {
        tags: ['users'],
        summary: 'The caller: user and the key in use',
        response: {
          200: {
            type: 'object',
            required: ['user', 'keyId'],
            properties: { user: { $ref: 'User#' }, keyId: { type: 'string' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const user = await users.get(principal.userId);
      if (user === undefined) throw new NotFoundError('the user of this key no longer exists');
      return { user, keyId: principal.keyId };
    },
  );

  app.post<{ Body: { name: string; role?: UserRole; createKey?: boolean } }>(
    '/v1/users',
    {
      config: admin,
      schema: {
        tags: ['users'],
        summary: 'Create a user (admin); with createKey, also its first API key',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: {
            name: {
              type: 'string',
              minLength: 1,
              maxLength: 64,
              description: 'Lowercase letters, digits, . _ -',
            },
            role: { type: 'string', enum: ['admin', 'user'] },
            createKey: { type: 'boolean', description: 'Also create an API key (default true).' },
          },
        },
        response: {
          201: {
            type: 'object',
            required: ['user'],
            properties: { user: { $ref: 'User#' }, key: { type: 'string' }, apiKey: { $ref: 'ApiKey#' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const { name, role, createKey = true } = request.body;
      const user = await users.create({ name, ...(role === undefined ? {} : { role }) });
      await audit(request, 'user.created', { userId: user.id, name: user.name }, { role: user.role });
      if (!createKey) return reply.status(201).send({ user });
      const created = await keys.create(user.id);
      await audit(request, 'key.created', { keyId: created.record.id, userId: user.id });
      return reply.status(201).send({ user, key: created.key, apiKey: created.record });
    },
  );

  app.get(
    '/v1/users',
    {
      config: admin,
      schema: {
        tags: ['users'],
        summary: 'Every user (admin)',
        response: {
          200: {
            type: 'object',
            required: ['users'],
            properties: { users: { type: 'array', items: { $ref: 'User#' } } },
          },
          ...errorResponses,
        },
      },
    },
    async () => ({ users: await users.list() }),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/users/:id',
    {
      config: admin,
      schema: {
        tags: ['users'],
        summary: 'One user (admin), with their stored bytes when the storage quota is on',
        params: idParams,
        response: { 200: userWithStorageSchema, ...errorResponses },
      },
    },
    async (request) => {
      const user = await users.get(request.params.id);
      if (user === undefined) throw new NotFoundError(`no user "${request.params.id}"`);
      const quota = context.platform.storageQuota;
      return quota === undefined ? user : { ...user, storage: await quota.usage(user.id) };
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/users/:id',
    {
      config: admin,
      schema: {
        tags: ['users'],
        summary:
          'Erase a user (admin): their keys are revoked, every module deletes what it keeps of them (chats, memories, documents, notifications, presence, agent conversations), then the user',
        params: idParams,
        response: {
          200: {
            type: 'object',
            required: ['user', 'erased'],
            properties: {
              user: { $ref: 'User#' },
              erased: {
                type: 'object',
                description: 'Items each module removed, by module name',
                additionalProperties: { type: 'integer' },
              },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const userId = request.params.id;
      if (userId === principalOf(request).userId) {
        throw new ValidationError('an admin cannot erase their own user: ask another admin', {
          details: { userId },
        });
      }
      const { encryption, storageQuota: quota } = context.platform;
      const erasure = await eraseUser(context.platform.bus, context.auth, userId, {
        timeoutMs: USER_ERASE_TIMEOUT_MS,
        ...(encryption === undefined
          ? {}
          : { shredDataKeys: (id: string) => encryption.dataKeys.shred({ kind: 'user', userId: id }) }),
        ...(quota === undefined ? {} : { forgetStorageUsage: (id: string) => quota.forget(id) }),
      });
      await audit(request, 'user.deleted', { userId, name: erasure.user.name }, { erased: erasure.erased });
      return erasure;
    },
  );

  app.post<{ Body: { userId?: string; name?: string } }>(
    '/v1/keys',
    {
      config: admin,
      preValidation: emptyBodyIsObject,
      schema: {
        tags: ['keys'],
        summary: "Create an API key (admin) for a user (default: the caller's own user)",
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            userId: { type: 'string', minLength: 1, maxLength: 200 },
            name: { type: 'string', minLength: 1, maxLength: 100, description: 'A label ("laptop", "ci")' },
          },
        },
        response: { 201: createdKeySchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const userId = body.userId ?? principalOf(request).userId;
      if ((await users.get(userId)) === undefined) throw new NotFoundError(`no user "${userId}"`);
      const created = await keys.create(userId, body.name === undefined ? {} : { name: body.name });
      await audit(request, 'key.created', { keyId: created.record.id, userId });
      return reply.status(201).send({ key: created.key, apiKey: created.record });
    },
  );

  app.get<{ Querystring: { userId?: string } }>(
    '/v1/keys',
    {
      config: admin,
      schema: {
        tags: ['keys'],
        summary: 'API keys (admin), revoked ones included; never the keys themselves',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { userId: { type: 'string', minLength: 1, maxLength: 200 } },
        },
        response: {
          200: {
            type: 'object',
            required: ['keys'],
            properties: { keys: { type: 'array', items: { $ref: 'ApiKey#' } } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => ({
      keys: await keys.list(request.query.userId === undefined ? {} : { userId: request.query.userId }),
    }),
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/keys/:id',
    {
      config: admin,
      schema: {
        tags: ['keys'],
        summary: 'Revoke an API key (admin); it stops working at once',
        params: idParams,
        response: { 200: { $ref: 'ApiKey#' }, ...errorResponses },
      },
    },
    async (request) => {
      const revoked = await keys.revoke(request.params.id);
      if (revoked === undefined) throw new NotFoundError(`no API key "${request.params.id}"`);
      await audit(request, 'key.revoked', { keyId: revoked.id, userId: revoked.userId });
      return revoked;
    },
  );
}
