import { ValidationError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import type { ModuleStorage } from '../../core/module.ts';
import { readJson, writeJson } from '../../storage/json.ts';
import { appendJsonLine, readJsonLines } from '../../storage/json-lines.ts';
import type { Notification } from './types.ts';

const watchersKey = (userId: string) => `watchers/${encodeURIComponent(userId)}.json`;
const inboxKey = (userId: string) => `inbox/${encodeURIComponent(userId)}.jsonl`;

/** The users told when `userId`'s status changes. */
export async function readWatchers(storage: ModuleStorage, userId: string): Promise<string[]> {
  return (await readJson<string[]>(storage, watchersKey(userId))) ?? [];
}

/** Adds `watcherId` to the users told of `userId`'s status changes (idempotent). */
export async function addWatcher(storage: ModuleStorage, watcherId: string, userId: string): Promise<void> {
  if (watcherId === '' || userId === '') throw new ValidationError('watch needs two non-empty user ids');
  const watchers = await readWatchers(storage, userId);
  if (watchers.includes(watcherId)) return;
  await writeJson(storage, watchersKey(userId), [...watchers, watcherId]);
}

/** Appends a notification to its user's inbox (durable before it resolves). */
export async function deliver(
  storage: ModuleStorage,
  notification: Omit<Notification, 'id' | 'time'>,
  now: Date = new Date(),
): Promise<Notification> {
  const stored: Notification = { id: newId(), time: now.toISOString(), ...notification };
  await appendJsonLine(storage, inboxKey(notification.userId), stored);
  return stored;
}

/** The newest `limit` notifications of a user, oldest first. */
export async function readInbox(
  storage: ModuleStorage,
  userId: string,
  limit: number,
): Promise<Notification[]> {
  const all = await readJsonLines<Notification>(storage, inboxKey(userId));
  return all.slice(-limit);
}

/**
 * Deletes the user's inbox and the list of who watches them (an erased user); resolves with how many of
 * the two there were. Notifications about them in other users' inboxes ("<id> is now online") stay.
 */
export async function eraseUser(storage: ModuleStorage, userId: string): Promise<number> {
  let erased = 0;
  for (const key of [inboxKey(userId), watchersKey(userId)]) if (await storage.delete(key)) erased += 1;
  return erased;
}
