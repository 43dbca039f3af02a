import { createLocalJWKSet, type JSONWebKeySet, jwtVerify } from "jose";
import { canonicalHash } from "../decisions/canonical-json";
import { RECEIPT_TYPE } from "../decisions/receipt-format";
import type { Transport } from "./transport";
import type { DecisionReceipt, ReceiptClaims } from "./types";

/** Why a receipt was refused. */
export type ReceiptErrorCode = "invalid_receipt" | "unknown_key" | "payload_mismatch" | "wrong_decision";

export class ReceiptError extends Error {
  constructor(
    readonly code: ReceiptErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "ReceiptError";
  }
}

export interface VerifyReceiptOptions {
  /** Arbiter's JSON Web Key Set (GET /.well-known/jwks.json), fetched earlier and cached: verifying needs no network */
  jwks: JSONWebKeySet;
  /** the payload about to be executed: its canonical hash must be the one the receipt was signed over */
  payload: unknown;
  /** the decision the caller expects: a receipt for any other decision is refused */
  decisionId?: string;
  /** the issuer to expect (the server's TOKEN_ISSUER); unchecked when omitted */
  issuer?: string;
}

export interface VerifiedReceipt {
  /** true only for an `approved` outcome; the other outcomes verify too, as proof of the refusal */
  approved: boolean;
  claims: ReceiptClaims;
  kid: string;
}

const OUTCOMES = new Set(["approved", "rejected", "expired", "cancelled"]);

/**
 * Verifies a decision receipt offline: its signature against the JWKS (EdDSA or ES256, by `kid`),
 * its `typ`, its claims' shape, the decision id (when given) and that `payload` is exactly what was
 * decided on. Throws ReceiptError on any mismatch; check `approved` before acting.
 */
export async function verifyReceipt(receipt: string, options: VerifyReceiptOptions): Promise<VerifiedReceipt> {
  if (typeof receipt !== "string" || receipt.split(".").length !== 3) throw new ReceiptError("invalid_receipt", "not a compact JWS");
  let verified: Awaited<ReturnType<typeof jwtVerify>>;
  try {
    verified = await jwtVerify(receipt, createLocalJWKSet(options.jwks), {
      algorithms: ["EdDSA", "ES256"],
      typ: RECEIPT_TYPE,
      ...(options.issuer === undefined ? {} : { issuer: options.issuer }),
      requiredClaims: ["iss", "sub", "iat"],
    });
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ERR_JWKS_NO_MATCHING_KEY" || code === "ERR_JWKS_MULTIPLE_MATCHING_KEYS") {
      throw new ReceiptError("unknown_key", "no key of the JWKS matches the receipt's kid: refresh the JWKS, or the receipt is forged");
    }
    throw new ReceiptError("invalid_receipt", `the receipt does not verify: ${(error as Error).message}`);
  }
  const claims = verified.payload as unknown as ReceiptClaims;
  if (
    typeof claims.payload_hash !== "string" ||
    !OUTCOMES.has(claims.outcome) ||
    typeof claims.decided_by !== "object" ||
    claims.decided_by === null
  ) {
    throw new ReceiptError("invalid_receipt", "the receipt's claims are not a decision receipt's");
  }
  if (options.decisionId !== undefined && claims.sub !== options.decisionId) {
    throw new ReceiptError("wrong_decision", `the receipt is for decision ${claims.sub}, not ${options.decisionId}`);
  }
  if (canonicalHash(options.payload) !== claims.payload_hash) {
    throw new ReceiptError("payload_mismatch", "the payload is not the one this receipt was signed over");
  }
  return { approved: claims.outcome === "approved", claims, kid: verified.protectedHeader.kid ?? "" };
}

/**
 * Receipts over the API. `verify` fetches the JWKS once and keeps it; a receipt signed with a key
 * the cached set lacks (a rotation since) refreshes it once before failing.
 */
export class ReceiptsApi {
  private jwksCache: Promise<JSONWebKeySet> | undefined;

  constructor(private readonly http: Transport) {}

  /** The signed receipt of a final decision (409 `decision_not_final` while pending). */
  get(decisionId: string, options: { signal?: AbortSignal } = {}): Promise<DecisionReceipt> {
    return this.http.send("GET", `/v1/decisions/${encodeURIComponent(decisionId)}/receipt`, options);
  }

  /** The server's public keys; store them for offline verification. */
  jwks(options: { signal?: AbortSignal } = {}): Promise<JSONWebKeySet> {
    return this.http.send("GET", "/.well-known/jwks.json", options);
  }

  /** verifyReceipt with this server's JWKS, cached. */
  async verify(receipt: string, options: Omit<VerifyReceiptOptions, "jwks">): Promise<VerifiedReceipt> {
    const cached = this.jwksCache;
    try {
      return await verifyReceipt(receipt, { ...options, jwks: await (this.jwksCache ??= this.fetchJwks()) });
    } catch (error) {
      if (!(error instanceof ReceiptError) || error.code !== "unknown_key" || cached === undefined) throw error;
      this.jwksCache = this.fetchJwks();
      return verifyReceipt(receipt, { ...options, jwks: await this.jwksCache });
    }
  }

  private fetchJwks(): Promise<JSONWebKeySet> {
    const fetched = this.jwks();
    fetched.catch(() => {
      this.jwksCache = undefined;
    });
    return fetched;
  }
}
