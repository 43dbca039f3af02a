import { sha256Hex } from "../crypto/hash";

/**
 * API key format: `arb_` + 43 base62 characters (256 bits from the CSPRNG) + 6 base62 characters of
 * CRC32 over the body. The prefix lets secret scanners spot leaked keys; the checksum rejects typos
 * and garbage before any lookup. Only the SHA-256 of the whole key is ever stored.
 * Pure functions only (no database), so configuration parsing can hash bootstrap keys.
 */
export const KEY_PREFIX = "arb_";
const BODY_LENGTH = 43;
const CHECKSUM_LENGTH = 6;
const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const KEY_PATTERN = new RegExp(`^${KEY_PREFIX}[0-9A-Za-z]{${BODY_LENGTH + CHECKSUM_LENGTH}}$`);

function base62(value: bigint, width: number): string {
  let out = "";
  let n = value;
  for (let i = 0; i < width; i++) {
    out = ALPHABET[Number(n % 62n)] + out;
    n /= 62n;
  }
  return out;
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[i] = c >>> 0;
  }
  return table;
})();

function crc32(text: string): number {
  let crc = 0xffffffff;
  for (const byte of new TextEncoder().encode(text)) crc = CRC_TABLE[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

const checksum = (body: string) => base62(BigInt(crc32(body)), CHECKSUM_LENGTH);

export function generateApiKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const value = bytes.reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
  const body = base62(value, BODY_LENGTH);
  return `${KEY_PREFIX}${body}${checksum(body)}`;
}

/** Shape and checksum only: true means "worth looking up", not "valid". */
export function isWellFormedApiKey(raw: string): boolean {
  if (!KEY_PATTERN.test(raw)) return false;
  const body = raw.slice(KEY_PREFIX.length, KEY_PREFIX.length + BODY_LENGTH);
  return raw.slice(KEY_PREFIX.length + BODY_LENGTH) === checksum(body);
}

/** Hex SHA-256 of the whole key: what the database stores and indexes. */
export function hashApiKeySync(raw: string): string {
  return sha256Hex(raw);
}

/** Shown in listings so people can tell keys apart; 8 characters of a 256-bit key reveal nothing useful. */
export const displayPrefixOf = (raw: string) => raw.slice(0, KEY_PREFIX.length + 8);
