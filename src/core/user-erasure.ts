/**
 * Erasing a user (an admin's `DELETE /v1/users/:id`, `parley users delete`): the platform gathers
 * `platform.user.erase` from every module, and each deletes whatever it keeps of that user — chats,
 * memories, documents, notifications, presence, agent conversations — answering how many items it removed.
 * Only the platform sends it (core/context.ts refuses it to modules). A module handler must be idempotent:
 * an erasure that failed somewhere is asked again, whole.
 */

/** `platform.user.erase`'s payload. */
export interface UserEraseRequest {
  userId: string;
}

/** What each module answers: the items (sessions, memories, documents, files…) it removed. */
export interface UserEraseReply {
  erased: number;
}

/** The event type. */
export const USER_ERASE = 'platform.user.erase';

declare module './events.ts' {
  interface EventMap {
    'platform.user.erase': UserEraseRequest;
  }
}
