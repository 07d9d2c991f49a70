import type { EventEnvelope } from '../../core/events.ts';
import { defineModule } from '../../core/module.ts';
import { USER_ERASE, type UserEraseRequest } from '../../core/user-erasure.ts';
import defaults from './config.json' with { type: 'json' };
import configSchema from './config.schema.json' with { type: 'json' };
import { addWatcher, deliver, eraseUser, readInbox, readWatchers } from './notifications.ts';
import type { NotificationsApi, NotificationsConfig } from './types.ts';

/** Tells a user's watchers when the user's status changes (the seed's second broadcast listener). */
export default defineModule<NotificationsConfig, NotificationsApi>({
  info: {
    name: 'notifications',
    version: '1.0.0',
    capabilities: ['access_user_data'],
    dependencies: [],
    optionalDependencies: ['presence'],
  },
  configSchema,
  defaults,
  handles: ['user.status_changed', 'user.info', 'pipeline.stage.render_notification', USER_ERASE],
  setup(ctx) {
    const api: NotificationsApi = {
      watch: (watcherId, userId) => addWatcher(ctx.storage, watcherId, userId),
      list: (userId) => readInbox(ctx.storage, userId, ctx.config.max_listed),
    };
    return {
      api,
      handlers: {
        'user.status_changed': async (event: EventEnvelope<{ userId: string; status: string }>) => {
          const { userId, status } = event.data;
          for (const watcherId of await readWatchers(ctx.storage, userId)) {
            const notification = await deliver(ctx.storage, {
              userId: watcherId,
              kind: 'status_changed',
              text: `${userId} is now ${status}`,
              data: { userId, status },
            });
            await ctx.emit('notification.created', notification, { userId: watcherId });
          }
        },
        // Aggregation: notifications' part of what the platform knows about a user.
        'user.info': async (event: EventEnvelope<{ userId: string }>) => ({
          notifications: (await api.list(event.data.userId)).length,
        }),
        // Pipeline stage: turns a status into the sentence a watcher would read.
        'pipeline.stage.render_notification': (
          event: EventEnvelope<{ userId: string; status?: string }>,
        ) => ({
          ...event.data,
          text: `${event.data.userId} is now ${event.data.status ?? 'unknown'}`,
        }),
        [USER_ERASE]: async (event: EventEnvelope<UserEraseRequest>) => ({
          erased: await eraseUser(ctx.storage, event.data.userId),
        }),
      },
      health: () => ({ healthy: true }),
    };
  },
});
