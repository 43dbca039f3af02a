import { inArray } from "drizzle-orm";
import type { Principal } from "../auth/rbac";
import type { TokenSigner } from "../auth/tokens";
import { apiKeys, type DecisionRow, operators } from "../db/schema";
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
type Decider = { type: "people"; keyIds: string[] } | { type: "policy"; policy_id: string; policy_version: number } | { type: "timeout" };

function deciderOf(row: DecisionRow): Decider {
  if (row.decidedBy === "policy" && row.policyId && row.policyVersion !== null) {
    return { type: "policy", policy_id: row.policyId, policy_version: row.policyVersion };
  }
  // Approved without a resolving key: on_timeout "approve" settled it. Expired always is the deadline.
  if (row.status === "expired" || row.resolvedBy === null) return { type: "timeout" };
  // An approval is the quorum's; a rejection or a cancellation is one key's.
  return { type: "people", keyIds: row.status === "approved" ? row.approvals : [row.resolvedBy] };
}

/** Who stands behind an acting key id: its name and person (null name when the key is gone). */
export interface Actor {
  name: string | null;
  personId: string;
}

/** The receipt's claims for a final row; `actors` maps the acting key ids to their names and people. */
export function receiptClaims(row: DecisionRow & { status: FinalOutcome }, issuer: string, actors: Map<string, Actor>): ReceiptClaims {
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
        ? {
            type: "people",
            people: decider.keyIds.map((keyId, index) => ({
              key_id: keyId,
              // An approval recorded its person beside its key; a rejection or cancellation is looked up.
              person_id: (row.status === "approved" ? row.approverPeople[index] : undefined) ?? actors.get(keyId)?.personId ?? keyId,
              name: actors.get(keyId)?.name ?? null,
            })),
          }
        : decider,
    quorum: { required: row.requiredApprovals, approvals: row.approverPeople.length },
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
  const actors = new Map<string, Actor>();
  if (keyIds.length > 0) {
    const db = deps.database.db;
    // A verdict given from Slack or email names the person itself where a key id would be.
    const [keys, people] = await Promise.all([
      db.select({ id: apiKeys.id, name: apiKeys.name, operatorId: apiKeys.operatorId }).from(apiKeys).where(inArray(apiKeys.id, keyIds)),
      db.select({ id: operators.id, name: operators.name }).from(operators).where(inArray(operators.id, keyIds)),
    ]);
    for (const person of people) actors.set(person.id, { name: person.name, personId: person.id });
    for (const key of keys) actors.set(key.id, { name: key.name, personId: key.operatorId ?? key.id });
  }
  const claims = receiptClaims({ ...row, status }, deps.config.TOKEN_ISSUER, actors);
  const { jws, kid } = await signer.signStatement(RECEIPT_TYPE, claims);
  return { decision_id: row.id, receipt: jws, kid, claims };
}
