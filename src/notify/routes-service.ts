import { and, desc, eq, inArray, isNull } from "drizzle-orm";
import type { RequestMeta } from "../auth/audit";
import type { Actor, KeyServiceDeps } from "../auth/keys-service";
import type { Database } from "../db/client";
import { uuidv7 } from "../db/ids";
import {
  DECISION_PRIORITIES,
  type DecisionRow,
  type NotificationRouteRow,
  type NotificationTarget,
  notificationRoutes,
  operators,
} from "../db/schema";
import { ApiError, notFound } from "../http/errors";
import { afterCursor, toPage } from "../http/pagination";

type Priority = (typeof DECISION_PRIORITIES)[number];
const rank = (priority: Priority) => DECISION_PRIORITIES.indexOf(priority);

/** Whether a route is told about a decision at an escalation level. */
export function routeMatches(
  route: NotificationRouteRow,
  decision: Pick<DecisionRow, "kind" | "priority" | "policyEvaluation">,
  level: number,
): boolean {
  if (!route.enabled || route.level !== level) return false;
  if (route.kinds && !route.kinds.includes(decision.kind)) return false;
  if (route.policyOutcome === "require" && !policyRequiredPeople(decision)) return false;
  return !route.minPriority || rank(decision.priority) >= rank(route.minPriority);
}

/** Whether an enforced policy rule sent the decision to people (outcome `require`). */
export const policyRequiredPeople = (decision: Pick<DecisionRow, "policyEvaluation">) => {
  const matched = decision.policyEvaluation?.matched as { outcome?: unknown } | null | undefined;
  return matched?.outcome === "require";
};

/** The public shape of a route. */
export function routeView(row: NotificationRouteRow) {
  return {
    id: row.id,
    name: row.name,
    kinds: row.kinds,
    min_priority: row.minPriority,
    level: row.level,
    policy_outcome: row.policyOutcome,
    targets: row.targets,
    escalate_after_seconds: row.escalateAfterSeconds,
    enabled: row.enabled,
    created_by: row.createdBy,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

export interface RouteInput {
  name: string;
  kinds: string[] | null;
  minPriority: Priority | null;
  level: number;
  policyOutcome: "require" | null;
  targets: NotificationTarget[];
  escalateAfterSeconds: number | null;
  enabled: boolean;
}

/** Every person a route names must exist: a typo would otherwise silently tell nobody. */
async function assertPeopleExist(db: Database, targets: NotificationTarget[]) {
  const ids = [...new Set(targets.flatMap((target) => (target.type === "people" ? target.operator_ids : [])))];
  if (ids.length === 0) return;
  const found = await db
    .select({ id: operators.id })
    .from(operators)
    .where(and(inArray(operators.id, ids), isNull(operators.disabledAt)));
  const known = new Set(found.map((row) => row.id));
  const unknown = ids.filter((id) => !known.has(id));
  if (unknown.length > 0)
    throw new ApiError(422, "unknown_operator", "a route names people who do not exist or are disabled", { operator_ids: unknown });
}

export async function createNotificationRoute(deps: KeyServiceDeps, actor: Actor, input: RouteInput, meta: RequestMeta) {
  await assertPeopleExist(deps.db, input.targets);
  const now = deps.clock.now();
  return deps.db.transaction(async (tx) => {
    const [row] = await tx
      .insert(notificationRoutes)
      .values({ id: uuidv7(now.getTime()), ...input, createdBy: actor?.keyId ?? null, createdAt: now, updatedAt: now })
      .returning();
    await deps.audit.write(tx, { ...meta, action: "route.create", outcome: "success", actorKeyId: actor?.keyId, targetId: row!.id });
    return row!;
  });
}

export async function updateNotificationRoute(
  deps: KeyServiceDeps,
  actor: Actor,
  id: string,
  input: Partial<RouteInput>,
  meta: RequestMeta,
) {
  if (input.targets) await assertPeopleExist(deps.db, input.targets);
  const now = deps.clock.now();
  return deps.db.transaction(async (tx) => {
    const [row] = await tx
      .update(notificationRoutes)
      .set({ ...input, updatedAt: now })
      .where(eq(notificationRoutes.id, id))
      .returning();
    if (!row) throw notFound("no such notification route");
    await deps.audit.write(tx, {
      ...meta,
      action: "route.update",
      outcome: "success",
      actorKeyId: actor?.keyId,
      targetId: id,
      reason: `changed: ${Object.keys(input).join(", ")}`,
    });
    return row;
  });
}

export async function getNotificationRoute(db: Database, id: string) {
  const [row] = await db.select().from(notificationRoutes).where(eq(notificationRoutes.id, id)).limit(1);
  if (!row) throw notFound("no such notification route");
  return row;
}

export async function listNotificationRoutes(db: Database, query: { limit: number; cursor?: string | undefined }) {
  const rows = await db
    .select()
    .from(notificationRoutes)
    .where(afterCursor(notificationRoutes.createdAt, notificationRoutes.id, query.cursor))
    .orderBy(desc(notificationRoutes.createdAt), desc(notificationRoutes.id))
    .limit(query.limit + 1);
  return toPage(rows, query.limit, routeView);
}
