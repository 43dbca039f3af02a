import { z } from "@hono/zod-openapi";
import { DECIDED_BY, DECISION_PRIORITIES, DECISION_STATUSES, TIMEOUT_ACTIONS } from "../db/schema";
import { IsoInstant } from "../http/instant";
import { PaginationQuery, pageSchema } from "../http/pagination";

/** Request and response shapes of the decisions API; they feed validation and the OpenAPI document. */

export const KIND_PATTERN = /^[a-z][a-z0-9_.-]{0,63}$/;
/** the most a decision may wait for a verdict via `?wait=`: below the common 60 s proxy idle limits */
export const MAX_WAIT_SECONDS = 55;
export const MAX_ESCALATION_LEVEL = 3;
export const CONTEXT_MAX_BYTES = 16 * 1024;
/** The largest decision a stream event carries, in UTF-8 bytes of its JSON: events stay bounded whatever the payload limit. */
export const EVENT_DECISION_MAX_BYTES = 64 * 1024;

/** Any JSON value (written out, not z.json(): the OpenAPI generator cannot follow its recursion). */
const JsonValue = z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(z.unknown()), z.record(z.string(), z.unknown())]);

export const DecisionId = z
  .object({ id: z.uuid().openapi({ param: { name: "id", in: "path" }, example: "0193a5b2-7c1e-7d3a-9f4e-2b6c8d0e1f2a" }) })
  .strict();

export const IdempotencyHeaders = z.object({
  "idempotency-key": z
    .string()
    .min(1)
    .max(255)
    .regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces")
    .optional()
    .openapi({
      param: { name: "idempotency-key", in: "header" },
      description: "a retry with the same key and body returns the first answer",
    }),
});

export const CreateDecisionBody = z
  .object({
    kind: z
      .string()
      .regex(KIND_PATTERN, "lowercase letters, digits, '_', '.', '-'; starts with a letter; at most 64")
      .openapi({ example: "deploy" }),
    title: z.string().trim().min(1).max(200),
    payload: JsonValue.openapi({ description: "what the caller asks to do; its canonical JSON is hashed (SHA-256)" }),
    context: z.record(z.string(), z.unknown()).default({}),
    priority: z.enum(DECISION_PRIORITIES).default("medium"),
    required_approvals: z.number().int().min(1).max(5).default(1),
    /** seconds until the decision times out and takes its on_timeout outcome */
    expires_in: z.number().int().min(1).optional(),
    on_timeout: z.enum(TIMEOUT_ACTIONS).default("reject"),
    callback_url: z.string().max(2048).optional(),
    escalate_after: z
      .number()
      .int()
      .min(10)
      .max(30 * 86_400)
      .optional()
      .openapi({ description: "seconds: when nobody decided within this long (of creation, then of each escalation), escalate one level" }),
  })
  .strict()
  .openapi("CreateDecision");
export type CreateDecisionInput = z.output<typeof CreateDecisionBody>;

export const ApproveBody = z
  .object({
    reason: z.string().trim().min(1).max(2000).optional(),
    /** an edited payload to approve instead of the requested one (single-approval decisions only) */
    payload: JsonValue.optional(),
  })
  .strict()
  .openapi("ApproveDecision");

export const RejectBody = z
  .object({ reason: z.string().trim().min(1).max(2000) })
  .strict()
  .openapi("RejectDecision");

export const ReasonBody = z
  .object({ reason: z.string().trim().min(1).max(2000).optional() })
  .strict()
  .openapi("DecisionReason");

export const WaitQuery = z
  .object({
    wait: z.coerce
      .number()
      .int()
      .min(0)
      .max(MAX_WAIT_SECONDS)
      .optional()
      .openapi({ param: { name: "wait", in: "query" }, description: `long-poll: seconds (≤ ${MAX_WAIT_SECONDS}) to wait while pending` }),
  })
  .strict();

const isoDate = IsoInstant.transform((v) => new Date(v));

export const ListQuery = PaginationQuery.extend({
  status: z.enum(DECISION_STATUSES).optional(),
  kind: z.string().regex(KIND_PATTERN).optional(),
  priority: z.enum(DECISION_PRIORITIES).optional(),
  requester: z.uuid().optional().openapi({ description: "requester key id" }),
  decided_by: z.enum(DECIDED_BY).optional().openapi({ description: "who gave the verdict: human, policy or timeout" }),
  policy_id: z.uuid().optional().openapi({ description: "decided by this policy" }),
  created_after: isoDate.optional(),
  created_before: isoDate.optional(),
}).strict();
export type ListFilters = z.output<typeof ListQuery>;

export const QueueQuery = PaginationQuery.strict();

export const StreamQuery = z
  .object({
    last_event_id: z.coerce
      .number()
      .int()
      .min(0)
      .optional()
      .openapi({ param: { name: "last_event_id", in: "query" }, description: "resume point when the Last-Event-ID header cannot be set" }),
  })
  .strict();

export const DecisionSchema = z
  .object({
    id: z.uuid(),
    kind: z.string(),
    title: z.string(),
    payload: z.unknown(),
    payload_hash: z.string().openapi({ description: "hex SHA-256 of the canonical JSON of payload" }),
    context: z.record(z.string(), z.unknown()),
    priority: z.enum(DECISION_PRIORITIES),
    status: z.enum(DECISION_STATUSES),
    escalation_level: z.number().int(),
    required_approvals: z.number().int(),
    approvals: z.array(z.uuid()).openapi({ description: "the keys that approved, in order" }),
    approver_people: z
      .array(z.uuid())
      .openapi({ description: "the distinct people behind those approvals (a key's operator, else the key): the quorum count" }),
    requester_key_id: z.uuid(),
    requester_person_id: z.uuid().openapi({ description: "the requester's person (or key); none of their keys may approve" }),
    escalate_after: z.number().int().nullable(),
    escalated_at: z.string().nullable(),
    resolved_by: z.uuid().nullable(),
    resolution_reason: z.string().nullable(),
    approved_payload: z.unknown().nullable(),
    approved_payload_hash: z.string().nullable(),
    /** what the requester may act on once approved: the edited payload when there is one */
    effective_payload_hash: z.string(),
    on_timeout: z.enum(TIMEOUT_ACTIONS),
    callback_url: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
    expires_at: z.string(),
    resolved_at: z.string().nullable(),
    consumed_at: z.string().nullable(),
    decided_by: z
      .enum(DECIDED_BY)
      .nullable()
      .openapi({ description: "who gave the verdict: people, a policy or the on_timeout default; null while pending or when cancelled" }),
    policy_id: z.uuid().nullable().openapi({ description: "the policy that decided, when decided_by is policy" }),
    policy_version: z.number().int().nullable().openapi({ description: "the version of that policy" }),
    policy_evaluation: z.record(z.string(), z.unknown()).nullable().openapi({
      description:
        "what the policies said at creation: `matched` (the enforced rule applied, or null), `shadow` (each shadow rule's would-be outcome), `errors`; null when no rule was active",
    }),
  })
  .openapi("Decision");

/** One Server-Sent Event's `data:` on the decision stream (its `event:` is `type`, its `id:` is `event_id`). */
export const DecisionEventSchema = z
  .object({
    event_id: z.number().int(),
    decision_id: z.uuid(),
    type: z.string().openapi({ example: "created" }),
    from_status: z.string().nullable(),
    to_status: z.string(),
    actor_key_id: z.uuid().nullable(),
    reason: z.string().nullable(),
    data: z.record(z.string(), z.unknown()),
    created_at: z.string(),
    decision: DecisionSchema.nullable().openapi({
      description:
        "the decision as GET /v1/decisions/{id} answers it, as stored when the stream read this event (never older than the event; " +
        `newer if later changes had committed by then); null when its JSON exceeds ${EVENT_DECISION_MAX_BYTES} bytes: read it with GET`,
    }),
  })
  .openapi("DecisionEvent");
export type DecisionEvent = z.output<typeof DecisionEventSchema>;

export const QueueItemSchema = z
  .object({
    id: z.uuid(),
    kind: z.string(),
    title: z.string(),
    priority: z.enum(DECISION_PRIORITIES),
    escalation_level: z.number().int(),
    required_approvals: z.number().int(),
    requester_key_id: z.uuid(),
    created_at: z.string(),
    expires_at: z.string(),
  })
  .openapi("QueuedDecision");

export const DecisionPage = pageSchema(DecisionSchema).openapi("DecisionPage");
export const QueuePage = pageSchema(QueueItemSchema).openapi("DecisionQueuePage");

/** Who made a final decision, as a signed receipt states it. */
export const ReceiptDecidedBy = z
  .discriminatedUnion("type", [
    z.object({
      type: z.literal("people"),
      /**
       * whose verdict settled it: the approvers of the quorum, the rejecter, or the requester that
       * cancelled; `key_id` is the key they used (their person id when they acted from Slack or email)
       */
      people: z.array(z.object({ key_id: z.uuid(), person_id: z.uuid(), name: z.string().nullable() })),
    }),
    z.object({ type: z.literal("policy"), policy_id: z.string(), policy_version: z.number().int() }),
    z.object({ type: z.literal("timeout") }),
  ])
  .openapi("ReceiptDecidedBy");

export const RECEIPT_OUTCOMES = ["approved", "rejected", "expired", "cancelled"] as const;

/** The claims of a decision receipt (the payload of its JWS). */
export const ReceiptClaimsSchema = z
  .object({
    iss: z.string(),
    sub: z.uuid().openapi({ description: "the decision id" }),
    iat: z.number().int().openapi({ description: "the decision's resolution time, in seconds" }),
    kind: z.string(),
    outcome: z.enum(RECEIPT_OUTCOMES),
    payload_hash: z.string().openapi({ description: "the effective payload hash: what the requester may act on" }),
    requested_payload_hash: z.string(),
    decided_by: ReceiptDecidedBy,
    quorum: z.object({ required: z.number().int(), approvals: z.number().int().openapi({ description: "distinct people who approved" }) }),
    requester_key_id: z.uuid(),
    decided_at: z.string().openapi({ description: "the resolution time, ISO 8601 with milliseconds" }),
  })
  .openapi("ReceiptClaims");
export type ReceiptClaims = z.output<typeof ReceiptClaimsSchema>;

export const ReceiptSchema = z
  .object({
    decision_id: z.uuid(),
    receipt: z.string().openapi({ description: "a compact JWS (typ arbiter-receipt+jwt) verifiable with /.well-known/jwks.json" }),
    kid: z.string(),
    claims: ReceiptClaimsSchema.openapi({ description: "the receipt's claims, decoded for convenience: verify the receipt itself" }),
  })
  .openapi("DecisionReceipt");
