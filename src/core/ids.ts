import { randomBytes } from 'node:crypto';

let lastMillis = 0;
let sequence = 0;

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then a 12-bit counter, then random bits. Ids made in
 * the same millisecond by this process still sort in creation order, which storage listings rely on.
 */
export function newId(): string {
  let now = Date.now();
  if (now <= lastMillis) {
    sequence++;
    if (sequence > 0xfff) {
      // The counter ran out within one millisecond: borrow the next millisecond, keeping the order.
      lastMillis++;
      sequence = 0;
    }
    now = lastMillis;
  } else {
    lastMillis = now;
    sequence = 0;
  }
  const bytes = randomBytes(16);
  bytes.writeUIntBE(now, 0, 6);
  bytes[6] = 0x70 | (sequence >> 8);
  bytes[7] = sequence & 0xff;
  bytes[8] = 0x80 | ((bytes[8] ?? 0) & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
