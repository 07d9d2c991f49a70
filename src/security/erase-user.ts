/**
 * Erasing a user (`DELETE /v1/users/:id`): everything parley keeps of them goes, and then the user.
 *
 * 1. Their API keys are revoked first, so nothing new is written for them while their data goes (a web
 *    session ends with the key it was opened with).
 * 2. `platform.user.erase` is gathered from every module (core/user-erasure.ts): each deletes what it keeps
 *    of the user — chats, memories, documents, notifications, presence, agent conversations — and says
 *    how many items that was.
 * 3. With encryption at rest on, the user's data keys are destroyed (crypto-shredding): what of theirs
 *    a backup or a copy still holds cannot be read any more.
 *    Then the storage quota forgets what it counted of them (their usage reads 0 from then on).
 * 4. Only when every module answered without failing is the user record removed and `user.deleted`
 *    emitted (webhooks can pass it on). Otherwise CHAT_ERR_USER_ERASE_INCOMPLETE names the modules, and
 *    the user stays (keys revoked) so the same request can be sent again: every module's erasure is
 *    idempotent.
 *
 * The audit log keeps the user's id and name in the entries that record what was done to and by them:
 * it is the record of who did what, hash-chained, and is not rewritten.
 */

import type { Bus } from '../core/bus-types.ts';
import { NotFoundError, PlatformError } from '../core/errors.ts';
import { USER_ERASE, type UserEraseReply } from '../core/user-erasure.ts';
import type { Auth } from './auth.ts';
import type { User } from './users.ts';

/** What an erasure removed: the user, and each module's count of items. */
export interface UserErasure {
  user: User;
  erased: Record<string, number>;
}

/** The event emitted once a user is erased. */
export interface UserDeleted {
  userId: string;
}

declare module '../core/events.ts' {
  interface EventMap {
    'user.deleted': UserDeleted;
  }
}

/** Erases user `userId` as described above; NotFoundError when there is no such user. */
export async function eraseUser(
  bus: Bus,
  auth: Auth,
  userId: string,
  options: {
    timeoutMs: number;
    /** Destroys the user's data keys (encryption at rest on); resolves with how many were live. */
    shredDataKeys?: (userId: string) => Promise<number>;
    /** Drops the user's storage count and list of charged keys (storage quota on). */
    forgetStorageUsage?: (userId: string) => Promise<void>;
  },
): Promise<UserErasure> {
  const user = await auth.users.get(userId);
  if (user === undefined) throw new NotFoundError(`no user "${userId}"`, { details: { userId } });
  for (const key of await auth.keys.list({ userId })) {
    if (!key.revoked) await auth.keys.revoke(key.id);
  }
  const result = await bus.gather<UserEraseReply>(
    USER_ERASE,
    { userId },
    { timeout: options.timeoutMs, userId },
  );
  const missing = result.timedOut ? result.missing : [];
  if (result.failed.length > 0 || missing.length > 0) {
    const failed = result.failed.map((failure) => `${failure.responder} (${failure.error})`);
    const late = missing.map((module) => `${module} (no answer within ${options.timeoutMs} ms)`);
    throw new PlatformError(
      'CHAT_ERR_USER_ERASE_INCOMPLETE',
      `user "${user.name}" could not be erased everywhere: ${[...failed, ...late].join('; ')}. Their keys are revoked; send the request again`,
      { details: { userId, failed: result.failed, missing } },
    );
  }
  const erased: Record<string, number> = {};
  for (const reply of result.replies) {
    erased[reply.responder] = (erased[reply.responder] ?? 0) + (reply.data?.erased ?? 0);
  }
  // After the modules: a module erasing reads its files first (a compacted log, an index), sealed with
  // these keys.
  if (options.shredDataKeys !== undefined) erased.encryption = await options.shredDataKeys(userId);
  await options.forgetStorageUsage?.(userId);
  await auth.users.delete(userId);
  await bus.emit('user.deleted', { userId }, { userId });
  return { user, erased };
}
