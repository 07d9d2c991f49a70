/**
 * `parley users create|list`, `parley keys create|list|revoke` and `parley audit verify`: manage users and
 * API keys directly in the configured storage (no server needed), recorded in the audit log as done by the
 * `cli` (with the OS user's name). Keys are printed once, when created; only their hashes are kept. A
 * running server sees a revoked key refused once its storage cache entry expires (storage.cache.ttl_ms);
 * `DELETE /v1/keys/:id` on the server itself takes effect at once.
 */

import { userInfo } from 'node:os';
import { loadConfig } from '../core/config.ts';
import { discoverConfiguredModules } from '../platform/discover-modules.ts';
import { createPlatformStorage } from '../platform/platform-storage.ts';
import { AUDIT_STORAGE_ROOT, type AuditActor, type AuditLog, createAuditLog } from '../security/audit-log.ts';
import { type Auth, createAuth } from '../security/auth.ts';
import type { EncryptionAtRest } from '../security/encryption-at-rest.ts';
import { USER_ROLES, type UserRole } from '../security/users.ts';
import { scopeStorage } from '../storage/scoped.ts';

/** Where the commands write: stdout for results, stderr for problems. */
export interface CommandOutput {
  out(text: string): void;
  error(text: string): void;
}

export const processOutput: CommandOutput = {
  out: (text) => process.stdout.write(text),
  error: (text) => process.stderr.write(text),
};

/** What the commands work with: users and keys, and where to record what they change. */
export interface AuthCommandContext {
  auth: Auth;
  /** Encryption at rest; undefined while no master key is configured. */
  encryption: EncryptionAtRest | undefined;
  /** The audit log; undefined when security.audit.enabled is false. */
  audit: AuditLog | undefined;
  /** Records a change made by this command (nothing when the audit log is off). */
  record(action: string, target: Record<string, string>, details?: Record<string, unknown>): Promise<void>;
}

/** The OS user running the command: who the audit log names. */
function cliActor(): AuditActor {
  try {
    return { type: 'cli', name: userInfo().username };
  } catch {
    return { type: 'cli' };
  }
}

/** Opens the users, keys and audit log of the configured storage, runs `action`, closes the storage. */
export async function withAuth(
  configDir: string | undefined,
  action: (context: AuthCommandContext) => Promise<number>,
): Promise<number> {
  const { definitions } = await discoverConfiguredModules(configDir === undefined ? {} : { configDir });
  const config = loadConfig({
    ...(configDir === undefined ? {} : { configDir }),
    modules: [...definitions.values()].map((definition) => ({
      name: definition.info.name,
      ...(definition.defaults === undefined ? {} : { defaults: definition.defaults }),
      schema: definition.configSchema,
    })),
  });
  const { storage, encryption } = await createPlatformStorage(config);
  const audit = config.security.audit.enabled
    ? createAuditLog(scopeStorage(storage, AUDIT_STORAGE_ROOT))
    : undefined;
  const actor = cliActor();
  try {
    return await action({
      auth: createAuth(storage),
      encryption,
      audit,
      async record(action, target, details) {
        await audit?.record({ actor, action, target, ...(details === undefined ? {} : { details }) });
      },
    });
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
  return withAuth(configDir, async ({ auth, record }) => {
    const user = await auth.users.create({ name, ...(role === undefined ? {} : { role: role as UserRole }) });
    await record('user.created', { userId: user.id, name: user.name }, { role: user.role });
    const { key, record: keyRecord } = await auth.keys.create(user.id);
    await record('key.created', { keyId: keyRecord.id, userId: user.id });
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
  return withAuth(configDir, async ({ auth }) => {
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
  return withAuth(configDir, async ({ auth, record }) => {
    const user = await auth.users.findByName(userName);
    if (user === undefined) {
      output.error(`no user named "${userName}" (parley users list shows them)\n`);
      return 1;
    }
    const { key, record: keyRecord } = await auth.keys.create(
      user.id,
      label === undefined ? {} : { name: label },
    );
    await record('key.created', { keyId: keyRecord.id, userId: user.id });
    output.out(
      `created key ${keyRecord.id} for ${user.name}\nAPI key (shown this once, only its hash is stored):\n\n    ${key}\n\n`,
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
  return withAuth(configDir, async ({ auth }) => {
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
  return withAuth(configDir, async ({ auth, record }) => {
    const revoked = await auth.keys.revoke(keyId);
    if (revoked === undefined) {
      output.error(`no key with id "${keyId}"\n`);
      return 1;
    }
    await record('key.revoked', { keyId: revoked.id, userId: revoked.userId });
    output.out(`revoked key ${revoked.id} (${revoked.prefix}…)\n`);
    return 0;
  });
}

/**
 * `parley audit verify`: checks every chain of the audit log and the references between them. Exit 0 when
 * intact; 1 with each problem (chain, line, what is wrong) otherwise.
 */
export function auditVerify(
  configDir: string | undefined,
  output: CommandOutput = processOutput,
): Promise<number> {
  return withAuth(configDir, async ({ audit }) => {
    if (audit === undefined) {
      output.error('the audit log is off (security.audit.enabled is false)\n');
      return 1;
    }
    const { chains, entries, problems } = await audit.verify();
    if (problems.length === 0) {
      output.out(`audit log intact: ${entries} entries in ${chains} chains\n`);
      return 0;
    }
    output.error(
      `audit log damaged: ${problems.length} problems in ${entries} entries of ${chains} chains\n`,
    );
    for (const problem of problems) {
      output.error(
        `  chain ${problem.chain}${problem.line === undefined ? '' : `, line ${problem.line}`}: ${problem.problem}\n`,
      );
    }
    return 1;
  });
}
