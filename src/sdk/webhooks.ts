import { SIGNATURE_HEADER, SIGNATURE_TOLERANCE_SECONDS, verifyWebhookSignature } from "../crypto/webhook-signature";

export interface VerifyWebhookOptions {
  /** the shared secret (the server's WEBHOOK_SIGNING_SECRET) */
  secret: string;
  /** the request's headers: a Headers object or a plain record (as Node and most frameworks give them) */
  headers: Headers | Record<string, string | string[] | undefined>;
  /** the raw request body, exactly as received: before any JSON parsing */
  body: string;
  /** how far the signature's timestamp may be from now (replay window). Default 300 s. */
  toleranceSeconds?: number;
  /** the current time, for tests; default the system clock */
  now?: Date;
}

function headerValue(headers: VerifyWebhookOptions["headers"], name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  const wanted = name.toLowerCase();
  const entry = Object.entries(headers).find(([key]) => key.toLowerCase() === wanted)?.[1];
  return Array.isArray(entry) ? entry[0] : entry;
}

/**
 * True only when the callback carries a valid `Arbiter-Signature` over this exact body, made with
 * `secret`, and its timestamp is within `toleranceSeconds` of now. The MAC is compared in constant
 * time. Parse the body only after this returns true.
 */
export function verifyWebhook(options: VerifyWebhookOptions): boolean {
  const nowSeconds = Math.floor((options.now ?? new Date()).getTime() / 1000);
  return verifyWebhookSignature(
    options.secret,
    headerValue(options.headers, SIGNATURE_HEADER),
    options.body,
    nowSeconds,
    options.toleranceSeconds ?? SIGNATURE_TOLERANCE_SECONDS,
  );
}
