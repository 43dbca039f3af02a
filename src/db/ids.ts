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

export function uuidv7(now: number = Date.now()): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  if (now > lastMs || lastMs - now > MAX_BACKSTEP_MS) {
    lastMs = now;
    sequence = (bytes[6]! & 0x07) << 8; // random start, leaving headroom for the counter
  } else {
    // Same millisecond (or a small step back): a 12-bit counter in rand_a keeps ids monotonic,
    // spilling into the next millisecond when it runs out.
    sequence = (sequence + 1) & 0xfff;
    if (sequence === 0) lastMs += 1;
    now = lastMs;
  }
  bytes[0] = (now / 2 ** 40) & 0xff;
  bytes[1] = (now / 2 ** 32) & 0xff;
  bytes[2] = (now >>> 24) & 0xff;
  bytes[3] = (now >>> 16) & 0xff;
  bytes[4] = (now >>> 8) & 0xff;
  bytes[5] = now & 0xff;
  bytes[6] = 0x70 | ((sequence >>> 8) & 0x0f);
  bytes[7] = sequence & 0xff;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  // Every request gets one (its request id): a table lookup per byte, no intermediate strings.
  const h = (i: number) => HEX_BYTE[bytes[i]!]!;
  return `${h(0)}${h(1)}${h(2)}${h(3)}-${h(4)}${h(5)}-${h(6)}${h(7)}-${h(8)}${h(9)}-${h(10)}${h(11)}${h(12)}${h(13)}${h(14)}${h(15)}`;
}

const HEX_BYTE = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (value: string): boolean => UUID.test(value);
