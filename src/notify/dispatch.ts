import { and, asc, eq, gt, inArray, isNull, sql } from "drizzle-orm";
import type { Database } from "../db/client";
import { uuidv7 } from "../db/ids";
import {
  type DecisionRow,
  decisionEvents,
  decisions,
  type NotificationChannel,
  type NotificationRouteRow,
  notificationCursor,
  notificationDeliveries,
  notificationRoutes,
  operators,
} from "../db/schema";
import type { Clock } from "../deps";
import type { Logger } from "../observability/logger";
import { routeMatches } from "./routes-service";

export interface DispatchDeps {
  db: Database;
  clock: Clock;
  logger: Logger;
  /** the channels this server can send on (Slack needs a bot token, email an SMTP server) */
  channels: ReadonlySet<NotificationChannel>;
  batchSize?: number;
}

type NewDelivery = Omit<typeof notificationDeliveries.$inferInsert, "id">;

/** Events that ask people for a verdict, and the level whose routes hear of it. */
const askingLevel = (type: string, data: Record<string, unknown>, decision: DecisionRow): number | undefined => {
  if (type === "created") return 0;
  if (type === "escalated") return typeof data.level === "number" ? data.level : decision.escalationLevel;
  return undefined;
};
/** Events after which the Slack messages already posted about a decision are edited to show its state. */
const UPDATING = new Set(["approval_recorded", "approved", "rejected", "expired", "cancelled", "escalated"]);

/** The messages a route's targets expand to for one event. */
async function requestsFor(
  db: Database,
  route: NotificationRouteRow,
  base: Pick<NewDelivery, "decisionId" | "eventId">,
  channels: ReadonlySet<NotificationChannel>,
): Promise<NewDelivery[]> {
  const out: NewDelivery[] = [];
  const add = (channel: NotificationChannel, target: string, operatorId: string | null) => {
    if (channels.has(channel)) out.push({ ...base, routeId: route.id, channel, target, operatorId, purpose: "request" });
  };
  for (const target of route.targets) {
    if (target.type === "slack_channel") add("slack", target.channel, null);
    if (target.type === "people" && target.operator_ids.length > 0) {
      const people = await db
        .select()
        .from(operators)
        .where(and(inArray(operators.id, target.operator_ids), isNull(operators.disabledAt)));
      for (const person of people) {
        if (target.via.includes("slack") && person.slackUserId) add("slack", person.slackUserId, person.id);
        if (target.via.includes("email") && person.email) add("email", person.email, person.id);
      }
    }
    if (target.type === "email" && target.addresses.length > 0) {
      // An address that is a person's gets their action links; any other gets a console link only.
      const addresses = target.addresses.map((address) => address.toLowerCase());
      const people = await db
        .select()
        .from(operators)
        .where(and(inArray(operators.email, addresses), isNull(operators.disabledAt)));
      for (const address of addresses) add("email", address, people.find((p) => p.email === address)?.id ?? null);
    }
  }
  return out;
}

/**
 * Reads the decision audit trail past the cursor and writes the outbox rows it calls for, then moves
 * the cursor, in one transaction. The cursor row is taken with SKIP LOCKED, so one replica dispatches
 * at a time and the others skip; the unique key on the outbox makes a repeated batch harmless.
 * Returns how many events were read.
 */
export async function dispatchNotificationEvents(deps: DispatchDeps): Promise<number> {
  const batch = deps.batchSize ?? 500;
  return deps.db.transaction(async (tx) => {
    // No row yet: a new database, read from its first event.
    await tx.insert(notificationCursor).values({ id: 1, lastEventId: 0 }).onConflictDoNothing();
    const [cursor] = await tx.select().from(notificationCursor).where(eq(notificationCursor.id, 1)).for("update", { skipLocked: true });
    if (!cursor) return 0;
    const events = await tx
      .select({ event: decisionEvents, decision: decisions })
      .from(decisionEvents)
      .innerJoin(decisions, eq(decisions.id, decisionEvents.decisionId))
      .where(gt(decisionEvents.id, cursor.lastEventId))
      .orderBy(asc(decisionEvents.id))
      .limit(batch);
    const ready = upToFirstOpenGap(events, cursor.lastEventId, deps.clock.now().getTime());
    if (ready.length === 0) return 0;
    const routes = await tx.select().from(notificationRoutes).where(eq(notificationRoutes.enabled, true));
    // The Slack messages already posted about the decisions whose changes update them: one read per batch.
    const updated = [...new Set(ready.filter(({ event }) => UPDATING.has(event.type)).map(({ decision }) => decision.id))];
    const posted =
      updated.length === 0
        ? []
        : await tx
            .select()
            .from(notificationDeliveries)
            .where(
              and(
                inArray(notificationDeliveries.decisionId, updated),
                eq(notificationDeliveries.channel, "slack"),
                eq(notificationDeliveries.purpose, "request"),
                sql`${notificationDeliveries.externalRef} ? 'ts'`,
              ),
            );
    const postedByDecision = new Map<string, typeof posted>();
    for (const message of posted) postedByDecision.set(message.decisionId, [...(postedByDecision.get(message.decisionId) ?? []), message]);
    const rows: NewDelivery[] = [];
    for (const { event, decision } of ready) {
      const base = { decisionId: decision.id, eventId: event.id };
      const level = askingLevel(event.type, event.data, decision);
      if (level !== undefined) {
        for (const route of routes.filter((r) => routeMatches(r, decision, level))) {
          rows.push(...(await requestsFor(tx, route, base, deps.channels)));
        }
      }
      if (UPDATING.has(event.type)) {
        for (const message of postedByDecision.get(decision.id) ?? []) {
          const ref = message.externalRef!;
          rows.push({
            ...base,
            routeId: message.routeId,
            channel: "slack",
            target: `${ref.channel}/${ref.ts}`,
            operatorId: message.operatorId,
            purpose: "update",
            externalRef: { channel: ref.channel!, ts: ref.ts! },
          });
        }
      }
    }
    const now = deps.clock.now();
    if (rows.length > 0) {
      await tx
        .insert(notificationDeliveries)
        .values(rows.map((row) => ({ ...row, id: uuidv7(now.getTime()), nextAttemptAt: now, createdAt: now })))
        .onConflictDoNothing();
    }
    await tx
      .update(notificationCursor)
      .set({ lastEventId: ready.at(-1)!.event.id })
      .where(eq(notificationCursor.id, 1));
    return ready.length;
  });
}

/** How long a gap in the audit trail's ids may be a transaction still to commit, rather than a rolled-back insert. */
export const GAP_WAIT_MS = 10_000;

/**
 * Identity values are handed out at insert and become visible at commit, so a reader can see event
 * N+1 before N commits. Reading past such a gap would skip N for good; instead, events are taken up
 * to the first gap younger than GAP_WAIT_MS. A gap older than that is a rolled-back insert and is
 * passed over.
 */
export function upToFirstOpenGap<T extends { event: { id: number; createdAt: Date } }>(events: T[], after: number, nowMs: number): T[] {
  let expected = after + 1;
  for (const [index, item] of events.entries()) {
    if (item.event.id !== expected && nowMs - item.event.createdAt.getTime() < GAP_WAIT_MS) return events.slice(0, index);
    expected = item.event.id + 1;
  }
  return events;
}
