/**
 * The record cipher of encrypted storage (storage/encrypted.ts): each record is sealed with AES-256-GCM
 * under its owner's current data key (data-keys.ts) and bound to its storage key, and written in the
 * record format of encrypted-record.ts, which names the data key that sealed it.
 */

import type { KeyObject } from 'node:crypto';
import { PlatformError } from '../core/errors.ts';
import { copyBytes } from '../storage/bytes.ts';
import type { RecordCipher } from '../storage/encrypted.ts';
import { openAesGcm, sealAesGcm } from './aes-gcm.ts';
import type { DataKey, DataKeyStore } from './data-keys.ts';
import { decodeRecord, type EncryptedRecord, encodeRecord } from './encrypted-record.ts';

/** What a record is bound to: its storage key (a record moved to another key fails to open). */
function recordContext(key: string): Uint8Array {
  return Buffer.from(`parley record v1\0${key}`);
}

function tampered(key: string): PlatformError {
  return new PlatformError(
    'CHAT_ERR_ENCRYPTION_RECORD_INVALID',
    'an encrypted record failed its integrity check: it was altered, truncated or moved',
    { details: { key } },
  );
}

/** The cipher sealing records with the data keys of `dataKeys`. */
export function createEnvelopeCipher(dataKeys: DataKeyStore): RecordCipher {
  function sealWith(dataKey: DataKey, key: string, plaintext: Uint8Array): Uint8Array {
    return encodeRecord({ dataKeyId: dataKey.id, ...sealAesGcm(dataKey.key, plaintext, recordContext(key)) });
  }

  function openWith(dataKey: KeyObject, key: string, record: EncryptedRecord): Uint8Array {
    const plaintext = openAesGcm(dataKey, record, recordContext(key));
    if (plaintext === undefined) throw tampered(key);
    return plaintext;
  }

  return {
    seal(owner, key, plaintext) {
      const current = dataKeys.current(owner);
      if (!(current instanceof Promise)) return sealWith(current, key, plaintext);
      const copy = copyBytes(plaintext); // the caller may reuse its bytes while the key loads
      return current.then((dataKey) => sealWith(dataKey, key, copy));
    },
    open(owner, key, bytes) {
      const record = decodeRecord(bytes);
      if (record === undefined) throw tampered(key);
      const dataKey = dataKeys.byId(owner, record.dataKeyId);
      return dataKey instanceof Promise
        ? dataKey.then((opened) => openWith(opened, key, record))
        : openWith(dataKey, key, record);
    },
  };
}
