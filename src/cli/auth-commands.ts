/**
 * `parley users create|list` and `parley keys create|list|revoke`: manage users and API keys directly in
 * the configured storage (no server needed). Keys are printed once, when created; only their hashes are
 * kept. A running server sees a revoked key refused once its storage cache entry expires
 * (storage.cache.ttl_ms); `DELETE /v1/keys/:id` on the server itself takes effect at once.
 */

import { loadConfig } from '../core/config.ts';
import { discoverModules } from '../platform/discover-modules.ts';
import { type Auth, createAuth } from '../security/auth.ts';
import { USER_ROLES, type UserRole } from '../security/users.ts';
import { createStorage } from '../storage/create-storage.ts';

/** Where the commands write: stdout for results, stderr for problems. */
export interface CommandOutput {
  out(text: string): void;
  error(text: string): void;
}

const processOutput: CommandOutput = {
  out: (text) => process.stdout.write(text),
  error: (text) => process.stderr.write(text),
};

/** Opens the users and keys of the configured storage, runs `action`, closes the storage. */
async function withAuth(
  configDir: string | undefined,
  action: (auth: Auth) => Promise<number>,
): Promise<number> {
  const definitions = await discoverModules();
  const config = loadConfig({
    ...(configDir === undefined ? {} : { configDir }),
    modules: [...definitions.values()].map((definition) => ({
      name: definition.info.name,
      ...(definition.defaults === undefined ? {} : { defaults: definition.defaults }),
      schema: definition.configSchema,
    })),
  });
  const storage = await createStorage(config.storage);
  try {
    return await action(createAuth(storage));
  } finally {
    await storage.close();
  }
}

function table(rows: string[][]): string {
  const widths =
    rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? [];
  return `${rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}

/** `parley users create <name> [--role admin|user]`: creates the user and a first key, printed once. */
export function usersCreate(
  configDir: string | undefined,
  name: string | undefined,
  role: string | undefined,
  output: CommandOutput = processOutput,
): Promise<number> {
  if (name === undefined) {
    output.error('usage: parley users create <name> [--role admin|user]\n');
    return Promise.resolve(2);
  }
  if (role !== undefined && !USER_ROLES.includes(role as UserRole)) {
    output.error(`--role must be one of ${USER_ROLES.join(', ')}\n`);
    return Promise.resolve(2);
  }
  return withAuth(configDir, async (auth) => {
    const user = await auth.users.create({ name, ...(role === undefined ? {} : { role: role as UserRole }) });
    const { key } = await auth.keys.create(user.id);
    output.out(
      `created user ${user.name} (${user.role}), id ${user.id}\n` +
        `API key (shown this once, only its hash is stored):\n\n    ${key}\n\n`,
    );
    return 0;
  });
}

/** `parley users list`. */
export function usersList(
  configDir: string | undefined,
  output: CommandOutput = processOutput,
): Promise<number> {
  return withAuth(configDir, async (auth) => {
    const users = await auth.users.list();
    output.out(
      table([['ID', 'NAME', 'ROLE', 'CREATED'], ...users.map((u) => [u.id, u.name, u.role, u.createdAt])]),
    );
    return 0;
  });
}

/** `parley keys create --user <name> [--name <label>]`: prints the new key once. */
export function keysCreate(
  configDir: string | undefined,
  userName: string | undefined,
  label: string | undefined,
  output: CommandOutput = processOutput,
): Promise<number> {
  if (userName === undefined) {
    output.error('usage: parley keys create --user <name> [--name <label>]\n');
    return Promise.resolve(2);
  }
  return withAuth(configDir, async (auth) => {
    const user = await auth.users.findByName(userName);
    if (user === undefined) {
      output.error(`no user named "${userName}" (parley users list shows them)\n`);
      return 1;
    }
    const { key, record } = await auth.keys.create(user.id, label === undefined ? {} : { name: label });
    output.out(
      `created key ${record.id} for ${user.name}\nAPI key (shown this once, only its hash is stored):\n\n    ${key}\n\n`,
    );
    return 0;
  });
}

/** `parley keys list [--user <name>]`: ids, owners, labels, prefixes; never the keys. */
export function keysList(
  configDir: string | undefined,
  userName: string | undefined,
  output: CommandOutput = processOutput,
): Promise<number> {
  return withAuth(configDir, async (auth) => {
    const users = new Map((await auth.users.list()).map((user) => [user.id, user.name]));
    let userId: string | undefined;
    if (userName !== undefined) {
      userId = (await auth.users.findByName(userName))?.id;
      if (userId === undefined) {
        output.error(`no user named "${userName}"\n`);
        return 1;
      }
    }
    const keys = await auth.keys.list(userId === undefined ? {} : { userId });
    output.out(
      table([
        ['ID', 'USER', 'NAME', 'PREFIX', 'CREATED', 'STATUS'],
        ...keys.map((k) => [
          k.id,
          users.get(k.userId) ?? k.userId,
          k.name,
          `${k.prefix}…`,
          k.createdAt,
          k.revoked ? 'revoked' : 'active',
        ]),
      ]),
    );
    return 0;
  });
}

/** `parley keys revoke <key-id>`. */
export function keysRevoke(
  configDir: string | undefined,
  keyId: string | undefined,
  output: CommandOutput = processOutput,
): Promise<number> {
  if (keyId === undefined) {
    output.error('usage: parley keys revoke <key-id>   (parley keys list shows the ids)\n');
    return Promise.resolve(2);
  }
  return withAuth(configDir, async (auth) => {
    const revoked = await auth.keys.revoke(keyId);
    if (revoked === undefined) {
      output.error(`no key with id "${keyId}"\n`);
      return 1;
    }
    output.out(`revoked key ${revoked.id} (${revoked.prefix}…)\n`);
    return 0;
  });
}
