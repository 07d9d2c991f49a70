import { randomFillSync } from 'node:crypto';

let lastMillis = 0;
let sequence = 0;
/** `xxxxxxxx-xxxx-` for `lastMillis`: formatting a number as hex is slow, and it changes once a millisecond. */
let timePrefix = '';

// Random bytes come from a pool refilled in one call: asking the CSPRNG for 16 bytes per id cost ~3 µs,
// more than the rest of an event's trip through the bus (crypto.randomUUID pools its entropy the same way).
const POOL_BYTES = 8 * 1024;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let poolOffset = POOL_BYTES;
const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

function setMillis(millis: number): void {
  lastMillis = millis;
  const time = millis.toString(16).padStart(12, '0');
  timePrefix = `${time.slice(0, 8)}-${time.slice(8)}-`;
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
  const random = pool;
  return (
    `${timePrefix}${HEX[0x70 | (sequence >> 8)]}${HEX[sequence & 0xff]}-` +
    `${HEX[0x80 | (random[offset]! & 0x3f)]}${HEX[random[offset + 1]!]}-${HEX[random[offset + 2]!]}` +
    `${HEX[random[offset + 3]!]}${HEX[random[offset + 4]!]}${HEX[random[offset + 5]!]}` +
    `${HEX[random[offset + 6]!]}${HEX[random[offset + 7]!]}`
  );
}
