import { inArray } from "drizzle-orm";
import type { Principal } from "../auth/rbac";
import type { TokenSigner } from "../auth/tokens";
import { apiKeys, type DecisionRow } from "../db/schema";
import { conflict } from "../http/errors";
import { RECEIPT_TYPE } from "./receipt-format";
import { RECEIPT_OUTCOMES, type ReceiptClaims } from "./schemas";
import { type DecisionDeps, getDecision } from "./service";

/**
 * Signed decision receipts: a compact JWS (EdDSA by default, the service-token key set, published at
 * /.well-known/jwks.json) that proves offline that a decision reached an outcome over exactly one
 * payload hash. The receipt is signed when asked for, from the stored final row only (the claims
 * hold no "now"), so it needs no write on the decision path: the same row and key always give the
 * same claims, and with Ed25519 the same bytes. A receipt fetched before a key rotation keeps
 * verifying while the retired key is published; one fetched later is signed with the new key.
 */
type FinalOutcome = (typeof RECEIPT_OUTCOMES)[number];
const isFinal = (status: DecisionRow["status"]): status is FinalOutcome => (RECEIPT_OUTCOMES as readonly string[]).includes(status);

/** Who settled a final decision, before key ids are given their names. */
type Decider = { type: "people"; keyIds: string[] } | { type: "timeout" };

function deciderOf(row: DecisionRow): Decider {
  // Approved without a resolving key: on_timeout "approve" settled it. Expired always is the deadline.
  if (row.status === "expired" || row.resolvedBy === null) return { type: "timeout" };
  // An approval is the quorum's; a rejection or a cancellation is one key's.
  return { type: "people", keyIds: row.status === "approved" ? row.approvals : [row.resolvedBy] };
}

/** The receipt's claims for a final row; `names` maps key ids to key names (null when a key is gone). */
export function receiptClaims(row: DecisionRow & { status: FinalOutcome }, issuer: string, names: Map<string, string>): ReceiptClaims {
  // Every transition to a final state sets resolved_at (updated_at would not do: consuming moves it).
  const resolvedAt = row.resolvedAt!;
  const decider = deciderOf(row);
  return {
    iss: issuer,
    sub: row.id,
    iat: Math.floor(resolvedAt.getTime() / 1000),
    kind: row.kind,
    outcome: row.status,
    payload_hash: row.approvedPayloadHash ?? row.payloadHash,
    requested_payload_hash: row.payloadHash,
    decided_by:
      decider.type === "people"
        ? { type: "people", people: decider.keyIds.map((keyId) => ({ key_id: keyId, name: names.get(keyId) ?? null })) }
        : decider,
    quorum: { required: row.requiredApprovals, approvals: row.approvals.length },
    requester_key_id: row.requesterKeyId,
    decided_at: resolvedAt.toISOString(),
  };
}

export interface IssuedReceipt {
  decision_id: string;
  receipt: string;
  kid: string;
  claims: ReceiptClaims;
}

/** The signed receipt of a decision the caller may see; 409 while it is still pending. */
export async function decisionReceipt(deps: DecisionDeps, signer: TokenSigner, principal: Principal, id: string): Promise<IssuedReceipt> {
  const row = await getDecision(deps, principal, id);
  return receiptOf(deps, signer, row);
}

/** The signed receipt of a row already read for the caller (the MCP tools hold one). */
export async function receiptOf(deps: DecisionDeps, signer: TokenSigner, row: DecisionRow): Promise<IssuedReceipt> {
  const { status } = row;
  if (!isFinal(status)) {
    throw conflict("decision_not_final", "the decision has no receipt until it is approved, rejected, expired or cancelled", { status });
  }
  const decider = deciderOf(row);
  const keyIds = decider.type === "people" ? decider.keyIds : [];
  const names = new Map<string, string>();
  if (keyIds.length > 0) {
    const rows = await deps.database.db.select({ id: apiKeys.id, name: apiKeys.name }).from(apiKeys).where(inArray(apiKeys.id, keyIds));
    for (const key of rows) names.set(key.id, key.name);
  }
  const claims = receiptClaims({ ...row, status }, deps.config.TOKEN_ISSUER, names);
  const { jws, kid } = await signer.signStatement(RECEIPT_TYPE, claims);
  return { decision_id: row.id, receipt: jws, kid, claims };
}
