import type { Counter, Histogram, Meter } from "@opentelemetry/api";
import { and, asc, desc, eq, gte, isNull, lt, ne, sql } from "drizzle-orm";
import type { Principal } from "../auth/rbac";
import type { Database } from "../db/client";
import { uuidv7 } from "../db/ids";
import {
  apiKeys,
  DECISION_PRIORITIES,
  type DecisionPriority,
  type DecisionRow,
  decisions,
  type PolicyRow,
  type PolicyVersionRow,
  policies,
  policyVersions,
} from "../db/schema";
import type { AppDeps } from "../deps";
import { ApiError, conflict, notFound } from "../http/errors";
import {
  type ActiveRule,
  type CompiledRule,
  compileRule,
  type Evaluation,
  evaluateRule,
  evaluateRules,
  isBroad,
  prepareInput,
  type RuleInput,
} from "./engine";
import type { CreatePolicyInput, PreviewInput, ReplayInput, UpdatePolicyInput } from "./schemas";
import { REPLAY_MAX_DECISIONS } from "./service-limits";

export type PolicyDeps = Pick<AppDeps, "database" | "clock" | "logger" | "meter">;

/** Saved policies at most (disabled ones included): every decision is evaluated against the active ones. */
export const MAX_POLICIES = 200;

// ── Compiled rules, per process ─────────────────────────────────────────────────────────────────
/** Compiled programs by policy id and version: a version never changes, so its program never does. */
const compiledCache = new Map<string, CompiledRule>();
function compiledOf(row: Pick<PolicyRow, "id" | "version" | "expression">): CompiledRule | undefined {
  const key = `${row.id}:${row.version}`;
  let compiled = compiledCache.get(key);
  if (!compiled) {
    const result = compileRule(row.expression);
    if ("problem" in result) return undefined; // saved rules always compile; a future library change fails closed
    compiled = result.rule;
    if (compiledCache.size > 10_000) compiledCache.clear();
    compiledCache.set(key, compiled);
  }
  return compiled;
}

/**
 * The rules in force, in order, read now (one small query); compiling is cached per version. A
 * create uses the copy its process keeps instead (in-force.ts), checked current by its statement.
 */
export async function activeRules(db: Database): Promise<ActiveRule[]> {
  const rows = await db
    .select()
    .from(policies)
    .where(IN_FORCE)
    .orderBy(...IN_ORDER);
  return compileRules(rows);
}

/** The policies that take part in evaluations, and their order. */
export const IN_FORCE = and(isNull(policies.deletedAt), ne(policies.state, "disabled"));
export const IN_ORDER = [asc(policies.position), asc(policies.id)] as const;

/** Saved policies (in force, in order) as rules, compiled once per version. */
export function compileRules(rows: PolicyRow[]): ActiveRule[] {
  const rules: ActiveRule[] = [];
  for (const row of rows) {
    const compiled = compiledOf(row);
    if (!compiled) continue;
    rules.push(toActive(row, compiled));
  }
  return rules;
}

const toActive = (
  row: Pick<PolicyRow, "id" | "version" | "name" | "state" | "position" | "outcome" | "reason" | "requiredApprovals" | "priority">,
  compiled: CompiledRule,
): ActiveRule => ({
  id: row.id,
  version: row.version,
  name: row.name,
  state: row.state === "shadow" ? "shadow" : "enforce",
  position: row.position,
  outcome: row.outcome,
  reason: row.reason,
  requiredApprovals: row.requiredApprovals,
  priority: row.priority,
  compiled,
});

// ── Metrics ─────────────────────────────────────────────────────────────────────────────────────
interface PolicyMetrics {
  outcomes: Counter;
  duration: Histogram;
}
const metricsByMeter = new WeakMap<Meter, PolicyMetrics>();
function metricsOf(meter: Meter): PolicyMetrics {
  let metrics = metricsByMeter.get(meter);
  if (!metrics) {
    metrics = {
      outcomes: meter.createCounter("arbiter.policy.outcomes", {
        description: "Policy rule outcomes per rule: approve, deny, require, error, suppressed; mode enforce or shadow",
      }),
      duration: meter.createHistogram("arbiter.policy.evaluation.duration", {
        description: "Time to evaluate every active rule on one decision",
        unit: "s",
        advice: { explicitBucketBoundaries: [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1] },
      }),
    };
    metricsByMeter.set(meter, metrics);
  }
  return metrics;
}

/** Counts a decision's rule outcomes (per rule, by mode) in arbiter.policy.outcomes. */
export function countOutcomes(meter: Meter, evaluation: Evaluation) {
  const { outcomes } = metricsOf(meter);
  if (evaluation.matched) {
    outcomes.add(1, {
      policy_id: evaluation.matched.policy_id,
      policy: evaluation.matched.name,
      outcome: evaluation.matched.outcome,
      mode: "enforce",
    });
  }
  if (evaluation.suppressed) {
    outcomes.add(1, {
      policy_id: evaluation.suppressed.policy_id,
      policy: evaluation.suppressed.name,
      outcome: "suppressed",
      mode: "enforce",
    });
  }
  for (const error of evaluation.errors)
    outcomes.add(1, { policy_id: error.policy_id, policy: error.name, outcome: "error", mode: "enforce" });
  for (const shadow of evaluation.shadow) {
    if (shadow.outcome !== "none" || shadow.error) {
      outcomes.add(1, {
        policy_id: shadow.policy_id,
        policy: shadow.name,
        outcome: shadow.error ? "error" : shadow.outcome,
        mode: "shadow",
      });
    }
  }
}

// ── Evaluating a decision ───────────────────────────────────────────────────────────────────────
export interface DecisionFacts {
  kind: string;
  priority: DecisionPriority;
  title: string;
  requiredApprovals: number;
  payload: unknown;
  context: Record<string, unknown>;
  requester: { id: string; name: string; role: string };
}

/**
 * The rules' verdict on a decision about to be created (or edited); null when no rule is active.
 * `rules`: the rules in force as the caller read them (else they are read here).
 */
export async function evaluateDecision(
  deps: PolicyDeps,
  facts: DecisionFacts,
  options: { enforcedOnly?: boolean; count?: boolean; rules?: ActiveRule[] } = {},
): Promise<Evaluation | null> {
  let rules = options.rules ?? (await activeRules(deps.database.db));
  if (options.enforcedOnly) rules = rules.filter((rule) => rule.state === "enforce");
  if (rules.length === 0) return null;
  const started = performance.now();
  const evaluation = evaluateRules(rules, inputOf(facts, deps.clock.now()));
  metricsOf(deps.meter).duration.record((performance.now() - started) / 1000);
  if (options.count !== false) countOutcomes(deps.meter, evaluation);
  for (const error of evaluation.errors) {
    if (error.code !== "no_such_key") {
      deps.logger.warn("policy rule failed to evaluate: counted as no match", {
        policy_id: error.policy_id,
        version: error.version,
        code: error.code,
      });
    }
  }
  return evaluation;
}

const inputOf = (facts: DecisionFacts, now: Date): RuleInput => ({
  decision: {
    kind: facts.kind,
    priority: facts.priority,
    title: facts.title,
    required_approvals: facts.requiredApprovals,
    requester: facts.requester,
  },
  payload: facts.payload,
  context: facts.context,
  now,
});

const rank = (priority: DecisionPriority) => DECISION_PRIORITIES.indexOf(priority);
/** The higher of two priorities: a rule may raise a decision's priority, never lower it. */
export const higherPriority = (current: DecisionPriority, raised: DecisionPriority | null | undefined): DecisionPriority =>
  raised && rank(raised) > rank(current) ? raised : current;

// ── CRUD ────────────────────────────────────────────────────────────────────────────────────────
type RuleFields = Pick<
  PolicyRow,
  "name" | "description" | "expression" | "outcome" | "state" | "position" | "reason" | "requiredApprovals" | "priority" | "confirmBroad"
>;

export function presentPolicy(row: PolicyRow | PolicyVersionRow) {
  const isCurrent = "id" in row;
  return {
    id: isCurrent ? row.id : row.policyId,
    version: row.version,
    name: row.name,
    description: row.description,
    expression: row.expression,
    outcome: row.outcome,
    state: row.state,
    position: row.position,
    reason: row.reason,
    required_approvals: row.requiredApprovals,
    priority: row.priority,
    confirm_broad: row.confirmBroad,
    created_by: row.createdBy,
    created_at: row.createdAt.toISOString(),
    ...(isCurrent ? { updated_at: row.updatedAt.toISOString() } : {}),
  };
}
export type PolicyView = ReturnType<typeof presentPolicy>;

/** A rule's fields checked as a whole: the expression compiles, the outcome's parameters fit, a broad approve is confirmed. */
function validateRule(deps: PolicyDeps, principal: Principal, fields: RuleFields, confirmBroad: boolean, log = true) {
  const compiled = compileRule(fields.expression);
  if ("problem" in compiled) {
    const { problem } = compiled;
    const at = problem.position ? ` at ${problem.position.start}..${problem.position.end}` : "";
    throw new ApiError(400, "invalid_expression", `the expression is invalid${at}: ${problem.message}`, {
      code: problem.code,
      position: problem.position,
    });
  }
  const invalid = (path: string, message: string) =>
    new ApiError(400, "validation_failed", "request validation failed", [{ path: `json.${path}`, message, code: "custom" }]);
  if (fields.outcome !== "require" && (fields.requiredApprovals !== null || fields.priority !== null)) {
    throw invalid("outcome", "required_approvals and priority apply to a require rule only");
  }
  if (fields.outcome === "deny" && !fields.reason) throw invalid("reason", "a deny rule needs the reason given to the requester");
  const broad = fields.outcome === "approve" && isBroad(compiled.rule);
  if (broad && !confirmBroad) {
    throw new ApiError(
      422,
      "broad_rule",
      "this approve rule matches nearly every decision (it approves without a real condition); send confirm_broad: true if that is intended",
      { expression: fields.expression },
    );
  }
  if (broad && log) {
    deps.logger.warn("broad approve rule saved with confirm_broad", {
      actor_key_id: principal.keyId,
      name: fields.name,
      expression: fields.expression,
    });
  }
  return { compiled: compiled.rule, broad };
}

async function nextPosition(db: Database): Promise<number> {
  const [row] = await db
    .select({ max: sql<number | null>`max(${policies.position})` })
    .from(policies)
    .where(isNull(policies.deletedAt));
  return (row?.max === null || row?.max === undefined ? 0 : Number(row.max)) + 10;
}

export async function createPolicy(deps: PolicyDeps, principal: Principal, input: CreatePolicyInput) {
  const { db } = deps.database;
  const [count] = await db.select({ n: sql<number>`count(*)` }).from(policies).where(isNull(policies.deletedAt));
  if (Number(count?.n ?? 0) >= MAX_POLICIES) {
    throw conflict("too_many_policies", `at most ${MAX_POLICIES} policies may exist; delete unused ones first`);
  }
  const fields: RuleFields = {
    name: input.name,
    description: input.description ?? null,
    expression: input.expression,
    outcome: input.outcome,
    state: input.state,
    position: input.position ?? (await nextPosition(db)),
    reason: input.reason ?? null,
    requiredApprovals: input.required_approvals ?? null,
    priority: input.priority ?? null,
    confirmBroad: input.confirm_broad ?? false,
  };
  const { broad } = validateRule(deps, principal, fields, fields.confirmBroad);
  fields.confirmBroad = broad;
  const now = deps.clock.now();
  const id = uuidv7(now.getTime());
  const row = await db.transaction(async (tx) => {
    const [created] = await tx
      .insert(policies)
      .values({ id, version: 1, ...fields, createdBy: principal.keyId, createdAt: now, updatedAt: now })
      .returning();
    await tx.insert(policyVersions).values({ policyId: id, version: 1, ...fields, createdBy: principal.keyId, createdAt: now });
    return created!;
  });
  deps.logger.info("policy created", {
    policy_id: id,
    version: 1,
    actor_key_id: principal.keyId,
    state: fields.state,
    outcome: fields.outcome,
  });
  return row;
}

export async function listPolicies(deps: PolicyDeps) {
  const rows = await deps.database.db
    .select()
    .from(policies)
    .where(isNull(policies.deletedAt))
    .orderBy(asc(policies.position), asc(policies.id));
  return { data: rows.map(presentPolicy) };
}

export async function getPolicy(deps: PolicyDeps, id: string): Promise<PolicyRow> {
  const [row] = await deps.database.db
    .select()
    .from(policies)
    .where(and(eq(policies.id, id), isNull(policies.deletedAt)));
  if (!row) throw notFound("policy not found");
  return row;
}

/** Every version of a policy, newest first; versions of a deleted policy stay readable (decisions name them). */
export async function listVersions(deps: PolicyDeps, id: string) {
  const rows = await deps.database.db
    .select()
    .from(policyVersions)
    .where(eq(policyVersions.policyId, id))
    .orderBy(desc(policyVersions.version));
  if (rows.length === 0) throw notFound("policy not found");
  return { data: rows.map(presentPolicy) };
}

export async function getVersion(deps: PolicyDeps, id: string, version: number) {
  const [row] = await deps.database.db
    .select()
    .from(policyVersions)
    .where(and(eq(policyVersions.policyId, id), eq(policyVersions.version, version)));
  if (!row) throw notFound("policy version not found");
  return row;
}

/**
 * A change is a new version: the current row is replaced under a compare-and-set on its version, and
 * the new version is appended; old versions are never touched.
 */
async function saveVersion(
  deps: PolicyDeps,
  principal: Principal,
  id: string,
  change: (current: PolicyRow) => RuleFields,
  expectedVersion: number | undefined,
  confirmBroad: boolean,
) {
  const current = await getPolicy(deps, id);
  if (expectedVersion !== undefined && expectedVersion !== current.version) {
    throw conflict("version_mismatch", `the policy is at version ${current.version}, not ${expectedVersion}`, { version: current.version });
  }
  const fields = change(current);
  const { broad } = validateRule(
    deps,
    principal,
    fields,
    confirmBroad || (current.confirmBroad && fields.expression === current.expression),
  );
  fields.confirmBroad = broad;
  const now = deps.clock.now();
  const version = current.version + 1;
  const row = await deps.database.db.transaction(async (tx) => {
    const [updated] = await tx
      .update(policies)
      .set({ ...fields, version, updatedAt: now })
      .where(and(eq(policies.id, id), eq(policies.version, current.version), isNull(policies.deletedAt)))
      .returning();
    if (!updated) throw conflict("policy_changed", "the policy changed concurrently; read it and retry");
    await tx.insert(policyVersions).values({ policyId: id, version, ...fields, createdBy: principal.keyId, createdAt: now });
    return updated;
  });
  deps.logger.info("policy updated", {
    policy_id: id,
    version,
    actor_key_id: principal.keyId,
    state: fields.state,
    outcome: fields.outcome,
  });
  return row;
}

const fieldsOf = (row: PolicyRow): RuleFields => ({
  name: row.name,
  description: row.description,
  expression: row.expression,
  outcome: row.outcome,
  state: row.state,
  position: row.position,
  reason: row.reason,
  requiredApprovals: row.requiredApprovals,
  priority: row.priority,
  confirmBroad: row.confirmBroad,
});

export function updatePolicy(deps: PolicyDeps, principal: Principal, id: string, input: UpdatePolicyInput) {
  return saveVersion(
    deps,
    principal,
    id,
    (current) => {
      const next = fieldsOf(current);
      if (input.name !== undefined) next.name = input.name;
      if (input.description !== undefined) next.description = input.description;
      if (input.expression !== undefined) next.expression = input.expression;
      if (input.outcome !== undefined) {
        next.outcome = input.outcome;
        if (input.outcome !== "require") {
          next.requiredApprovals = null;
          next.priority = null;
        }
      }
      if (input.state !== undefined) next.state = input.state;
      if (input.position !== undefined) next.position = input.position;
      if (input.reason !== undefined) next.reason = input.reason;
      if (input.required_approvals !== undefined) next.requiredApprovals = input.required_approvals;
      if (input.priority !== undefined) next.priority = input.priority;
      return next;
    },
    input.expected_version,
    input.confirm_broad ?? false,
  );
}

export function disablePolicy(deps: PolicyDeps, principal: Principal, id: string) {
  return saveVersion(deps, principal, id, (current) => ({ ...fieldsOf(current), state: "disabled" }), undefined, false);
}

/** Deleting keeps every version (decisions name them); the policy leaves the list and is never evaluated again. */
export async function deletePolicy(deps: PolicyDeps, principal: Principal, id: string) {
  const now = deps.clock.now();
  const [row] = await deps.database.db
    .update(policies)
    .set({ deletedAt: now, deletedBy: principal.keyId, updatedAt: now })
    .where(and(eq(policies.id, id), isNull(policies.deletedAt)))
    .returning({ id: policies.id });
  if (!row) throw notFound("policy not found");
  deps.logger.info("policy deleted", { policy_id: id, actor_key_id: principal.keyId });
}

// ── Replay and preview ──────────────────────────────────────────────────────────────────────────
const EXAMPLES = 10;
/** Decisions read per query during a replay. */
const REPLAY_PAGE = 500;

export { REPLAY_MAX_DECISIONS };

type WouldBe = "approve" | "deny" | "require" | "none" | "error";

/** What people (or the timeout, or a policy) actually decided, compared with what the rule would have. */
function differs(would: WouldBe, row: Pick<DecisionRow, "status">): boolean {
  if (would === "approve") return row.status === "rejected" || row.status === "expired";
  if (would === "deny") return row.status === "approved";
  return false;
}

/**
 * Evaluates one rule over the decisions created in [from, to) (newest first, at most `limit`), as
 * it would have run when each was created: how many it would have approved, denied or required, and
 * examples where that differs from the actual outcome.
 */
async function replayRule(
  deps: PolicyDeps,
  rule: { outcome: ActiveRule["outcome"]; compiled: CompiledRule },
  range: ReplayInput,
  ignorePolicyId?: string,
) {
  const to = range.to ?? deps.clock.now();
  const from = range.from;
  if (from.getTime() >= to.getTime()) {
    throw new ApiError(400, "validation_failed", "request validation failed", [
      { path: "json.from", message: "must be before to", code: "custom" },
    ]);
  }
  const figures = { evaluated: 0, approve: 0, deny: 0, require: 0, no_match: 0, errors: 0, differs: 0 };
  const examples: {
    decision_id: string;
    kind: string;
    created_at: string;
    actual: { status: string; decided_by: string | null; policy_id: string | null };
    would: WouldBe;
  }[] = [];
  // Read in pages (newest first, keyset on created_at and id), so memory holds one page of payloads.
  let cursor: { createdAt: Date; id: string } | undefined;
  let truncated = false;
  while (figures.evaluated < range.limit) {
    const size = Math.min(REPLAY_PAGE, range.limit - figures.evaluated);
    const rows = await deps.database.db
      .select({ decision: decisions, keyName: apiKeys.name, keyRole: apiKeys.role })
      .from(decisions)
      .leftJoin(apiKeys, eq(apiKeys.id, decisions.requesterKeyId))
      .where(
        and(
          gte(decisions.createdAt, from),
          lt(decisions.createdAt, to),
          cursor
            ? sql`(${decisions.createdAt}, ${decisions.id}) < (${cursor.createdAt.toISOString()}::timestamptz, ${cursor.id}::uuid)`
            : undefined,
        ),
      )
      .orderBy(desc(decisions.createdAt), desc(decisions.id))
      .limit(size + 1);
    const page = rows.slice(0, size);
    for (const { decision: row, keyName, keyRole } of page) {
      figures.evaluated += 1;
      const input = prepareInput({
        decision: {
          kind: row.kind,
          priority: row.priority,
          title: row.title,
          required_approvals: row.requiredApprovals,
          requester: { id: row.requesterKeyId, name: keyName ?? "", role: keyRole ?? "" },
        },
        payload: row.payload,
        context: row.context,
        now: row.createdAt,
      });
      const result = evaluateRule(rule.compiled, input);
      let would: WouldBe;
      if (result.matched) would = rule.outcome;
      else if (result.error && result.error.code !== "no_such_key") would = "error";
      else would = "none";
      if (would === "none") figures.no_match += 1;
      else if (would === "error") figures.errors += 1;
      else figures[would] += 1;
      const different = differs(would, row) && !(ignorePolicyId && row.policyId === ignorePolicyId);
      if (different) figures.differs += 1;
      if (different && examples.length < EXAMPLES) {
        examples.push({
          decision_id: row.id,
          kind: row.kind,
          created_at: row.createdAt.toISOString(),
          actual: { status: row.status, decided_by: row.decidedBy, policy_id: row.policyId },
          would,
        });
      }
    }
    const last = page.at(-1);
    if (rows.length <= size || !last) break;
    if (figures.evaluated >= range.limit) {
      truncated = true;
      break;
    }
    cursor = { createdAt: last.decision.createdAt, id: last.decision.id };
  }
  return {
    from: from.toISOString(),
    to: to.toISOString(),
    truncated,
    ...figures,
    examples,
  };
}

export async function replayPolicy(deps: PolicyDeps, id: string, input: ReplayInput) {
  const row = await getPolicy(deps, id);
  const compiled = compiledOf(row);
  if (!compiled) throw new ApiError(422, "invalid_expression", "the saved expression no longer compiles");
  return {
    policy_id: row.id,
    version: row.version,
    outcome: row.outcome,
    ...(await replayRule(deps, { outcome: row.outcome, compiled }, input, row.id)),
  };
}

export async function previewRule(deps: PolicyDeps, principal: Principal, input: PreviewInput) {
  const fields: RuleFields = {
    name: "preview",
    description: null,
    expression: input.expression,
    outcome: input.outcome,
    state: "shadow",
    position: 0,
    reason: input.reason ?? null,
    requiredApprovals: input.required_approvals ?? null,
    priority: input.priority ?? null,
    confirmBroad: true,
  };
  // A preview saves nothing: a broad rule is previewed without confirm_broad, and flagged.
  const { compiled, broad } = validateRule(deps, principal, fields, true, false);
  return { outcome: input.outcome, broad, ...(await replayRule(deps, { outcome: input.outcome, compiled }, input)) };
}
