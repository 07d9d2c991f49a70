import type { EventEnvelope } from '../../core/events.ts';
import { defineModule } from '../../core/module.ts';
import { USER_ERASE, type UserEraseRequest } from '../../core/user-erasure.ts';
import defaults from './config.json' with { type: 'json' };
import configSchema from './config.schema.json' with { type: 'json' };
import { eraseStatus, readStatus, recordStatus } from './presence.ts';
import type { PresenceApi, PresenceConfig, UserStatusChanged } from './types.ts';

/** Keeps each user's status (`presence/{user_id}.json`) from `user.status_changed` broadcasts. */
export default defineModule<PresenceConfig, PresenceApi>({
  info: {
    name: 'presence',
    version: '1.0.0',
    capabilities: ['access_user_data'],
    dependencies: [],
  },
  configSchema,
  defaults,
  handles: ['user.status_changed', 'presence.get', 'user.info', 'pipeline.stage.resolve_status', USER_ERASE],
  setup(ctx) {
    const api: PresenceApi = { getStatus: (userId) => readStatus(ctx.storage, userId) };
    return {
      api,
      handlers: {
        'user.status_changed': async (event: EventEnvelope<UserStatusChanged>) => {
          const record = await recordStatus(ctx.storage, event.data, ctx.config.allowed_statuses);
          ctx.log.debug({ userId: record.userId, status: record.status }, 'presence updated');
        },
        // Request-response: the status of one user.
        'presence.get': (event: EventEnvelope<{ userId: string }>) => api.getStatus(event.data.userId),
        // Aggregation: presence's part of what the platform knows about a user.
        'user.info': async (event: EventEnvelope<{ userId: string }>) => ({
          status: (await api.getStatus(event.data.userId))?.status ?? 'unknown',
        }),
        // Pipeline stage: adds the user's status to whatever flows through.
        'pipeline.stage.resolve_status': async (event: EventEnvelope<{ userId: string }>) => ({
          ...event.data,
          status: (await api.getStatus(event.data.userId))?.status ?? 'unknown',
        }),
        [USER_ERASE]: async (event: EventEnvelope<UserEraseRequest>) => ({
          erased: await eraseStatus(ctx.storage, event.data.userId),
        }),
      },
      health: () => ({ healthy: true }),
    };
  },
});
