/** One notification in a user's inbox (`notifications/inbox/{user_id}.jsonl`). */
export interface Notification {
  id: string;
  /** The user the notification is for. */
  userId: string;
  /** What happened, e.g. `status_changed`. */
  kind: string;
  text: string;
  /** ISO-8601. */
  time: string;
  data: Record<string, unknown>;
}

/** `notification.created`: emitted for each notification, so connected clients can show it at once. */
export type NotificationCreated = Notification;

/** What other modules get from `ctx.getModule('notifications')`. */
export interface NotificationsApi {
  /** `watcherId` is told when `userId`'s status changes. */
  watch(watcherId: string, userId: string): Promise<void>;
  /** The watcher's notifications, oldest first. */
  list(userId: string): Promise<Notification[]>;
}

export interface NotificationsConfig {
  /** Most notifications returned by `list` (the newest ones). */
  max_listed: number;
}

declare module '../../core/events.ts' {
  interface EventMap {
    'notification.created': NotificationCreated;
  }
}
