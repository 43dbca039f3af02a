import { constantTimeEqual, hmacSha256Hex } from "./hash";

/**
 * The webhook signature scheme, shared by the server that signs callbacks and the SDK that verifies
 * them (so the two cannot drift): `Arbiter-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`, where
 * the HMAC key is the shared secret and the signed string is `${t}.${raw body}`.
 */
export const SIGNATURE_HEADER = "Arbiter-Signature";
export const SIGNATURE_TOLERANCE_SECONDS = 300;

export function signWebhook(secret: string, timestampSeconds: number, body: string): string {
  const mac = hmacSha256Hex(secret, `${timestampSeconds}.${body}`);
  return `t=${timestampSeconds},v1=${mac}`;
}

/** What a receiver runs: true only for a fresh, authentic signature over exactly this raw body. */
export function verifyWebhookSignature(
  secret: string,
  header: string | null | undefined,
  body: string,
  nowSeconds: number,
  toleranceSeconds = SIGNATURE_TOLERANCE_SECONDS,
): boolean {
  if (!header) return false;
  const parts = new Map(header.split(",").map((part) => part.trim().split("=", 2) as [string, string]));
  const timestamp = Number(parts.get("t"));
  const given = parts.get("v1");
  if (!Number.isSafeInteger(timestamp) || !given || !/^[0-9a-f]{64}$/.test(given)) return false;
  if (Math.abs(nowSeconds - timestamp) > toleranceSeconds) return false;
  // Both sides are 64 lowercase hex characters here, so comparing their text compares the MACs.
  const text = new TextEncoder();
  return constantTimeEqual(text.encode(hmacSha256Hex(secret, `${timestamp}.${body}`)), text.encode(given));
}
