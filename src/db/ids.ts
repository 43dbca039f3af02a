/**
 * UUIDv7 (RFC 9562): 48-bit millisecond timestamp + random bits. Ids sort by creation time, which
 * keeps B-tree inserts local and makes `(created_at, id)` keyset pagination stable.
 * Implemented on Web Crypto so it runs on every runtime.
 */
let lastMs = 0;
let sequence = 0;
// A step back larger than this is a different timeline (an injected clock, a corrected system
// clock), not jitter: ids then follow the time they are given instead of staying pinned ahead.
const MAX_BACKSTEP_MS = 10_000;

/** two hex digits per byte value */
const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"));
// Random bytes are drawn from Web Crypto in blocks (one call per 455 ids instead of one per id):
// each id takes 9 of them, the same CSPRNG output as before.
const RANDOM_BLOCK = 4096;
const RANDOM_PER_ID = 9;
const random = new Uint8Array(RANDOM_BLOCK);
let randomAt = RANDOM_BLOCK;
let prefixMs = Number.NaN;
let prefix = "";

export function uuidv7(now: number = Date.now()): string {
  if (randomAt + RANDOM_PER_ID > RANDOM_BLOCK) {
    crypto.getRandomValues(random);
    randomAt = 0;
  }
  const r = randomAt;
  randomAt += RANDOM_PER_ID;
  if (now > lastMs || lastMs - now > MAX_BACKSTEP_MS) {
    lastMs = now;
    sequence = (random[r]! & 0x07) << 8; // random start, leaving headroom for the counter
  } else {
    // Same millisecond (or a small step back): a 12-bit counter in rand_a keeps ids monotonic,
    // spilling into the next millisecond when it runs out.
    sequence = (sequence + 1) & 0xfff;
    if (sequence === 0) lastMs += 1;
    now = lastMs;
  }
  // 48-bit milliseconds (the same text for every id of one millisecond), version 7 and the counter,
  // variant 10 and 62 random bits.
  if (now !== prefixMs) {
    prefixMs = now;
    prefix = `${HEX[(now / 2 ** 40) & 0xff]}${HEX[(now / 2 ** 32) & 0xff]}${HEX[(now >>> 24) & 0xff]}${HEX[(now >>> 16) & 0xff]}-${HEX[(now >>> 8) & 0xff]}${HEX[now & 0xff]}-`;
  }
  return `${prefix}${HEX[0x70 | ((sequence >>> 8) & 0x0f)]}${HEX[sequence & 0xff]}-${HEX[(random[r + 1]! & 0x3f) | 0x80]}${HEX[random[r + 2]!]}-${HEX[random[r + 3]!]}${HEX[random[r + 4]!]}${HEX[random[r + 5]!]}${HEX[random[r + 6]!]}${HEX[random[r + 7]!]}${HEX[random[r + 8]!]}`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (value: string): boolean => UUID.test(value);
