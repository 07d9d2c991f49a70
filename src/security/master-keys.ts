/**
 * The master keys (key-encryption keys) of encryption at rest, from `security.encryption.keys`
 * (`{ "<key id>": "<base64 of 32 random bytes>" }`) and `active_key_id`. Master keys never encrypt data:
 * they wrap the per-user data keys (data-keys.ts), so rotating one re-wraps a few hundred bytes per user,
 * not every stored message. The id travels with each wrapped data key, which is how data wrapped by an
 * older master key stays readable while a newer one is active.
 */

import type { KeyObject } from 'node:crypto';
import { PlatformError } from '../core/errors.ts';
import { KEY_BYTES, secretKey } from './aes-gcm.ts';

/** The configured master keys and which one wraps new data keys. */
export interface MasterKeyRing {
  /** The id that wraps every new (or re-wrapped) data key. */
  readonly activeId: string;
  /** Every configured id, sorted. */
  readonly ids: readonly string[];
  /** The key with this id, or `undefined` when it is not configured. */
  get(id: string): KeyObject | undefined;
}

/** A key id: letters, digits, `.`, `_`, `-` (it is written beside every wrapped data key). */
export const MASTER_KEY_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const CANONICAL_BASE64 = /^[A-Za-z0-9+/]{43}=$/;

function invalid(path: string, message: string): PlatformError {
  // Never the value: it is a secret.
  return new PlatformError('CHAT_ERR_CONFIG_INVALID', message, { details: { path } });
}

/**
 * Builds the ring from config, checking each key is the base64 of exactly 32 bytes (what
 * `openssl rand -base64 32` prints) and that the active id names one of them (it may be left empty when
 * there is one key). Throws CHAT_ERR_CONFIG_INVALID naming the setting, never the key.
 */
export function createMasterKeyRing(
  keys: Readonly<Record<string, string>>,
  activeKeyId: string,
): MasterKeyRing {
  const ring = new Map<string, KeyObject>();
  for (const [id, encoded] of Object.entries(keys)) {
    const path = `security.encryption.keys.${id}`;
    if (!MASTER_KEY_ID_PATTERN.test(id)) {
      throw invalid(path, `the master key id "${id}" must be 1 to 64 letters, digits, ".", "_" or "-"`);
    }
    const key = typeof encoded === 'string' ? Buffer.from(encoded.trim(), 'base64') : undefined;
    if (key === undefined || !CANONICAL_BASE64.test(encoded.trim()) || key.length !== KEY_BYTES) {
      throw invalid(
        path,
        `${path} must be the base64 of ${KEY_BYTES} random bytes (openssl rand -base64 32)`,
      );
    }
    ring.set(id, secretKey(key));
  }
  const ids = [...ring.keys()].sort();
  const activeId = activeKeyId === '' && ids.length === 1 ? ids[0]! : activeKeyId;
  if (!ring.has(activeId)) {
    throw invalid(
      'security.encryption.active_key_id',
      activeKeyId === ''
        ? `security.encryption.active_key_id must name the key that wraps new data keys (one of ${ids.join(', ')})`
        : `security.encryption.active_key_id "${activeKeyId}" is not one of security.encryption.keys (${ids.join(', ')})`,
    );
  }
  return { activeId, ids, get: (id) => ring.get(id) };
}
