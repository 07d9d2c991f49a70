/**
 * The binary form of one encrypted record (a value written, or one chunk appended):
 *
 *   version (1 byte, 1) | data key id length (1 byte) | data key id (ASCII) | nonce (12) | tag (16) | ciphertext
 *
 * The data key id names which of the owner's data keys sealed it (data-keys.ts); the data key's own file
 * names the master key that wraps it, so rotating master keys never touches records. The ciphertext is as
 * long as the plaintext (GCM is a stream mode): a record costs 30 bytes plus the id over its plaintext.
 */

import { NONCE_BYTES, type Sealed, TAG_BYTES } from './aes-gcm.ts';

/** The record format written today. A reader refuses any other. */
export const RECORD_VERSION = 1;

/** A record's parts. */
export interface EncryptedRecord extends Sealed {
  version: number;
  /** The id of the data key that sealed it. */
  dataKeyId: string;
}

const HEADER_BYTES = 2;

/** The bytes of `record`. */
export function encodeRecord(record: Omit<EncryptedRecord, 'version'>): Uint8Array {
  const id = Buffer.from(record.dataKeyId, 'latin1');
  if (id.length === 0 || id.length > 255) throw new RangeError('a data key id is 1 to 255 bytes');
  const bytes = new Uint8Array(HEADER_BYTES + id.length + NONCE_BYTES + TAG_BYTES + record.ciphertext.length);
  bytes[0] = RECORD_VERSION;
  bytes[1] = id.length;
  let at = HEADER_BYTES;
  for (const part of [id, record.nonce, record.tag, record.ciphertext]) {
    bytes.set(part, at);
    at += part.length;
  }
  return bytes;
}

/** The parts of `bytes`, or `undefined` when they are not a record of a version this code reads. */
export function decodeRecord(bytes: Uint8Array): EncryptedRecord | undefined {
  if (bytes.length < HEADER_BYTES || bytes[0] !== RECORD_VERSION) return undefined;
  const idLength = bytes[1]!;
  const nonceAt = HEADER_BYTES + idLength;
  const tagAt = nonceAt + NONCE_BYTES;
  const ciphertextAt = tagAt + TAG_BYTES;
  if (idLength === 0 || bytes.length < ciphertextAt) return undefined;
  return {
    version: RECORD_VERSION,
    dataKeyId: Buffer.from(bytes.subarray(HEADER_BYTES, nonceAt)).toString('latin1'),
    nonce: bytes.subarray(nonceAt, tagAt),
    tag: bytes.subarray(tagAt, ciphertextAt),
    ciphertext: bytes.subarray(ciphertextAt),
  };
}
