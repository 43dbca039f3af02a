import { z } from "@hono/zod-openapi";
import { DECISION_PRIORITIES, POLICY_OUTCOMES, POLICY_STATES } from "../db/schema";
import { IsoInstant } from "../http/instant";
import { EXPRESSION_MAX_CHARS } from "./engine";
import { REPLAY_MAX_DECISIONS } from "./service-limits";

/** Request and response shapes of the policies API. */

export const PolicyId = z
  .object({ id: z.uuid().openapi({ param: { name: "id", in: "path" }, example: "0193a5b2-7c1e-7d3a-9f4e-2b6c8d0e1f2a" }) })
  .strict();

export const PolicyVersionParams = z
  .object({
    id: z.uuid().openapi({ param: { name: "id", in: "path" } }),
    version: z.coerce
      .number()
      .int()
      .min(1)
      .max(2_147_483_647)
      .openapi({ param: { name: "version", in: "path" }, example: 1 }),
  })
  .strict();

const name = z.string().trim().min(1).max(120);
const expression = z.string().max(EXPRESSION_MAX_CHARS).openapi({
  description: "a CEL condition over decision, payload, context and now",
  example: 'decision.kind == "refund" && payload.amount < 100 && payload.env != "prod"',
});
const reason = z.string().trim().min(1).max(2000);
const position = z.number().int().min(0).max(1_000_000);

const ruleFields = {
  name,
  description: z.string().trim().max(2000).optional(),
  expression,
  outcome: z.enum(POLICY_OUTCOMES),
  /** shadow (the default) records what the rule would do without applying it */
  state: z.enum(POLICY_STATES).default("shadow"),
  position: position.optional().openapi({ description: "evaluation order, lowest first; default: after every other rule" }),
  reason: reason.optional(),
  required_approvals: z.number().int().min(1).max(5).optional(),
  priority: z.enum(DECISION_PRIORITIES).optional(),
  confirm_broad: z.boolean().optional().openapi({ description: "save an approve rule that matches nearly every decision (logged)" }),
};

export const CreatePolicyBody = z.object(ruleFields).strict().openapi("CreatePolicy");
export type CreatePolicyInput = z.output<typeof CreatePolicyBody>;

export const UpdatePolicyBody = z
  .object({
    name: name.optional(),
    description: z.string().trim().max(2000).nullable().optional(),
    expression: expression.optional(),
    outcome: z.enum(POLICY_OUTCOMES).optional(),
    state: z.enum(POLICY_STATES).optional(),
    position: position.optional(),
    reason: reason.nullable().optional(),
    required_approvals: z.number().int().min(1).max(5).nullable().optional(),
    priority: z.enum(DECISION_PRIORITIES).nullable().optional(),
    confirm_broad: z.boolean().optional(),
    expected_version: z.number().int().min(1).optional().openapi({ description: "refuse (409) unless the policy is at this version" }),
  })
  .strict()
  .openapi("UpdatePolicy");
export type UpdatePolicyInput = z.output<typeof UpdatePolicyBody>;

const range = {
  from: IsoInstant.transform((v) => new Date(v)),
  to: IsoInstant.transform((v) => new Date(v)).optional(),
  limit: z.number().int().min(1).max(REPLAY_MAX_DECISIONS).default(1000),
};

export const ReplayBody = z.object(range).strict().openapi("ReplayPolicy");
export type ReplayInput = z.output<typeof ReplayBody>;

export const PreviewBody = z
  .object({
    expression,
    outcome: z.enum(POLICY_OUTCOMES),
    reason: reason.optional(),
    required_approvals: z.number().int().min(1).max(5).optional(),
    priority: z.enum(DECISION_PRIORITIES).optional(),
    ...range,
  })
  .strict()
  .openapi("PreviewPolicy");
export type PreviewInput = z.output<typeof PreviewBody>;

export const PolicySchema = z
  .object({
    id: z.uuid(),
    version: z.number().int(),
    name: z.string(),
    description: z.string().nullable(),
    expression: z.string(),
    outcome: z.enum(POLICY_OUTCOMES),
    state: z.enum(POLICY_STATES),
    position: z.number().int(),
    reason: z.string().nullable(),
    required_approvals: z.number().int().nullable(),
    priority: z.enum(DECISION_PRIORITIES).nullable(),
    confirm_broad: z.boolean(),
    created_by: z.uuid().nullable(),
    created_at: z.string(),
    updated_at: z.string().optional().openapi({ description: "the current row only" }),
  })
  .openapi("Policy");

export const PolicyList = z.object({ data: z.array(PolicySchema) }).openapi("PolicyList");

const Outcome = z.enum(["approve", "deny", "require", "none", "error"]);

export const ReplayResult = z
  .object({
    policy_id: z.uuid().optional(),
    version: z.number().int().optional(),
    outcome: z.enum(POLICY_OUTCOMES),
    broad: z.boolean().optional(),
    from: z.string(),
    to: z.string(),
    truncated: z.boolean().openapi({ description: "more decisions lie in the range than `limit`: the newest were evaluated" }),
    evaluated: z.number().int(),
    approve: z.number().int(),
    deny: z.number().int(),
    require: z.number().int(),
    no_match: z.number().int(),
    errors: z.number().int(),
    differs: z.number().int().openapi({ description: "would approve what was rejected or expired, or deny what was approved" }),
    examples: z.array(
      z.object({
        decision_id: z.uuid(),
        kind: z.string(),
        created_at: z.string(),
        actual: z.object({ status: z.string(), decided_by: z.string().nullable(), policy_id: z.uuid().nullable() }),
        would: Outcome,
      }),
    ),
  })
  .openapi("PolicyReplay");
