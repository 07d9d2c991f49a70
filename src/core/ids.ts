import { randomFillSync } from 'node:crypto';

let lastMillis = 0;
let sequence = 0;

// Random bytes come from a pool refilled in one call: asking the CSPRNG for 16 bytes per id cost ~3 µs,
// more than the rest of an event's trip through the bus (crypto.randomUUID pools its entropy the same way).
const POOL_BYTES = 8 * 1024;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let poolOffset = POOL_BYTES;

// The id is written as ASCII into one buffer and decoded once: that yields a flat string, where joining
// hex pieces yields a rope that every later comparison or hash must flatten first (twice the cost).
const HEX_DIGITS = Buffer.from('0123456789abcdef');
const text = Buffer.alloc(36, '-');

function putByte(position: number, byte: number): void {
  text[position] = HEX_DIGITS[byte >>> 4]!;
  text[position + 1] = HEX_DIGITS[byte & 0x0f]!;
}

/** Writes the 48-bit millisecond timestamp (`xxxxxxxx-xxxx`); it changes at most once a millisecond. */
function setMillis(millis: number): void {
  lastMillis = millis;
  const high = Math.floor(millis / 0x10000);
  putByte(0, (high >>> 24) & 0xff);
  putByte(2, (high >>> 16) & 0xff);
  putByte(4, (high >>> 8) & 0xff);
  putByte(6, high & 0xff);
  putByte(9, (millis >>> 8) & 0xff);
  putByte(11, millis & 0xff);
}

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then a 12-bit counter, then random bits. Ids made in
 * the same millisecond by this process still sort in creation order, which storage listings rely on.
 */
export function newId(): string {
  const now = Date.now();
  if (now <= lastMillis) {
    sequence++;
    if (sequence > 0xfff) {
      // The counter ran out within one millisecond: borrow the next millisecond, keeping the order.
      setMillis(lastMillis + 1);
      sequence = 0;
    }
  } else {
    setMillis(now);
    sequence = 0;
  }
  if (poolOffset + 8 > POOL_BYTES) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const offset = poolOffset;
  poolOffset += 8;
  putByte(14, 0x70 | (sequence >>> 8));
  putByte(16, sequence & 0xff);
  putByte(19, 0x80 | (pool[offset]! & 0x3f));
  putByte(21, pool[offset + 1]!);
  for (let index = 2; index < 8; index++) putByte(20 + 2 * index, pool[offset + index]!);
  return text.toString('latin1', 0, 36);
}

/** Ids that stand as one storage key segment as they are: letters, digits, `_` and `-`, up to 128. */
const ID_SEGMENT = /^[A-Za-z0-9_-]{1,128}$/;

/** Whether `value` can name a storage folder or file as it is (session, user, conversation ids). */
export function isIdSegment(value: string): boolean {
  return ID_SEGMENT.test(value);
}
