import {
  and,
  asc,
  desc,
  eq,
  getTableColumns,
  gt,
  gte,
  inArray,
  isNull,
  lt,
  lte,
  ne,
  type Placeholder,
  SQL,
  type SQLWrapper,
  sql,
} from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import type { Principal } from "../auth/rbac";
import { sha256Hex } from "../crypto/hash";
import { type Database, type DatabaseHandle, rowsOf } from "../db/client";
import { isUuid, uuidv7 } from "../db/ids";
import { rowFromDriver } from "../db/rows";
import {
  apiKeys,
  DECISION_PRIORITIES,
  type DecisionRow,
  type DecisionStatus,
  decisionEvents,
  decisions,
  notificationRoutes,
  pendingDecisions,
  policyGeneration,
  webhookDeliveries,
} from "../db/schema";
import type { AppDeps } from "../deps";
import { ApiError, badRequest, conflict, notFound } from "../http/errors";
import { afterCursor, decodeCursor, encodeCursor, toPage } from "../http/pagination";
import { cacheInstruments } from "../observability/metrics";
import type { Evaluation } from "../policies/engine";
import { rulesInForce } from "../policies/in-force";
import { countOutcomes, evaluateDecision, higherPriority } from "../policies/service";
import { canonicalJson } from "./canonical-json";
import { decisionMetrics } from "./metrics";
import { type DecisionNotifier, decisionNotifier } from "./notifier";
import { presentDecision } from "./present";
import { createLocalDecisionCache, type LocalDecisionCache } from "./read-cache";
import { CONTEXT_MAX_BYTES, type CreateDecisionInput, type ListFilters, MAX_ESCALATION_LEVEL } from "./schemas";
import { createSharedReads } from "./shared-reads";
import { assertCallbackAllowed } from "./webhooks";

/**
 * The decision lifecycle. Every state change is ONE conditional statement (`UPDATE … WHERE status =
 * 'pending' … RETURNING`) plus its audit row and a `pg_notify` in the same transaction: racing
 * operators get exactly one winner, the audit trail never disagrees with the row, and waiters on
 * every replica hear of the change only once it is committed.
 */
export type DecisionDeps = Pick<AppDeps, "database" | "cache" | "clock" | "config" | "logger" | "meter">;
type Tx = Parameters<Parameters<Database["transaction"]>[0]>[0];

export type DecisionEventType =
  | "created"
  | "approval_recorded"
  | "approved"
  | "rejected"
  | "escalated"
  | "expired"
  | "cancelled"
  | "consumed";

const TERMINAL: ReadonlySet<DecisionStatus> = new Set(["approved", "rejected", "expired", "cancelled"]);
const decisionCacheKey = (id: string) => `decision:${id}`;
/**
 * What a decision's shared-cache entry holds for a while after a change, in place of the old row.
 * A reader fills the shared cache only into an empty key (setIfAbsent), so a reader that loaded the
 * row just before the change cannot put the old row back: the marker holds the key. A deleted key
 * would not: that reader's write would land after the delete and serve the old row for the TTL.
 */
const CHANGED_MARKER = "changed";
const CHANGED_MARKER_MS = 5_000;
/**
 * A read slower than this does not fill the shared cache: its write might land after the marker has
 * expired. The bound on a stale fill is therefore a read plus write taking over 5 s, end to end.
 */
const CACHE_FILL_MAX_READ_MS = 2_000;
const DECISION_CACHE_LABELS = { "cache.name": "decision" };
const DATE_FIELDS = ["createdAt", "updatedAt", "expiresAt", "resolvedAt", "consumedAt", "escalatedAt"] as const;

export const notifierOf = (deps: DecisionDeps): DecisionNotifier =>
  decisionNotifier(deps.database, (id) => loadDecision(deps.database.db, id), deps.logger);

/** Decisions held in this process at most; the oldest copy goes first past it. */
const LOCAL_CACHE_ENTRIES = 10_000;
const localCaches = new WeakMap<DatabaseHandle, LocalDecisionCache>();
/** The process-wide local cache of a database handle, emptied of a decision whenever any replica changes it. */
function localCacheOf(deps: DecisionDeps): LocalDecisionCache {
  let cache = localCaches.get(deps.database);
  if (!cache) {
    const created = createLocalDecisionCache({
      ttlMs: deps.config.DECISION_CACHE_TTL_MS,
      maxEntries: LOCAL_CACHE_ENTRIES,
      now: () => deps.clock.now().getTime(),
    });
    // A creation leaves no copy to drop: forgetting would only count a change, and keep the reads
    // in flight during a burst of creates from being cached.
    notifierOf(deps).onChange((change) => {
      if (!change.created) created.forget(change.id);
    });
    localCaches.set(deps.database, (cache = created));
  }
  return cache;
}

const sharedReads = new WeakMap<DatabaseHandle, (id: string) => Promise<DecisionRow | undefined>>();
/** Fresh reads shared by the long-polls of one decision that register together (see shared-reads.ts). */
function sharedReadOf(deps: DecisionDeps) {
  let read = sharedReads.get(deps.database);
  if (!read) sharedReads.set(deps.database, (read = createSharedReads((id) => loadDecision(deps.database.db, id))));
  return read;
}

const metricsOf = (deps: DecisionDeps) => decisionMetrics(deps.meter, deps.database.db);

const cacheMetricsByMeter = new WeakMap<object, ReturnType<typeof cacheInstruments>>();
function cacheMetricsOf(deps: DecisionDeps) {
  let instruments = cacheMetricsByMeter.get(deps.meter);
  if (!instruments) cacheMetricsByMeter.set(deps.meter, (instruments = cacheInstruments(deps.meter)));
  return instruments;
}

/** A `service` principal sees only the decisions it requested; people with read access see all. */
export const canSee = (principal: Principal, row: Pick<DecisionRow, "requesterKeyId">) =>
  principal.role !== "service" || row.requesterKeyId === principal.keyId;

async function loadDecision(db: Database, id: string): Promise<DecisionRow | undefined> {
  const [row] = await db.select().from(decisions).where(eq(decisions.id, id));
  return row;
}

// ── Recording a change ──────────────────────────────────────────────────────────────────────────
/**
 * What the audit row of a change says. `type` and `data` may be SQL over `updated` (the changed row,
 * as the statement returned it), for what depends on the outcome, such as whether a quorum was met.
 */
interface ChangeRecord {
  type: DecisionEventType | SQL;
  actorKeyId: string | null | Placeholder;
  fromStatus: DecisionStatus | null;
  reason?: string | null;
  data?: Record<string, unknown> | SQL;
}

const TERMINAL_SQL = sql.raw(`(${[...TERMINAL].map((status) => `'${status}'`).join(", ")})`);

/**
 * A change as ONE statement (one round trip, atomic as a transaction): the conditional UPDATE (or
 * INSERT), its audit row, and the webhook delivery for a final outcome when the decision has a
 * callback. It returns the changed row with its audit event id, or no row when the conditions did
 * not hold. The change is announced to waiters and other replicas after it commits (afterChange).
 */
function changeStatement(update: SQLWrapper, change: ChangeRecord, at: Date | Placeholder): SQL {
  const type = typeof change.type === "string" ? sql`${change.type}` : change.type;
  const data = change.data instanceof SQL ? change.data : sql`${JSON.stringify(change.data ?? {})}::jsonb`;
  const time = at instanceof Date ? at.toISOString() : at;
  // Only a change from pending can be a final outcome (and queue a webhook): a create never does.
  const webhook =
    change.fromStatus === "pending" && at instanceof Date
      ? sql`insert into ${webhookDeliveries} (id, decision_id, url, attempt, next_attempt_at)
      select ${uuidv7(at.getTime())}::uuid, updated.id, updated.callback_url, 1, ${time}::timestamptz
      from updated where updated.callback_url is not null and updated.status in ${TERMINAL_SQL}
      returning 1`
      : sql`select 1 where false`;
  return sql`
    with updated as ${update},
    event as (
      insert into ${decisionEvents} (decision_id, type, actor_key_id, from_status, to_status, reason, data, created_at)
      select updated.id, ${type}, ${change.actorKeyId}::uuid, ${change.fromStatus}::text, updated.status, ${change.reason ?? null}::text,
             ${data}, ${time}::timestamptz
      from updated
      returning id
    ),
    webhook as (${webhook})
    select updated.*, event.id as change_event_id from updated, event, (select count(*) from webhook) as queued`;
}

interface Changed {
  row: DecisionRow;
  eventId: number;
}

/** The changed row of a changeStatement, mapped as the query builder would; undefined when nothing changed. */
function changedRow(result: unknown): Changed | undefined {
  const [raw] = rowsOf<Record<string, unknown>>(result);
  return raw ? { row: rowFromDriver(decisions, raw), eventId: Number(raw.change_event_id) } : undefined;
}

/** Puts the changed marker in place of a decision's cached row; never rejects (a failure is logged). */
export function markDecisionChanged(deps: Pick<DecisionDeps, "cache" | "logger">, id: string): Promise<void> {
  return deps.cache.set(decisionCacheKey(id), CHANGED_MARKER, CHANGED_MARKER_MS).catch((error: unknown) => {
    deps.logger.warn("decision cache invalidation failed", { decision_id: id, error: (error as Error).message });
  });
}

/** After commit: announce the change, replace the cached copies and count the outcome. */
async function afterChange(deps: DecisionDeps, { row, eventId }: Changed, fromStatus: DecisionStatus | null): Promise<void> {
  // A decision just created has no cached copy anywhere yet.
  const invalidated = fromStatus === null ? undefined : markDecisionChanged(deps, row.id);
  // Waiters here get the row the change returned at once; the other replicas hear of the change
  // only after the marker is in the shared cache, so none of them can read the old row back.
  notifierOf(deps).announce({ id: row.id, status: row.status, eventId, created: fromStatus === null }, row, invalidated);
  if (fromStatus === "pending" && TERMINAL.has(row.status)) {
    const metrics = metricsOf(deps);
    metrics.resolved.add(1, { outcome: row.status });
    const end = row.resolvedAt ?? deps.clock.now();
    metrics.duration.record(Math.max(0, (end.getTime() - row.createdAt.getTime()) / 1000), { outcome: row.status });
  }
  if (!invalidated) return;
  await invalidated;
  // Announcing dropped this process's copy before the marker was in place, so a read here could
  // have taken the old row from the shared cache since: dropping again makes its copy unkept.
  localCaches.get(deps.database)?.forget(row.id);
}

type DecisionUpdate = Partial<{ [K in keyof DecisionRow]: DecisionRow[K] | SQL }>;

/** One atomic conditional update plus its change record; undefined when the conditions did not hold. */
async function applyTransition(
  deps: DecisionDeps,
  id: string,
  conditions: SQL[],
  set: DecisionUpdate,
  change: ChangeRecord,
): Promise<DecisionRow | undefined> {
  const at = deps.clock.now();
  const update = deps.database.db
    .update(decisions)
    .set({ ...set, updatedAt: at })
    .where(and(eq(decisions.id, id), ...conditions))
    .returning();
  const changed = changedRow(await deps.database.db.execute(changeStatement(update, change, at)));
  if (changed) await afterChange(deps, changed, change.fromStatus);
  return changed?.row;
}

/** Size in UTF-8 bytes, with Web APIs only (no Node Buffer), so the service runs on every runtime. */
const utf8 = new TextEncoder();
export const utf8Length = (text: string) => utf8.encode(text).byteLength;

/** The payload's canonical JSON, once it is known to fit DECISION_PAYLOAD_MAX_BYTES (else 413). */
function boundedCanonicalJson(config: DecisionDeps["config"], payload: unknown): string {
  const json = canonicalJson(payload);
  if (utf8Length(json) > config.DECISION_PAYLOAD_MAX_BYTES) {
    throw new ApiError(413, "decision_payload_too_large", `payload exceeds ${config.DECISION_PAYLOAD_MAX_BYTES} bytes of canonical JSON`);
  }
  return json;
}

// ── Policies ────────────────────────────────────────────────────────────────────────────────────
type MatchedRule = NonNullable<Evaluation["matched"]>;
const policyRef = (rule: MatchedRule) => ({
  policy_id: rule.policy_id,
  policy_version: rule.version,
  policy_name: rule.name,
  outcome: rule.outcome,
  ...(rule.outcome === "require" ? { required_approvals: rule.required_approvals, priority: rule.priority } : {}),
});

/**
 * An enforced approve or deny: the new decision is resolved at once, with no human, by the rule. Its
 * audit row (actor null) names the policy and version; decided_by, policy_id and policy_version say so
 * on the decision. Should this step not happen (a crash right after the insert), the decision simply
 * waits for people: the safe side.
 */
async function decideByPolicy(deps: DecisionDeps, row: DecisionRow, rule: MatchedRule): Promise<DecisionRow | undefined> {
  const now = deps.clock.now();
  const approve = rule.outcome === "approve";
  const reason = rule.reason ?? (approve ? `approved by policy ${rule.name} (version ${rule.version})` : `denied by policy ${rule.name}`);
  return applyTransition(
    deps,
    row.id,
    [eq(decisions.status, "pending")],
    {
      status: approve ? "approved" : "rejected",
      resolvedAt: now,
      resolutionReason: reason,
      decidedBy: "policy",
      policyId: rule.policy_id,
      policyVersion: rule.version,
    },
    {
      type: approve ? "approved" : "rejected",
      actorKeyId: null,
      fromStatus: "pending",
      reason,
      data: { decided_by: "policy", ...policyRef(rule) },
    },
  );
}

// ── Create ──────────────────────────────────────────────────────────────────────────────────────
const CREATE_PARAMETERS = [
  "id",
  "kind",
  "title",
  "payload",
  "payloadHash",
  "context",
  "priority",
  "requiredApprovals",
  "requesterKeyId",
  "requesterPersonId",
  "policyEvaluation",
  "onTimeout",
  "callbackUrl",
  "escalateAfterSeconds",
  "idempotencyKey",
  "requestHash",
  "now",
  "expiresAt",
  "ttlSeconds",
  "eventData",
  "policyGeneration",
] as const;
type CreateParameter = (typeof CREATE_PARAMETERS)[number];
type CreateStatement = (values: Record<CreateParameter, unknown>) => Promise<unknown>;

/** Evaluations of one create at most, when the policies keep changing under it (each change is a human's edit). */
const CREATE_ATTEMPTS = 5;
const dialect = new PgDialect();
const createStatements = new WeakMap<Database, CreateStatement>();

/**
 * The create as one constant statement with placeholders, built and prepared once per database:
 * building the 25-column insert and its CTE per request was a fifth of the server's CPU per create.
 * Values are sent as text with explicit casts (JSON as canonical JSON text, times as ISO strings), so
 * the statement's parameter types never depend on the driver's guesses. Nothing is inserted (and
 * nothing returned) on an idempotency key already used by this caller, or when the policy set is no
 * longer at the generation `policyGeneration` (the rules the decision was evaluated with are stale).
 */
function createStatementOf(db: Database): CreateStatement {
  let statement = createStatements.get(db);
  if (statement) return statement;
  const p = Object.fromEntries(CREATE_PARAMETERS.map((name) => [name, sql.placeholder(name)])) as Record<CreateParameter, Placeholder>;
  // The columns a create sets; the others take their defaults.
  const values: Partial<Record<keyof DecisionRow, SQL>> = {
    id: sql`${p.id}::uuid`,
    kind: sql`${p.kind}::text`,
    title: sql`${p.title}::text`,
    payload: sql`${p.payload}::jsonb`,
    payloadHash: sql`${p.payloadHash}::text`,
    context: sql`${p.context}::jsonb`,
    priority: sql`${p.priority}::text`,
    requiredApprovals: sql`${p.requiredApprovals}::smallint`,
    requesterKeyId: sql`${p.requesterKeyId}::uuid`,
    requesterPersonId: sql`${p.requesterPersonId}::uuid`,
    policyEvaluation: sql`${p.policyEvaluation}::jsonb`,
    onTimeout: sql`${p.onTimeout}::text`,
    callbackUrl: sql`${p.callbackUrl}::text`,
    escalateAfterSeconds: sql`${p.escalateAfterSeconds}::int`,
    idempotencyKey: sql`${p.idempotencyKey}::text`,
    requestHash: sql`${p.requestHash}::text`,
    createdAt: sql`${p.now}::timestamptz`,
    updatedAt: sql`${p.now}::timestamptz`,
    expiresAt: sql`${p.expiresAt}::timestamptz`,
  };
  const columns = getTableColumns(decisions);
  const fields = Object.keys(values) as (keyof DecisionRow)[];
  const column = (field: keyof DecisionRow) => sql.identifier(columns[field].name);
  // Stored only while the policy set is still at the generation the rules were read at.
  const insert = sql`(
    insert into ${decisions} (${sql.join(fields.map(column), sql`, `)})
    select ${sql.join(
      fields.map((field) => values[field]!),
      sql`, `,
    )}
    from ${policyGeneration} where ${policyGeneration.id} = 1 and ${policyGeneration.generation} = ${p.policyGeneration}::bigint
    on conflict (${column("requesterKeyId")}, ${column("idempotencyKey")}) do nothing
    returning *)`;
  const change: ChangeRecord = {
    type: "created",
    actorKeyId: p.requesterKeyId,
    fromStatus: null,
    data: sql`jsonb_build_object('expires_in', ${p.ttlSeconds}::int, 'payload_hash', updated.payload_hash) || ${p.eventData}::jsonb`,
  };
  const prepared = db._.session.prepareQuery(dialect.sqlToQuery(changeStatement(insert, change, p.now)), undefined, undefined, false);
  statement = (values) => prepared.execute(values);
  createStatements.set(db, statement);
  return statement;
}

export async function createDecision(
  deps: DecisionDeps,
  principal: Principal,
  input: CreateDecisionInput,
  idempotencyKey: string | undefined,
): Promise<{ row: DecisionRow; replayed: boolean }> {
  const { config } = deps;
  const canonicalPayload = boundedCanonicalJson(config, input.payload);
  const payloadHash = sha256Hex(canonicalPayload);
  const canonicalContext = canonicalJson(input.context);
  if (utf8Length(canonicalContext) > CONTEXT_MAX_BYTES) {
    throw new ApiError(413, "decision_context_too_large", `context exceeds ${CONTEXT_MAX_BYTES} bytes of canonical JSON`);
  }
  const ttlSeconds = input.expires_in ?? config.DECISION_DEFAULT_TTL_SECONDS;
  if (ttlSeconds > config.DECISION_MAX_TTL_SECONDS) {
    throw badRequest("validation_failed", "request validation failed", [
      { path: "json.expires_in", message: `must be at most ${config.DECISION_MAX_TTL_SECONDS} seconds`, code: "too_big" },
    ]);
  }
  if (input.callback_url !== undefined) await assertCallbackAllowed(input.callback_url, config);

  // The payload and context are canonicalised once: the request's canonical JSON reuses their text.
  const requestHash = sha256Hex(
    canonicalJson(
      input,
      new Map<unknown, string>([
        [input.payload, canonicalPayload],
        [input.context, canonicalContext],
      ]),
    ),
  );
  const facts = {
    kind: input.kind,
    priority: input.priority,
    title: input.title,
    requiredApprovals: input.required_approvals,
    payload: input.payload,
    context: input.context,
    requester: { id: principal.keyId, name: principal.keyName, role: principal.role },
  };
  const { db } = deps.database;
  let stale: number | undefined;
  for (let attempt = 1; attempt <= CREATE_ATTEMPTS; attempt++) {
    // The policies' verdict, before anything is stored, by the rules in force as this process last
    // read them; the statement stores the decision only if no policy changed since (else they are
    // read again and the decision evaluated again). A retry of an idempotent request answers the
    // first result below, whatever the rules say now.
    const inForce = await rulesInForce(db, stale);
    // Counted once the decision is stored: a retry that answers the first result counts nothing.
    const evaluation = await evaluateDecision(deps, facts, { count: false, rules: inForce.rules });
    const matched = evaluation?.matched ?? null;
    // require: a rule may raise the quorum and the priority, never lower them.
    const demanded = matched?.outcome === "require" ? matched : null;
    const now = deps.clock.now();
    const created = changedRow(
      await createStatementOf(db)({
        id: uuidv7(now.getTime()),
        kind: input.kind,
        title: input.title,
        // Canonical JSON is JSON: stored as jsonb, it is the value sent (JSON null included, as jsonb 'null').
        payload: canonicalPayload,
        payloadHash,
        context: canonicalContext,
        priority: higherPriority(input.priority, demanded?.priority),
        requiredApprovals: Math.max(input.required_approvals, demanded?.required_approvals ?? 0),
        requesterKeyId: principal.keyId,
        requesterPersonId: principal.personId,
        policyEvaluation: evaluation ? JSON.stringify(evaluation) : null,
        onTimeout: input.on_timeout,
        callbackUrl: input.callback_url ?? null,
        escalateAfterSeconds: input.escalate_after ?? null,
        idempotencyKey: idempotencyKey ?? null,
        requestHash,
        now: now.toISOString(),
        expiresAt: new Date(now.getTime() + ttlSeconds * 1000).toISOString(),
        ttlSeconds,
        eventData: JSON.stringify(demanded ? { policy: policyRef(demanded) } : {}),
        policyGeneration: inForce.generation,
      }),
    );
    if (created) {
      await afterChange(deps, created, null);
      metricsOf(deps).created.add(1, { kind: created.row.kind, priority: created.row.priority });
      if (evaluation) countOutcomes(deps.meter, evaluation);
      if (matched && (matched.outcome === "approve" || matched.outcome === "deny")) {
        const decided = await decideByPolicy(deps, created.row, matched);
        return { row: decided ?? created.row, replayed: false };
      }
      return { row: created.row, replayed: false };
    }
    if (idempotencyKey !== undefined) {
      // The key was used before by this caller: a retry of the same request answers the first result.
      const [first] = await db
        .select()
        .from(decisions)
        .where(and(eq(decisions.requesterKeyId, principal.keyId), eq(decisions.idempotencyKey, idempotencyKey)));
      if (first) {
        if (first.requestHash !== requestHash) {
          throw new ApiError(422, "idempotency_key_reused", "this Idempotency-Key was already used with a different request body", {
            decision_id: first.id,
          });
        }
        return { row: first, replayed: true };
      }
    }
    // Nothing stored and no earlier request: the policies changed since they were read, or a request
    // with this key has not committed yet. Rules read after the refusal tell the two apart.
    stale = inForce.generation;
    if ((await rulesInForce(db, stale)).generation === stale) {
      if (idempotencyKey !== undefined) {
        throw conflict("idempotency_conflict", "the idempotency key is in use by a request that did not complete; retry");
      }
      throw new Error("the decision was not stored, and the policy set did not change");
    }
  }
  throw new ApiError(503, "policies_changing", "the policies changed while the decision was being evaluated; retry", undefined, {
    "Retry-After": "1",
  });
}

// ── Reads ───────────────────────────────────────────────────────────────────────────────────────
function reviveRow(json: string): DecisionRow {
  const row = JSON.parse(json) as Record<string, unknown>;
  for (const field of DATE_FIELDS) if (typeof row[field] === "string") row[field] = new Date(row[field] as string);
  return row as unknown as DecisionRow;
}

/**
 * This process's copy, else the shared cache's, else the database. Copies held in a process learn of
 * other replicas' changes through the notifier, so the caches are used only while it is listening.
 */
async function readThroughCache(deps: DecisionDeps, id: string): Promise<DecisionRow | undefined> {
  const ttl = deps.config.DECISION_CACHE_TTL_MS;
  const instruments = cacheMetricsOf(deps);
  const notifier = notifierOf(deps);
  const listening =
    ttl > 0 &&
    (notifier.listening ||
      (await notifier.ready().then(
        () => true,
        () => false,
      )));
  const local = listening ? localCacheOf(deps) : undefined;
  const generation = local?.generation ?? 0;
  let cached: string | null = null;
  if (local) {
    const copy = local.get(id);
    if (copy) {
      instruments.hits.add(1, DECISION_CACHE_LABELS);
      return copy;
    }
    cached = await deps.cache.get(decisionCacheKey(id)).catch(() => null);
    if (cached && cached !== CHANGED_MARKER) {
      instruments.hits.add(1, DECISION_CACHE_LABELS);
      const row = reviveRow(cached);
      local.set(id, row, generation);
      return row;
    }
  }
  instruments.misses.add(1, DECISION_CACHE_LABELS);
  const started = performance.now();
  const row = await loadDecision(deps.database.db, id);
  if (row && ttl > 0) {
    local?.set(id, row, generation);
    if (cached !== CHANGED_MARKER && performance.now() - started < CACHE_FILL_MAX_READ_MS) {
      await deps.cache.setIfAbsent(decisionCacheKey(id), JSON.stringify(row), ttl).catch(() => {});
    }
  }
  return row;
}

const isOverdue = (row: DecisionRow, now: Date) => row.status === "pending" && row.expiresAt.getTime() <= now.getTime();

/**
 * A decision as the caller may see it. An overdue pending decision takes its timeout outcome here,
 * so a read is correct even when no sweeper has run yet.
 */
export async function getDecision(
  deps: DecisionDeps,
  principal: Principal,
  id: string,
  options: { fresh?: boolean; shared?: boolean } = {},
): Promise<DecisionRow> {
  let row = options.fresh
    ? await (options.shared ? sharedReadOf(deps)(id) : loadDecision(deps.database.db, id))
    : await readThroughCache(deps, id);
  if (!row || !canSee(principal, row)) throw notFound("decision not found");
  if (isOverdue(row, deps.clock.now())) {
    await settleOverdue(deps, { ids: [id] });
    row = (await loadDecision(deps.database.db, id))!;
  }
  return row;
}

/** How long past a decision's deadline a long-poll waits before reading it again (clock skew between replicas). */
const EXPIRY_MARGIN_MS = 50;

/** Long-poll: answers as soon as the decision leaves pending (on any replica), at its deadline, or after `seconds`. */
export async function waitForDecision(
  deps: DecisionDeps,
  principal: Principal,
  id: string,
  seconds: number,
  signal?: AbortSignal,
): Promise<DecisionRow> {
  const notifier = notifierOf(deps);
  await notifier.ready().catch(() => {
    throw new ApiError(503, "notifications_unavailable", "waiting is unavailable right now; retry shortly", undefined, {
      "Retry-After": "2",
    });
  });
  // Registered before the read: a verdict committed between the two still wakes this waiter.
  const waiter = notifier.waitForSettlement(id, seconds * 1000);
  const onAbort = () => waiter.cancel();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    // Fresh, since a cached copy could predate a change whose notification came before the waiter
    // registered; shared with the waiters of this decision that registered with this one.
    const current = await getDecision(deps, principal, id, { fresh: true, shared: true });
    if (current.status !== "pending" || seconds === 0) return current;
    // Waiting stops at the deadline too: the read below then gives the decision its timeout outcome,
    // whether or not a sweeper has run by then.
    const untilExpiryMs = current.expiresAt.getTime() - deps.clock.now().getTime();
    let atExpiry = () => {};
    const expiry = new Promise<undefined>((resolve) => (atExpiry = () => resolve(undefined)));
    const expiryTimer = untilExpiryMs < seconds * 1000 ? setTimeout(atExpiry, Math.max(0, untilExpiryMs) + EXPIRY_MARGIN_MS) : undefined;
    const settled = await Promise.race([waiter.settled, expiry]).finally(() => clearTimeout(expiryTimer));
    return settled && canSee(principal, settled) ? settled : await getDecision(deps, principal, id, { fresh: true });
  } finally {
    waiter.cancel();
    signal?.removeEventListener("abort", onAbort);
  }
}

/** `resolvedOnly` leaves pending decisions out (the console's history), so a page is still `limit` rows. */
export async function listDecisions(
  deps: DecisionDeps,
  principal: Principal,
  filters: ListFilters,
  options: { resolvedOnly?: boolean } = {},
) {
  await settleOverdue(deps, {});
  const conditions: (SQL | undefined)[] = [
    filters.status ? eq(decisions.status, filters.status) : undefined,
    options.resolvedOnly ? ne(decisions.status, "pending") : undefined,
    filters.kind ? eq(decisions.kind, filters.kind) : undefined,
    filters.priority ? eq(decisions.priority, filters.priority) : undefined,
    filters.requester ? eq(decisions.requesterKeyId, filters.requester) : undefined,
    filters.decided_by ? eq(decisions.decidedBy, filters.decided_by) : undefined,
    filters.policy_id ? eq(decisions.policyId, filters.policy_id) : undefined,
    principal.role === "service" ? eq(decisions.requesterKeyId, principal.keyId) : undefined,
    filters.created_after ? gte(decisions.createdAt, filters.created_after) : undefined,
    filters.created_before ? lt(decisions.createdAt, filters.created_before) : undefined,
  ];
  if (filters.cursor) {
    const cursor = decodeCursor(filters.cursor);
    // The id goes into a uuid comparison: check it here so a forged cursor is a 400, not a database error.
    if (!isUuid(cursor.id)) throw invalidCursor();
    conditions.push(afterCursor(decisions.createdAt, decisions.id, filters.cursor));
  }
  const rows = await deps.database.db
    .select()
    .from(decisions)
    .where(and(...conditions))
    .orderBy(desc(decisions.createdAt), desc(decisions.id))
    .limit(filters.limit + 1);
  return toPage(rows, filters.limit, presentDecision);
}

const invalidCursor = () => badRequest("invalid_cursor", "cursor is malformed; pass next_cursor from a previous page unchanged");

/**
 * The operator queue (the `pending_decisions` view): highest priority first, then oldest. Its cursor
 * carries the priority rank with the keyset, as `rank.id` in the cursor's id slot.
 */
export async function listQueue(deps: DecisionDeps, principal: Principal, query: { limit: number; cursor?: string | undefined }) {
  await settleOverdue(deps, {});
  const v = pendingDecisions;
  const conditions: (SQL | undefined)[] = [principal.role === "service" ? eq(v.requesterKeyId, principal.keyId) : undefined];
  if (query.cursor) {
    const cursor = decodeCursor(query.cursor);
    const [rank, id] = cursor.id.split(".");
    if (!rank || !/^[0-3]$/.test(rank) || !id || !isUuid(id)) {
      throw invalidCursor();
    }
    conditions.push(
      sql`(${v.priorityRank}, ${v.createdAt}, ${v.id}) > (${Number(rank)}, ${cursor.createdAt.toISOString()}::timestamptz, ${id}::uuid)`,
    );
  }
  const rows = await deps.database.db
    .select()
    .from(v)
    .where(and(...conditions))
    .orderBy(asc(v.priorityRank), asc(v.createdAt), asc(v.id))
    .limit(query.limit + 1);
  const page = rows.slice(0, query.limit);
  const last = page.at(-1);
  return {
    data: page.map((row) => ({
      id: row.id,
      kind: row.kind,
      title: row.title,
      priority: row.priority,
      escalation_level: row.escalationLevel,
      required_approvals: row.requiredApprovals,
      requester_key_id: row.requesterKeyId,
      created_at: row.createdAt.toISOString(),
      expires_at: row.expiresAt.toISOString(),
    })),
    next_cursor:
      rows.length > query.limit && last ? encodeCursor({ createdAt: last.createdAt, id: `${last.priorityRank}.${last.id}` }) : null,
  };
}

// ── Verdicts ────────────────────────────────────────────────────────────────────────────────────
const notPending = (row: DecisionRow) =>
  conflict("decision_not_pending", `the decision is already ${row.status}`, { status: row.status, decision: presentDecision(row) });

/** Why a conditional update matched nothing: the precise 4xx, checked against the current row. */
async function refusal(
  deps: DecisionDeps,
  principal: Principal,
  id: string,
  checks: (row: DecisionRow) => ApiError | undefined,
): Promise<ApiError> {
  const row = await getDecision(deps, principal, id, { fresh: true });
  return (
    checks(row) ?? conflict("decision_changed", "the decision changed concurrently; read it and retry", { decision: presentDecision(row) })
  );
}

const pendingAndLive = (now: Date) => [eq(decisions.status, "pending"), sql`${decisions.expiresAt} > ${now.toISOString()}::timestamptz`];
/** Escalated decisions are for admins: escalation hands the decision to the higher role. */
const resolvableBy = (principal: Principal) => (principal.role === "admin" ? [] : [eq(decisions.escalationLevel, 0)]);
const escalatedRefusal = (principal: Principal, row: DecisionRow) =>
  row.escalationLevel > 0 && principal.role !== "admin"
    ? new ApiError(403, "escalated_to_admin", `the decision is escalated (level ${row.escalationLevel}); an admin must resolve it`)
    : undefined;

const PRIORITY_RANK_SQL = (value: SQL | string) =>
  sql`(case ${value} when 'low' then 0 when 'medium' then 1 when 'high' then 2 when 'critical' then 3 end)`;
/** The decision's priority raised to `priority` when that is higher; never lowered. */
const raisedPrioritySql = (priority: string) =>
  sql`case when ${PRIORITY_RANK_SQL(sql`${priority}::text`)} > ${PRIORITY_RANK_SQL(sql`${decisions.priority}`)} then ${priority}::text else ${decisions.priority} end`;

/**
 * The enforced rules on an edited payload. A deny refuses the edit (422 `policy_denied_edit`, naming
 * the rule); a require that raises the quorum or priority is returned for the approval to apply.
 */
async function recheckEdit(deps: DecisionDeps, principal: Principal, id: string, payload: unknown): Promise<MatchedRule | null> {
  const current = await getDecision(deps, principal, id, { fresh: true });
  if (current.status !== "pending") return null; // the conditional update answers the precise refusal
  const [requester] = await deps.database.db
    .select({ name: apiKeys.name, role: apiKeys.role })
    .from(apiKeys)
    .where(eq(apiKeys.id, current.requesterKeyId));
  const evaluation = await evaluateDecision(
    deps,
    {
      kind: current.kind,
      priority: current.priority,
      title: current.title,
      requiredApprovals: current.requiredApprovals,
      payload,
      context: current.context,
      requester: { id: current.requesterKeyId, name: requester?.name ?? "", role: requester?.role ?? "" },
    },
    { enforcedOnly: true },
  );
  const matched = evaluation?.matched;
  if (!matched) return null;
  if (matched.outcome === "deny") {
    deps.logger.info("approval with edits refused by policy", { decision_id: id, policy_id: matched.policy_id, version: matched.version });
    throw new ApiError(
      422,
      "policy_denied_edit",
      `the edited payload is denied by policy ${matched.name}: ${matched.reason ?? "no reason given"}`,
      {
        policy_id: matched.policy_id,
        policy_version: matched.version,
        policy_name: matched.name,
        reason: matched.reason,
      },
    );
  }
  if (matched.outcome !== "require") return null;
  const raisesQuorum = (matched.required_approvals ?? 0) > current.requiredApprovals;
  const raisesPriority = higherPriority(current.priority, matched.priority) !== current.priority;
  return raisesQuorum || raisesPriority ? matched : null;
}

export async function approveDecision(
  deps: DecisionDeps,
  principal: Principal,
  id: string,
  input: { reason?: string | undefined; payload?: unknown },
): Promise<DecisionRow> {
  const me = principal.keyId;
  const person = principal.personId;
  const now = deps.clock.now();
  const edited = input.payload !== undefined;
  const editedHash = edited ? sha256Hex(boundedCanonicalJson(deps.config, input.payload)) : undefined;
  // Edits are re-checked: the rules run again on the edited payload (the decision's own kind, title and
  // requester: an edit changes the payload only). A deny refuses the approval; a require raises the
  // quorum (and priority), and this approval then counts as one of the raised quorum.
  const demanded = edited ? await recheckEdit(deps, principal, id, input.payload) : null;
  const raise = demanded?.required_approvals ?? null;
  const required = raise ? sql`greatest(${decisions.requiredApprovals}, ${raise}::smallint)` : sql`${decisions.requiredApprovals}`;
  const quorumReached = sql`cardinality(${decisions.approverPeople}) + 1 >= ${required}`;
  const conditions = [
    ...pendingAndLive(now),
    ...resolvableBy(principal),
    sql`${decisions.requesterKeyId} <> ${me}::uuid`,
    sql`${decisions.requesterPersonId} <> ${person}::uuid`,
    sql`not (${person}::uuid = any(${decisions.approverPeople}))`,
    ...(edited ? [eq(decisions.requiredApprovals, 1)] : []),
  ];
  const row = await applyTransition(
    deps,
    id,
    conditions,
    {
      approvals: sql`array_append(${decisions.approvals}, ${me}::uuid)`,
      approverPeople: sql`array_append(${decisions.approverPeople}, ${person}::uuid)`,
      status: sql`case when ${quorumReached} then 'approved' else 'pending' end`,
      resolvedAt: sql`case when ${quorumReached} then ${now.toISOString()}::timestamptz end`,
      resolvedBy: sql`case when ${quorumReached} then ${me}::uuid end`,
      resolutionReason: sql`case when ${quorumReached} then ${input.reason ?? null}::text end`,
      decidedBy: sql`case when ${quorumReached} then 'human' end`,
      ...(edited ? { approvedPayload: sql`${JSON.stringify(input.payload)}::jsonb`, approvedPayloadHash: editedHash } : {}),
      ...(raise ? { requiredApprovals: required } : {}),
      ...(demanded?.priority ? { priority: raisedPrioritySql(demanded.priority) } : {}),
    },
    {
      type: sql`case when updated.status = 'approved' then 'approved' else 'approval_recorded' end`,
      actorKeyId: me,
      fromStatus: "pending",
      reason: input.reason ?? null,
      // The audit trail keeps both versions when an operator approves with edits.
      data: sql`jsonb_build_object('approvals', cardinality(updated.approver_people), 'person_id', ${person}::uuid,
                                   'required_approvals', updated.required_approvals,
                                   'payload_hash', updated.payload_hash)
                || ${JSON.stringify({
                  ...(edited ? { edited_payload: input.payload, edited_payload_hash: editedHash } : {}),
                  ...(demanded ? { policy: policyRef(demanded) } : {}),
                })}::jsonb`,
    },
  );
  if (row) return row;
  throw await refusal(deps, principal, id, (current) => {
    if (current.status !== "pending") return notPending(current);
    if (current.requesterKeyId === me || current.requesterPersonId === person) {
      return new ApiError(
        403,
        "self_approval_forbidden",
        "the requester cannot approve its own decision, with this or any other of its keys",
      );
    }
    const escalated = escalatedRefusal(principal, current);
    if (escalated) return escalated;
    if (current.approverPeople.includes(person)) {
      return conflict(
        "already_approved",
        "you (with this or another of your keys) already approved this decision; quorum needs distinct people",
      );
    }
    if (edited && current.requiredApprovals > 1) {
      return new ApiError(422, "edits_require_single_approval", "a decision that needs several approvals cannot be approved with edits");
    }
    return undefined;
  });
}

export async function rejectDecision(deps: DecisionDeps, principal: Principal, id: string, reason: string): Promise<DecisionRow> {
  const now = deps.clock.now();
  const row = await applyTransition(
    deps,
    id,
    [...pendingAndLive(now), ...resolvableBy(principal)],
    { status: "rejected", resolvedAt: now, resolvedBy: principal.keyId, resolutionReason: reason, decidedBy: "human" },
    { type: "rejected", actorKeyId: principal.keyId, fromStatus: "pending", reason },
  );
  if (row) return row;
  throw await refusal(deps, principal, id, (current) =>
    current.status !== "pending" ? notPending(current) : escalatedRefusal(principal, current),
  );
}

export async function escalateDecision(
  deps: DecisionDeps,
  principal: Principal,
  id: string,
  reason: string | undefined,
): Promise<DecisionRow> {
  const now = deps.clock.now();
  const row = await applyTransition(
    deps,
    id,
    [...pendingAndLive(now), lt(decisions.escalationLevel, MAX_ESCALATION_LEVEL)],
    { escalationLevel: sql`${decisions.escalationLevel} + 1`, escalatedAt: now },
    {
      type: "escalated",
      actorKeyId: principal.keyId,
      fromStatus: "pending",
      reason: reason ?? null,
      data: sql`jsonb_build_object('level', updated.escalation_level)`,
    },
  );
  if (row) return row;
  throw await refusal(deps, principal, id, (current) => {
    if (current.status !== "pending") return notPending(current);
    if (current.escalationLevel >= MAX_ESCALATION_LEVEL) {
      return conflict("max_escalation_reached", `the decision is already at the highest escalation level (${MAX_ESCALATION_LEVEL})`);
    }
    return undefined;
  });
}

const notRequester = () => new ApiError(403, "not_requester", "only the key that requested this decision may do this");

export async function cancelDecision(
  deps: DecisionDeps,
  principal: Principal,
  id: string,
  reason: string | undefined,
): Promise<DecisionRow> {
  const now = deps.clock.now();
  const row = await applyTransition(
    deps,
    id,
    [...pendingAndLive(now), eq(decisions.requesterKeyId, principal.keyId)],
    { status: "cancelled", resolvedAt: now, resolvedBy: principal.keyId, resolutionReason: reason ?? null },
    { type: "cancelled", actorKeyId: principal.keyId, fromStatus: "pending", reason: reason ?? null },
  );
  if (row) return row;
  throw await refusal(deps, principal, id, (current) =>
    current.requesterKeyId !== principal.keyId ? notRequester() : current.status !== "pending" ? notPending(current) : undefined,
  );
}

/** Marks an approved decision as executed, once: every later call is a 409. */
export async function consumeDecision(deps: DecisionDeps, principal: Principal, id: string): Promise<DecisionRow> {
  const now = deps.clock.now();
  const row = await applyTransition(
    deps,
    id,
    [eq(decisions.status, "approved"), isNull(decisions.consumedAt), eq(decisions.requesterKeyId, principal.keyId)],
    { consumedAt: now },
    {
      type: "consumed",
      actorKeyId: principal.keyId,
      fromStatus: "approved",
      data: sql`jsonb_build_object('effective_payload_hash', coalesce(updated.approved_payload_hash, updated.payload_hash))`,
    },
  );
  if (row) return row;
  throw await refusal(deps, principal, id, (current) => {
    if (current.requesterKeyId !== principal.keyId) return notRequester();
    if (current.consumedAt)
      return conflict("already_consumed", "this approval was already consumed", { consumed_at: current.consumedAt.toISOString() });
    if (current.status !== "approved") {
      return conflict("decision_not_approved", `only an approved decision can be consumed; this one is ${current.status}`, {
        status: current.status,
      });
    }
    return undefined;
  });
}

// ── Expiry ──────────────────────────────────────────────────────────────────────────────────────
/**
 * Gives overdue pending decisions their `on_timeout` outcome: reject → expired, approve → approved,
 * escalate → one level up with another full window (expired once the top level times out).
 * Several replicas may sweep at once: rows are claimed with FOR UPDATE SKIP LOCKED, so each overdue
 * decision is settled by exactly one of them. With `ids` (a read that found its decision overdue)
 * the rows are waited for instead of skipped, so the caller sees the settled state.
 */
export async function settleOverdue(deps: DecisionDeps, options: { ids?: string[] }): Promise<number> {
  const now = deps.clock.now();
  const settled: Changed[] = [];
  await deps.database.db.transaction(async (tx) => {
    const due = await tx
      .select()
      .from(decisions)
      .where(
        and(eq(decisions.status, "pending"), lte(decisions.expiresAt, now), options.ids ? inArray(decisions.id, options.ids) : undefined),
      )
      .orderBy(asc(decisions.expiresAt))
      .limit(deps.config.DECISION_SWEEP_BATCH_SIZE)
      .for("update", options.ids ? {} : { skipLocked: true });
    for (const current of due) {
      const escalate = current.onTimeout === "escalate" && current.escalationLevel < MAX_ESCALATION_LEVEL;
      const approve = current.onTimeout === "approve";
      const set: DecisionUpdate = escalate
        ? {
            escalationLevel: current.escalationLevel + 1,
            escalatedAt: now,
            expiresAt: new Date(current.expiresAt.getTime() + (await originalWindowMs(tx, current))),
          }
        : {
            status: approve ? "approved" : "expired",
            resolvedAt: now,
            decidedBy: "timeout",
            resolutionReason: approve ? "approved by default: no verdict before the deadline" : "expired: no verdict before the deadline",
          };
      const update = tx
        .update(decisions)
        .set({ ...set, updatedAt: now })
        .where(eq(decisions.id, current.id))
        .returning();
      const type: DecisionEventType = escalate ? "escalated" : approve ? "approved" : "expired";
      const change = {
        type,
        actorKeyId: null,
        fromStatus: "pending",
        data: sql`jsonb_build_object('on_timeout', updated.on_timeout, 'level', updated.escalation_level)`,
      } as const;
      settled.push(changedRow(await tx.execute(changeStatement(update, change, now)))!);
    }
  });
  for (const changed of settled) await afterChange(deps, changed, "pending");
  return settled.length;
}

/**
 * The escalation deadline of a pending decision in seconds: its own `escalate_after`, else the
 * shortest `escalate_after_seconds` of the enabled notification routes told about it at its current
 * level; null when neither sets one.
 */
const escalationDeadlineSeconds = sql`coalesce(${decisions.escalateAfterSeconds}, (
  select min(r.escalate_after_seconds) from ${notificationRoutes} r
  where r.enabled and r.level = ${decisions.escalationLevel}
    and (r.kinds is null or ${decisions.kind} = any(r.kinds))
    and (r.policy_outcome is null or ${decisions.policyEvaluation} -> 'matched' ->> 'outcome' = r.policy_outcome)
    and (r.min_priority is null or array_position(${sql.raw(`array[${DECISION_PRIORITIES.map((p) => `'${p}'`).join(", ")}]`)}, ${decisions.priority})
                                   >= array_position(${sql.raw(`array[${DECISION_PRIORITIES.map((p) => `'${p}'`).join(", ")}]`)}, r.min_priority))))`;

/**
 * Escalates pending decisions nobody decided within their escalation deadline (counted from creation,
 * then from the last escalation) by one level, up to the highest; each escalation is an `escalated`
 * audit row with no actor, which tells the next level's notification routes. Safe with several
 * replicas (SKIP LOCKED). Expiry and its on_timeout still apply as before.
 */
export async function escalateOnDeadline(deps: DecisionDeps): Promise<number> {
  const now = deps.clock.now();
  const escalated: Changed[] = [];
  await deps.database.db.transaction(async (tx) => {
    const due = await tx
      .select({ id: decisions.id, deadline: sql<number>`${escalationDeadlineSeconds}`.mapWith(Number) })
      .from(decisions)
      .where(
        and(
          eq(decisions.status, "pending"),
          gt(decisions.expiresAt, now),
          lt(decisions.escalationLevel, MAX_ESCALATION_LEVEL),
          sql`coalesce(${decisions.escalatedAt}, ${decisions.createdAt}) + make_interval(secs => ${escalationDeadlineSeconds}) <= ${now.toISOString()}::timestamptz`,
        ),
      )
      .orderBy(asc(decisions.createdAt))
      .limit(deps.config.DECISION_SWEEP_BATCH_SIZE)
      .for("update", { skipLocked: true });
    for (const { id, deadline } of due) {
      const update = tx
        .update(decisions)
        .set({ escalationLevel: sql`${decisions.escalationLevel} + 1`, escalatedAt: now, updatedAt: now })
        .where(eq(decisions.id, id))
        .returning();
      const change = {
        type: "escalated",
        actorKeyId: null,
        fromStatus: "pending",
        reason: `no verdict within ${deadline} s`,
        data: sql`jsonb_build_object('level', updated.escalation_level, 'automatic', true, 'escalate_after', ${deadline}::int)`,
      } as const;
      escalated.push(changedRow(await tx.execute(changeStatement(update, change, now)))!);
    }
  });
  for (const changed of escalated) await afterChange(deps, changed, "pending");
  return escalated.length;
}

/** The window the decision was created with (kept in its audit trail), for escalate-on-timeout. */
async function originalWindowMs(tx: Tx, row: DecisionRow): Promise<number> {
  const [created] = await tx
    .select({ data: decisionEvents.data })
    .from(decisionEvents)
    .where(and(eq(decisionEvents.decisionId, row.id), eq(decisionEvents.type, "created")));
  const seconds = Number(created?.data.expires_in);
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : row.expiresAt.getTime() - row.createdAt.getTime();
}
