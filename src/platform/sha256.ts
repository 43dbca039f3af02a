import { sha256 } from "@noble/hashes/sha2.js";
import { utf8ToBytes } from "@noble/hashes/utils.js";

/**
 * SHA-256 of a string, synchronously. Every authenticated request hashes the presented key, so the
 * runtime's native digest is used where it offers a synchronous one (Bun: about a third of the
 * pure-JS time); elsewhere (Deno, Node, fetch-only edges) the audited pure-JS @noble/hashes.
 * Web Crypto's digest is async-only, and config parsing needs the hash synchronously.
 */
const native = typeof Bun !== "undefined" ? (text: string): Uint8Array => Bun.SHA256.hash(text) as Uint8Array : undefined;

export const sha256Bytes: (text: string) => Uint8Array = native ?? ((text) => sha256(utf8ToBytes(text)));
