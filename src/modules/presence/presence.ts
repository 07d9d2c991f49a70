import { ValidationError } from '../../core/errors.ts';
import type { ModuleStorage } from '../../core/module.ts';
import { readJson, writeJson } from '../../storage/json.ts';
import type { PresenceRecord, UserStatusChanged } from './types.ts';

/** The storage key of a user's presence, relative to the module's root. */
function presenceKey(userId: string): string {
  return `${encodeURIComponent(userId)}.json`;
}

/** Records a status change; rejects statuses outside `allowedStatuses`. */
export async function recordStatus(
  storage: ModuleStorage,
  change: UserStatusChanged,
  allowedStatuses: readonly string[],
  now: Date = new Date(),
): Promise<PresenceRecord> {
  if (typeof change?.userId !== 'string' || change.userId === '') {
    throw new ValidationError('user.status_changed needs a non-empty userId');
  }
  if (!allowedStatuses.includes(change.status)) {
    throw new ValidationError(`status "${change.status}" is not one of ${allowedStatuses.join(', ')}`, {
      details: { status: change.status, allowed: allowedStatuses },
    });
  }
  const record: PresenceRecord = { userId: change.userId, status: change.status, since: now.toISOString() };
  await writeJson(storage, presenceKey(change.userId), record);
  return record;
}

/** The user's stored presence, or `undefined`. */
export async function readStatus(
  storage: ModuleStorage,
  userId: string,
): Promise<PresenceRecord | undefined> {
  return readJson<PresenceRecord>(storage, presenceKey(userId));
}

/** Deletes the user's presence (an erased user); resolves with how many records went (0 or 1). */
export async function eraseStatus(storage: ModuleStorage, userId: string): Promise<number> {
  return (await storage.delete(presenceKey(userId))) ? 1 : 0;
}
