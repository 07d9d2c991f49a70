/**
 * Users of the HTTP API. A user is a name and a role; what a user owns (sessions, memories) lives in the
 * modules' own roots, keyed by the user's id. Stored under the `users/` root of the platform storage:
 * `users/{user_id}.json`, plus `users/by-name/{name}.json` → `{ id }` so a name resolves in one read.
 */

import { PlatformError, ValidationError } from '../core/errors.ts';
import { newId } from '../core/ids.ts';
import { readJson, writeJson } from '../storage/json.ts';
import type { Storage } from '../storage/types.ts';

/** What a user may do: `admin` also manages users and API keys. */
export type UserRole = 'admin' | 'user';

/** The roles, for schemas and argument checks. */
export const USER_ROLES: readonly UserRole[] = ['admin', 'user'];

/** One user. `createdAt` is ISO-8601. */
export interface User {
  id: string;
  name: string;
  role: UserRole;
  createdAt: string;
}

/** What creating a user takes. */
export interface CreateUserInput {
  name: string;
  /** Default `user`. */
  role?: UserRole;
  /**
   * The id, when every node must make the same user (the first-start admin): two such creates at the
   * same moment write one record. Default: a new id.
   */
  id?: string;
}

/** Users, by id and by name. */
export interface UserStore {
  /** Creates a user; ValidationError for a bad name or role, CHAT_ERR_CONFLICT when the name is taken. */
  create(input: CreateUserInput): Promise<User>;
  get(id: string): Promise<User | undefined>;
  findByName(name: string): Promise<User | undefined>;
  /** Every user, oldest first. */
  list(): Promise<User[]>;
  /** Whether any user exists (the first start creates the admin when none does). */
  hasAny(): Promise<boolean>;
  /** Removes the user's record and name; the removed user, or undefined when there was none. */
  delete(id: string): Promise<User | undefined>;
}

/** Lowercase letters, digits, `.`, `_`, `-`; starts with a letter or digit; at most 64 characters. */
export const USER_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
// Ids come from newId() (UUIDv7); checking the shape keeps a crafted id from naming another key.
const ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const NAME_INDEX = 'by-name/';

/** The users kept in `storage` (a view scoped to the `users/` root). */
export function createUserStore(storage: Storage): UserStore {
  // Creations run one at a time on a node, so two concurrent creates of one name cannot both pass the check.
  let queue: Promise<unknown> = Promise.resolve();

  async function get(id: string): Promise<User | undefined> {
    if (!ID_PATTERN.test(id)) return undefined;
    return readJson<User>(storage, `${id}.json`);
  }

  async function findByName(name: string): Promise<User | undefined> {
    if (!USER_NAME_PATTERN.test(name)) return undefined;
    const entry = await readJson<{ id: string }>(storage, `${NAME_INDEX}${name}.json`);
    return entry === undefined ? undefined : get(entry.id);
  }

  async function createNow(input: CreateUserInput): Promise<User> {
    const role = input.role ?? 'user';
    if (typeof input.name !== 'string' || !USER_NAME_PATTERN.test(input.name)) {
      throw new ValidationError(
        `user name "${String(input.name)}" is not valid: use 1 to 64 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit`,
        { details: { name: input.name } },
      );
    }
    if (!USER_ROLES.includes(role)) {
      throw new ValidationError(`role "${String(role)}" is not one of ${USER_ROLES.join(', ')}`, {
        details: { role },
      });
    }
    if (input.id !== undefined && !ID_PATTERN.test(input.id)) {
      throw new ValidationError(`user id "${input.id}" is not a UUID`, { details: { id: input.id } });
    }
    if ((await findByName(input.name)) !== undefined) {
      throw new PlatformError('CHAT_ERR_CONFLICT', `a user named "${input.name}" already exists`, {
        details: { name: input.name },
      });
    }
    const user: User = {
      id: input.id ?? newId(),
      name: input.name,
      role,
      createdAt: new Date().toISOString(),
    };
    // The record first, then the name: a crash between the two leaves an unnamed record, never a name
    // pointing at nothing.
    await writeJson(storage, `${user.id}.json`, user);
    await writeJson(storage, `${NAME_INDEX}${user.name}.json`, { id: user.id });
    return user;
  }

  async function list(): Promise<User[]> {
    const keys = (await storage.list('')).filter((key) => !key.includes('/') && key.endsWith('.json'));
    const users = await Promise.all(keys.map((key) => readJson<User>(storage, key)));
    return users
      .filter((user): user is User => user !== undefined)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  return {
    create(input) {
      const created = queue.then(() => createNow(input));
      queue = created.catch(() => undefined);
      return created;
    },
    get,
    findByName,
    list,
    async hasAny() {
      return (await storage.list(NAME_INDEX)).length > 0;
    },
    async delete(id) {
      const user = await get(id);
      if (user === undefined) return undefined;
      // The record first, then the name (as create writes them): a crash between leaves a name pointing
      // at nothing, which findByName treats as free.
      await storage.delete(`${user.id}.json`);
      const named = await readJson<{ id: string }>(storage, `${NAME_INDEX}${user.name}.json`);
      if (named?.id === user.id) await storage.delete(`${NAME_INDEX}${user.name}.json`);
      return user;
    },
  };
}
