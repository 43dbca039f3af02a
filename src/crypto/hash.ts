import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js";
import { sha256Bytes } from "../platform/sha256";

/**
 * Hashing and comparison the core needs synchronously (config parsing hashes bootstrap keys, the
 * auth hot path hashes every presented key). Web Crypto is async-only and `node:crypto` is not on
 * every fetch-only platform: SHA-256 comes from src/platform/sha256.ts (native on Bun, the audited
 * pure-JS @noble/hashes elsewhere), HMAC from @noble/hashes everywhere.
 */

export const sha256Hex = (text: string): string => bytesToHex(sha256Bytes(text));

export const hmacSha256Hex = (secret: string, message: string): string =>
  bytesToHex(hmac(sha256, utf8ToBytes(secret), utf8ToBytes(message)));

/**
 * Byte equality whose running time depends only on the lengths, never on where the inputs differ
 * (every byte is visited and differences are OR-ed together, with no early exit).
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i]! ^ b[i]!;
  return difference === 0;
}

/** Two strings (digests in hex, say) compared in time that depends on their length only, without encoding either. */
export function constantTimeEqualText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

/** Two secrets compared in constant time: their digests make the lengths equal, so even length does not leak. */
export const secretsEqual = (presented: string, expected: string): boolean =>
  constantTimeEqual(sha256Bytes(presented), sha256Bytes(expected));
