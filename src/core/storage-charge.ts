/**
 * Whose storage quota a change counts against, when its key does not name its user (rag's
 * `documents/{doc_id}/…`): the user a module names with `chargeStorageTo(userId, work)` around the work
 * that writes such keys (an `AsyncLocalStorage`: every storage call made inside `work`, however deep, and
 * only those). The quota wrapper (storage/quota.ts) reads it. It lives in core because the context of a
 * module run in a worker (worker-context.ts) must carry it to the main thread with each storage call: the
 * store is per thread, and the quota is applied on the main thread.
 */

import { AsyncLocalStorage } from 'node:async_hooks';

const charged = new AsyncLocalStorage<string>();

/**
 * Runs `work` with the storage changes it makes to keys that name no user charged to `userId`. Keys a
 * `{user}` pattern gives to a user stay theirs.
 */
export function chargeStorageTo<T>(userId: string, work: () => T): T {
  return charged.run(userId, work);
}

/** The user the current work's storage changes are charged to, if a caller named one. */
export function chargedUser(): string | undefined {
  return charged.getStore();
}
