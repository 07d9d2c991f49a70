/**
 * `parley encryption status|rotate|shred`: encryption at rest's key management, on the configured storage
 * directly (no server needed). `rotate` re-wraps every data key under `security.encryption.active_key_id`,
 * after which older master keys can be removed from config; `shred` destroys a user's data keys, so what
 * they sealed (in storage, in backups, in copies) can never be read again. Both are recorded in the audit
 * log. A running server keeps data keys it has unwrapped for `security.encryption.data_key_cache.ttl_ms`.
 */

import type { EncryptionAtRest } from '../security/encryption-at-rest.ts';
import { type AuthCommandContext, type CommandOutput, processOutput, withAuth } from './auth-commands.ts';

const OFF = 'encryption at rest is off: security.encryption.keys holds no master key (docs/operations.md)\n';

/** Runs `action` with encryption at rest; exit 1 with OFF when no master key is set. */
function withEncryption(
  configDir: string | undefined,
  output: CommandOutput,
  action: (context: AuthCommandContext & { encryption: EncryptionAtRest }) => Promise<number>,
): Promise<number> {
  return withAuth(configDir, async (context) => {
    const { encryption } = context;
    if (encryption === undefined) {
      output.error(OFF);
      return 1;
    }
    return action({ ...context, encryption });
  });
}

/** `parley encryption status`: the master keys and how many data keys each wraps. */
export function encryptionStatus(
  configDir: string | undefined,
  output: CommandOutput = processOutput,
): Promise<number> {
  return withEncryption(configDir, output, async ({ encryption }) => {
    const { byMasterKey, shredded } = await encryption.dataKeys.status();
    const lines = [`active master key: ${encryption.ring.activeId}`, 'data keys by master key:'];
    const ids = new Set([...encryption.ring.ids, ...Object.keys(byMasterKey)]);
    for (const id of [...ids].sort()) {
      const configured = encryption.ring.ids.includes(id) ? '' : '  (NOT CONFIGURED: its data is unreadable)';
      lines.push(`  ${id}: ${byMasterKey[id] ?? 0}${configured}`);
    }
    lines.push(`shredded data keys: ${shredded}`);
    output.out(`${lines.join('\n')}\n`);
    return 0;
  });
}

/** `parley encryption rotate`: re-wraps every data key under the active master key. */
export function encryptionRotate(
  configDir: string | undefined,
  output: CommandOutput = processOutput,
): Promise<number> {
  return withEncryption(configDir, output, async ({ encryption, record }) => {
    const { rewrapped, alreadyActive } = await encryption.dataKeys.rewrap();
    const activeId = encryption.ring.activeId;
    await record('encryption.rotated', { masterKeyId: activeId }, { rewrapped });
    const removable = encryption.ring.ids.filter((id) => id !== activeId);
    output.out(
      `re-wrapped ${rewrapped} data keys under master key ${activeId} (${alreadyActive} were already)\n` +
        (removable.length === 0
          ? ''
          : `no data key is wrapped by ${removable.join(', ')} now: remove it from security.encryption.keys (keep backups made before this under it)\n`),
    );
    return 0;
  });
}

/** `parley encryption shred --user <name or id> --yes`: destroys the user's data keys. */
export function encryptionShred(
  configDir: string | undefined,
  user: string | undefined,
  confirmed: boolean,
  output: CommandOutput = processOutput,
): Promise<number> {
  if (user === undefined) {
    output.error('usage: parley encryption shred --user <name or id> --yes\n');
    return Promise.resolve(2);
  }
  return withEncryption(configDir, output, async ({ auth, encryption, record }) => {
    // A name, an existing user's id, or the id of a user whose record is already gone.
    const found = (await auth.users.findByName(user)) ?? (await auth.users.get(user));
    const userId = found?.id ?? user;
    if (found === undefined && !/^[0-9a-f-]{36}$/.test(user)) {
      output.error(`no user named or with id "${user}" (parley users list shows them)\n`);
      return 1;
    }
    if (!confirmed) {
      output.error(
        `this destroys the data keys of user ${found?.name ?? userId} (${userId}): their sessions, memories and index become unreadable for good, backups included. Run again with --yes to do it.\n`,
      );
      return 2;
    }
    const destroyed = await encryption.dataKeys.shred({ kind: 'user', userId });
    await record('encryption.user_shredded', { userId }, { dataKeys: destroyed });
    output.out(
      `destroyed ${destroyed} data keys of ${found?.name ?? userId}: their encrypted data cannot be read\n`,
    );
    return 0;
  });
}

/**
 * `parley encryption seal-plaintext`: seals the sensitive values stored in plaintext before encryption was
 * turned on (each rewritten whole), so `security.encryption.plaintext_reads` can be turned off. Run it with
 * the servers stopped: a log appended to while it is rewritten would lose those lines.
 */
export function encryptionSealPlaintext(
  configDir: string | undefined,
  output: CommandOutput = processOutput,
): Promise<number> {
  return withEncryption(configDir, output, async ({ encryption, record }) => {
    let sealed = 0;
    const keys = await encryption.storage.list('');
    for (const key of keys) if (await encryption.storage.sealPlaintext(key)) sealed += 1;
    await record('encryption.plaintext_sealed', {}, { values: sealed });
    output.out(`sealed ${sealed} values stored in plaintext (of ${keys.length} keys)\n`);
    return 0;
  });
}
