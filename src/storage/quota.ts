/**
 * The per-user storage quota (`resource_limits.max_storage_per_user`) as a storage wrapper. It counts the
 * bytes each user has stored and refuses a `write` or `append` that would take them past the limit
 * (CHAT_ERR_STORAGE_QUOTA_EXCEEDED, 413); a change that shrinks a user (a delete, a shorter rewrite) is
 * never refused, and neither is a key that belongs to no user.
 *
 * Whose bytes a key holds: the `{user}` key patterns that already say whose data key seals it
 * (`security.encryption.sensitive`, sensitive-keys.ts) — `sessions/{user}/**` and the like. Keys that do
 * not name their user (rag's `documents/{doc_id}/…`, whose id is a hash) are charged to the user a module
 * names with `chargeStorageTo(userId, work)` around the work that writes them; the wrapper remembers such
 * a key in a small per-user list (`storage-quota/attributed/{user}.jsonl`, one line when the key is first
 * written), so they are found again after a start. A later change of such a key is charged to the same
 * user whether or not the module names them again.
 *
 * Counting: a user's bytes are counted once per process, on the first change of one of their keys (or the
 * first `usage` asked): a `list` of the prefixes their patterns allow, one `size` per key (a stat on
 * flatfile), and their attributed list. From then on the count is kept in memory with each key's size:
 * a write replaces the key's old size, an append adds, a delete subtracts — a Map lookup and the pattern
 * match per change, no storage round trip. Reads pass through untouched. Nothing is persisted but the
 * attributed list: after a restart the count is made again from what storage holds, so it is right
 * whatever happened before (a crash included). At most `maxUsers` users are counted at once (least
 * recently changed forgotten beyond that, counted again on their next change).
 *
 * Several nodes over one storage: each node counts a user from storage when it first sees them, then
 * adds its own changes — and, with `recountAfterMs`, counts them again from storage once its count is that
 * old, on their next change made while none of theirs is under way here (one under way might land before
 * or after the count looks at its key); that change waits for the count, as the first one did. So what
 * other nodes stored is seen within about `recountAfterMs`: a user writing through N nodes at once can
 * overshoot the limit by what the others store in that time, not by N times the limit. Without it (one
 * node, whose own changes are all there is to see) a count lasts until the process ends or forgets the user.
 *
 * It sits below the encryption wrapper, so it counts the bytes the backend holds (sealed records are about
 * a third larger than their plaintext).
 */

import { PlatformError } from '../core/errors.ts';
import { chargedUser } from '../core/storage-charge.ts';
import { KeyMemo } from './key-memo.ts';
import type { SensitiveKeyMatcher } from './sensitive-keys.ts';
import { sizeOf } from './size-of.ts';
import type { Storage } from './types.ts';

/** Where the keys charged with `chargeStorageTo` are listed, per user (a platform key: never charged). */
export const ATTRIBUTED_KEYS_ROOT = 'storage-quota/attributed/';

/** The config key of the limit, named in refusals. */
export const STORAGE_QUOTA_CONFIG_KEY = 'resource_limits.max_storage_per_user';

export interface QuotaStorageOptions {
  /** The most bytes one user may store. */
  limitBytes: number;
  /** Whose key it is: the user of a `{user}` pattern (createSensitiveKeyMatcher). */
  owners: SensitiveKeyMatcher;
  /** Where a user's pattern keys can be (userKeyPrefixes): the listing that counts them. */
  prefixesOf: (userId: string) => string[];
  /** How many users' counts are kept in memory at most. */
  maxUsers: number;
  /**
   * Several nodes over one storage: a user's count this old (ms) is made again from storage on their next
   * change (see the file comment). Undefined: never.
   */
  recountAfterMs?: number;
  /** The clock, in milliseconds (default `Date.now`); tests inject their own. */
  now?: () => number;
}

/** A user's stored bytes and their limit. */
export interface StorageUsage {
  usedBytes: number;
  limitBytes: number;
}

/** The quota wrapper: a storage, plus the usage of a user and the way to forget an erased one. */
export interface QuotaStorage extends Storage {
  /** The bytes `userId` stores now (counted from storage when this node has not counted them yet). */
  usage(userId: string): Promise<StorageUsage>;
  /** After a user's erasure: drops their count and their list of attributed keys. */
  forget(userId: string): Promise<void>;
}

// Who a module names as the payer of keys that name no user (core/storage-charge.ts), re-exported here
// beside the quota that reads it.
export { chargeStorageTo } from '../core/storage-charge.ts';

interface Account {
  used: number;
  /** The size of each of the user's keys (pattern and attributed). */
  sizes: Map<string, number>;
  /** Those of the keys charged through chargeStorageTo. */
  attributed: Set<string>;
  /** When it was last changed (a counter): the least recent go first beyond `maxUsers`. */
  lastUsed: number;
  /** When its count from storage began (`now()`). */
  countedAt: number;
  /** Its changes sent to the storage and not settled yet. */
  underWay: number;
}

/** A change waiting for its user's count: given the account, or the count's error. */
type Waiter = (account: Account | undefined, error?: unknown) => void;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** Keys sized at once while counting a user. */
const SIZES_AT_ONCE = 16;

function attributedKey(userId: string): string {
  return `${ATTRIBUTED_KEYS_ROOT}${encodeURIComponent(userId)}.jsonl`;
}

function line(key: string): Uint8Array {
  return encoder.encode(`${JSON.stringify({ key })}\n`);
}

function exceeded(userId: string, account: Account, more: number, limit: number): PlatformError {
  return new PlatformError(
    'CHAT_ERR_STORAGE_QUOTA_EXCEEDED',
    `storing ${more} more bytes would take your stored data to ${account.used + more} bytes, over the limit of ${limit} bytes (${STORAGE_QUOTA_CONFIG_KEY}); you store ${account.used} bytes now. Delete chats or documents, or ask an admin to raise the limit`,
    { details: { userId, usedBytes: account.used, limitBytes: limit, requestedBytes: more } },
  );
}

/** Returns `storage` with the per-user quota enforced (see the file comment). */
export function quotaStorage(storage: Storage, options: QuotaStorageOptions): QuotaStorage {
  const { limitBytes, owners, prefixesOf, maxUsers, recountAfterMs } = options;
  const now = options.now ?? Date.now;
  /** Counted users. */
  const accounts = new Map<string, Account>();
  let clock = 0;
  /** Users being counted, with the changes waiting for their count. */
  const counting = new Map<string, Waiter[]>();
  /** Attributed key → its user, for the counted users. */
  const attributedOwner = new Map<string, string>();
  /** Whose each key is by the patterns, null for nobody's: a turn's keys pass here every turn (key-memo.ts). */
  const patternOwners = new KeyMemo<{ userId: string; attributed: false } | null>();

  /** The user whose bytes `key` holds, and whether it is an attributed key; undefined: nobody's. */
  function ownerOf(key: string): { userId: string; attributed: boolean } | undefined {
    let byPattern = patternOwners.get(key);
    if (byPattern === undefined) {
      const owner = owners(key);
      byPattern = patternOwners.remember(
        key,
        owner?.kind === 'user' ? { userId: owner.userId, attributed: false } : null,
      );
    }
    if (byPattern !== null) return byPattern;
    if (key.startsWith(ATTRIBUTED_KEYS_ROOT)) return undefined;
    const userId = attributedOwner.get(key) ?? chargedUser();
    return userId === undefined ? undefined : { userId, attributed: true };
  }

  async function sizes(keys: readonly string[]): Promise<Array<number | undefined>> {
    const result: Array<number | undefined> = [];
    for (let start = 0; start < keys.length; start += SIZES_AT_ONCE) {
      result.push(
        ...(await Promise.all(keys.slice(start, start + SIZES_AT_ONCE).map((key) => sizeOf(storage, key)))),
      );
    }
    return result;
  }

  /** Counts a user's bytes from what storage holds. */
  async function count(userId: string): Promise<Account> {
    const account: Account = {
      used: 0,
      sizes: new Map(),
      attributed: new Set(),
      lastUsed: 0,
      countedAt: now(),
      underWay: 0,
    };
    const keys = new Set<string>();
    for (const prefix of prefixesOf(userId)) {
      for (const key of await storage.list(prefix)) {
        const owner = owners(key);
        if (owner?.kind === 'user' && owner.userId === userId) keys.add(key);
      }
    }
    const listed = [...keys];
    for (const [index, size] of (await sizes(listed)).entries()) {
      if (size === undefined) continue;
      account.sizes.set(listed[index]!, size);
      account.used += size;
    }
    const list = await storage.read(attributedKey(userId));
    if (list !== undefined) {
      const named = new Set<string>();
      let lines = 0;
      for (const text of decoder.decode(list).split('\n')) {
        if (text === '') continue;
        lines += 1;
        try {
          const { key } = JSON.parse(text) as { key?: unknown };
          if (typeof key === 'string' && !account.sizes.has(key)) named.add(key);
        } catch {
          // a line torn by a crash (flatfile cuts it off before the next append): its key, if it was
          // written, is charged again when it is next written
        }
      }
      const candidates = [...named];
      for (const [index, size] of (await sizes(candidates)).entries()) {
        const key = candidates[index]!;
        if (size === undefined) continue;
        account.sizes.set(key, size);
        account.attributed.add(key);
        account.used += size;
      }
      // Keys deleted since (or listed twice) leave the list when it is this much longer than needed.
      if (lines > 2 * account.attributed.size + 16) {
        const live = [...account.attributed].map((key) => `${JSON.stringify({ key })}\n`).join('');
        if (live === '') await storage.delete(attributedKey(userId));
        else await storage.write(attributedKey(userId), encoder.encode(live));
      }
    }
    return account;
  }

  function forgetAccount(userId: string, account: Account | undefined): void {
    if (account === undefined || accounts.get(userId) !== account) return;
    accounts.delete(userId);
    for (const key of account.attributed) attributedOwner.delete(key);
  }

  /** Beyond `maxUsers` counted users, forgets the least recently changed (a scan, only when one is added). */
  function evictBeyondMax(): void {
    while (accounts.size > maxUsers) {
      let oldest: [string, Account] | undefined;
      for (const entry of accounts)
        if (oldest === undefined || entry[1].lastUsed < oldest[1].lastUsed) oldest = entry;
      forgetAccount(oldest![0], oldest![1]);
    }
  }

  /**
   * Runs `use` with the user's account: at once when it is counted, else as soon as the count is made —
   * then every change that waited runs synchronously in the order it came, before any change that comes
   * later, so the changes of one key reach the storage in call order.
   */
  function withAccount<T>(userId: string, use: (account: Account) => Promise<T>): Promise<T> {
    const account = accounts.get(userId);
    if (account !== undefined) {
      const stale =
        recountAfterMs !== undefined && account.underWay === 0 && now() - account.countedAt >= recountAfterMs;
      if (!stale) {
        account.lastUsed = ++clock;
        return use(account);
      }
      // Counted again from storage (other nodes may have stored meanwhile): this change waits for it.
      forgetAccount(userId, account);
    }
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = (counted, error) => {
        if (counted === undefined) return reject(error);
        try {
          use(counted).then(resolve, reject);
        } catch (caught) {
          reject(caught);
        }
      };
      const waiting = counting.get(userId);
      if (waiting !== undefined) {
        waiting.push(waiter);
        return;
      }
      const waiters = [waiter];
      counting.set(userId, waiters);
      count(userId).then(
        (counted) => {
          counting.delete(userId);
          counted.lastUsed = ++clock;
          accounts.set(userId, counted);
          for (const key of counted.attributed) attributedOwner.set(key, userId);
          for (const next of waiters) next(counted);
          evictBeyondMax();
        },
        (error: unknown) => {
          counting.delete(userId);
          for (const next of waiters) next(undefined, error);
        },
      );
    });
  }

  /**
   * Runs a change of `key` owned by `owner` with its account: `sizeAfter` gives the key's size once it is
   * made (undefined: deleted), from its size now; a change that adds bytes past the limit is refused.
   */
  function charge<T>(
    owner: { userId: string; attributed: boolean },
    key: string,
    sizeAfter: (sizeNow: number) => number | undefined,
    change: () => Promise<T>,
  ): Promise<T> {
    return withAccount(owner.userId, (account) => {
      const now = account.sizes.get(key) ?? 0;
      const after = sizeAfter(now);
      const more = (after ?? 0) - now;
      if (more > 0 && account.used + more > limitBytes) {
        return Promise.reject(exceeded(owner.userId, account, more, limitBytes));
      }
      account.used += more;
      let listed: Promise<void> | undefined;
      if (after === undefined) {
        account.sizes.delete(key);
        if (account.attributed.delete(key)) attributedOwner.delete(key);
      } else {
        account.sizes.set(key, after);
        if (owner.attributed && !account.attributed.has(key)) {
          account.attributed.add(key);
          attributedOwner.set(key, owner.userId);
          // Beside the change, not before it (the change must go out now, in call order); a line whose
          // key was then not written is dropped at a later count.
          listed = storage.append(attributedKey(owner.userId), line(key));
        }
      }
      const sent = change();
      // Under way until settled (a recount waits for none to be); a failed one may or may not have landed:
      // count the user again from storage next time. (Beside the caller's promise, not in front of it:
      // that would add a turn of the event loop to every change.)
      const track = (write: Promise<unknown>) => {
        account.underWay += 1;
        write.then(
          () => {
            account.underWay -= 1;
          },
          () => {
            account.underWay -= 1;
            forgetAccount(owner.userId, account);
          },
        );
      };
      track(sent);
      if (listed === undefined) return sent;
      track(listed);
      return Promise.all([sent, listed]).then(() => sent);
    });
  }

  const readFrom = storage.readFrom?.bind(storage);
  const size = storage.size?.bind(storage);
  return {
    read: (key) => storage.read(key),
    ...(readFrom === undefined ? {} : { readFrom }),
    ...(size === undefined ? {} : { size }),
    exists: (key) => storage.exists(key),
    list: (prefix) => storage.list(prefix),
    write(key, data, options) {
      const owner = ownerOf(key);
      if (owner === undefined) return storage.write(key, data, options);
      const length = data.length;
      return charge(
        owner,
        key,
        () => length,
        () => storage.write(key, data, options),
      );
    },
    append(key, data) {
      const owner = ownerOf(key);
      if (owner === undefined) return storage.append(key, data);
      const length = data.length;
      return charge(
        owner,
        key,
        (now) => now + length,
        () => storage.append(key, data),
      );
    },
    delete(key) {
      const owner = ownerOf(key);
      // A user nobody counted yet: their count, when it is made, finds the key gone.
      if (owner === undefined || (!accounts.has(owner.userId) && !counting.has(owner.userId))) {
        return storage.delete(key);
      }
      return charge(
        owner,
        key,
        () => undefined,
        () => storage.delete(key),
      );
    },
    usage: (userId) => withAccount(userId, async (account) => ({ usedBytes: account.used, limitBytes })),
    async forget(userId) {
      if (counting.has(userId)) await withAccount(userId, async () => undefined).catch(() => undefined);
      forgetAccount(userId, accounts.get(userId));
      await storage.delete(attributedKey(userId));
    },
    close: () => storage.close(),
  };
}
