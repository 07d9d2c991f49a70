/** A user's presence as the presence module stores it (`presence/{user_id}.json`). */
export interface PresenceRecord {
  userId: string;
  status: string;
  /** ISO-8601 time of the change. */
  since: string;
}

/** `user.status_changed`: broadcast when a user's status changes (the seed's broadcast example). */
export interface UserStatusChanged {
  userId: string;
  status: string;
}

/** What other modules get from `ctx.getModule('presence')`. */
export interface PresenceApi {
  /** The user's last known status, or `undefined` when never seen. */
  getStatus(userId: string): Promise<PresenceRecord | undefined>;
}

export interface PresenceConfig {
  allowed_statuses: string[];
}

declare module '../../core/events.ts' {
  interface EventMap {
    'user.status_changed': UserStatusChanged;
    'presence.get': { userId: string };
    'user.info': { userId: string };
  }
}
