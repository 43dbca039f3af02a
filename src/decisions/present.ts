import type { DecisionRow } from "../db/schema";

/** A decision as the API answers it (snake_case, ISO timestamps); webhooks send the same shape. */
export function presentDecision(row: DecisionRow) {
  return {
    id: row.id,
    kind: row.kind,
    title: row.title,
    payload: row.payload,
    payload_hash: row.payloadHash,
    context: row.context,
    priority: row.priority,
    status: row.status,
    escalation_level: row.escalationLevel,
    required_approvals: row.requiredApprovals,
    approvals: row.approvals,
    approver_people: row.approverPeople,
    requester_key_id: row.requesterKeyId,
    requester_person_id: row.requesterPersonId,
    escalate_after: row.escalateAfterSeconds ?? null,
    escalated_at: row.escalatedAt?.toISOString() ?? null,
    resolved_by: row.resolvedBy,
    resolution_reason: row.resolutionReason,
    approved_payload: row.approvedPayload ?? null,
    approved_payload_hash: row.approvedPayloadHash,
    effective_payload_hash: row.approvedPayloadHash ?? row.payloadHash,
    on_timeout: row.onTimeout,
    callback_url: row.callbackUrl,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
    expires_at: row.expiresAt.toISOString(),
    resolved_at: row.resolvedAt?.toISOString() ?? null,
    consumed_at: row.consumedAt?.toISOString() ?? null,
    decided_by: row.decidedBy ?? null,
    policy_id: row.policyId ?? null,
    policy_version: row.policyVersion ?? null,
    policy_evaluation: row.policyEvaluation ?? null,
  };
}
export type DecisionView = ReturnType<typeof presentDecision>;

const presentedJson = new WeakMap<DecisionRow, string>();

/**
 * The presented decision as JSON text, built once per row object: a row held in the local cache, or
 * the one settled row handed to every waiter on a decision, is serialised once, not per response.
 * Rows are never mutated after they are read, which is what makes the memo safe.
 */
export function decisionJson(row: DecisionRow): string {
  let text = presentedJson.get(row);
  if (text === undefined) presentedJson.set(row, (text = JSON.stringify(presentDecision(row))));
  return text;
}
