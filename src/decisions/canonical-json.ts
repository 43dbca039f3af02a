import { sha256Hex } from "../crypto/hash";

/**
 * Canonical JSON (RFC 8785 style for the values JSON.parse produces): object keys sorted by UTF-16
 * code units, no whitespace, numbers and strings as JSON.stringify writes them. Two payloads that
 * mean the same thing hash the same, whatever key order or spacing the caller sent.
 */
export function canonicalJson(value: unknown, known?: ReadonlyMap<unknown, string>): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  // `known`: objects whose canonical JSON the caller already has, reused instead of written again.
  const text = known?.get(value);
  if (text !== undefined) return text;
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item, known)).join(",")}]`;
  const entries = Object.keys(value)
    .sort()
    .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
    .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key], known)}`);
  return `{${entries.join(",")}}`;
}

/** hex SHA-256 of a value's canonical JSON */
export const canonicalHash = (value: unknown): string => sha256Hex(canonicalJson(value));
