import { asc, eq, gt, max } from "drizzle-orm";
import type { Principal } from "../auth/rbac";
import type { DatabaseHandle } from "../db/client";
import { decisionEvents, decisions } from "../db/schema";
import { decisionJson, presentDecision } from "./present";
import { type DecisionEvent, EVENT_DECISION_MAX_BYTES } from "./schemas";
import { canSee, type DecisionDeps, notifierOf, utf8Length } from "./service";

/**
 * The audit trail as an ordered feed, for Server-Sent Events with Last-Event-ID resumption.
 *
 * Event ids come from an identity sequence, allocated when a transaction inserts its audit row, but
 * transactions commit in their own order: id 11 may be visible while id 10 is still in flight. A
 * reader that sent 11 and then resumed "after 11" would skip 10 for ever. So this reader delivers
 * strictly in id order and never past a hole: when the next id it expects is missing, it holds the
 * events above it and re-scans until the hole fills (the in-flight transaction commits, which takes
 * milliseconds: the audit insert is the last statement before COMMIT) or until GAP_GRACE_MS passes,
 * after which the hole counts as a rolled-back id (sequences never reuse one) and is stepped over.
 * Because nothing above a hole is ever sent early, the id of the last event sent is always a safe
 * resume point, and `Last-Event-ID` resumes with neither gaps nor repeats.
 *
 * Scans are driven by the change notifications (no polling while idle), with a slow re-scan as a
 * safety net against a notification lost during a reconnect.
 *
 * Each event carries the decision as GET /v1/decisions/{id} presents it, read by the same scan (the
 * notifications themselves carry only ids, far below NOTIFY's 8,000-byte limit, so every replica's
 * streams read the decision from the database, once per scan for all of them). It is the decision as
 * stored when the scan ran: never older than the event, and newer when later changes had committed
 * by then (a replay, or a burst read in one scan). A decision whose JSON exceeds
 * EVENT_DECISION_MAX_BYTES is left out (`decision: null`): the client reads it with GET.
 */
export const GAP_GRACE_MS = 3_000;
const HOLD_RESCAN_MS = 100;
const IDLE_RESCAN_MS = 10_000;
const SCAN_LIMIT = 500;

export interface StreamedEvent {
  id: number;
  type: string;
  data: DecisionEvent;
}

type ScannedRow = { event: typeof decisionEvents.$inferSelect; decision: typeof decisions.$inferSelect };

// Scans in flight, per database and start id. Streams that are caught up all wait after the same id,
// so a change wakes them together: they share one query instead of running one each.
const scansInFlight = new WeakMap<DatabaseHandle, Map<number, Promise<ScannedRow[]>>>();

function scanAfter(deps: DecisionDeps, floor: number): Promise<ScannedRow[]> {
  let scans = scansInFlight.get(deps.database);
  if (!scans) scansInFlight.set(deps.database, (scans = new Map()));
  const inFlight = scans.get(floor);
  if (inFlight) return inFlight;
  const scan = deps.database.db
    .select({ event: decisionEvents, decision: decisions })
    .from(decisionEvents)
    .innerJoin(decisions, eq(decisions.id, decisionEvents.decisionId))
    .where(gt(decisionEvents.id, floor))
    .orderBy(asc(decisionEvents.id))
    .limit(SCAN_LIMIT)
    .finally(() => scans.delete(floor));
  scans.set(floor, scan);
  return scan;
}

const streamedData = new WeakMap<ScannedRow["event"], StreamedEvent["data"]>();
/** The event as streams send it, built once per scanned row however many streams send it. */
function streamed({ event, decision }: ScannedRow): StreamedEvent["data"] {
  let data = streamedData.get(event);
  if (!data) {
    data = {
      event_id: event.id,
      decision_id: event.decisionId,
      type: event.type,
      from_status: event.fromStatus,
      to_status: event.toStatus,
      actor_key_id: event.actorKeyId,
      reason: event.reason,
      data: event.data,
      created_at: event.createdAt.toISOString(),
      decision: utf8Length(decisionJson(decision)) <= EVENT_DECISION_MAX_BYTES ? presentDecision(decision) : null,
    };
    streamedData.set(event, data);
  }
  return data;
}

const streamedJson = new WeakMap<StreamedEvent["data"], string>();
/** An event's data as JSON text, serialised once for every stream that sends it. */
export function eventJson(event: StreamedEvent): string {
  let text = streamedJson.get(event.data);
  if (text === undefined) streamedJson.set(event.data, (text = JSON.stringify(event.data)));
  return text;
}

/** The newest event id now: where a stream without Last-Event-ID starts (it shows what happens next). */
export async function latestEventId(deps: DecisionDeps): Promise<number> {
  const [row] = await deps.database.db.select({ id: max(decisionEvents.id) }).from(decisionEvents);
  return Number(row?.id ?? 0);
}

/**
 * Calls `send` for every event after `afterId` that the principal may see, in id order, until the
 * signal aborts. `send` applies backpressure by being awaited.
 */
export async function followEvents(
  deps: DecisionDeps,
  principal: Principal,
  afterId: number,
  send: (event: StreamedEvent) => Promise<void>,
  signal: AbortSignal,
): Promise<void> {
  const notifier = notifierOf(deps);
  await notifier.ready();
  // A shutting-down process ends its streams; EventSource clients reconnect to another replica.
  signal = AbortSignal.any([signal, notifier.closing]);
  let wake: (() => void) | undefined;
  // Set by a change that arrives while a scan runs, so the next sleep is skipped rather than missed.
  let changed = false;
  const unsubscribe = notifier.onChange(() => {
    changed = true;
    wake?.();
  });
  const onAbort = () => wake?.();
  signal.addEventListener("abort", onAbort, { once: true });
  let floor = afterId;
  let holeSeenAt: number | undefined;
  try {
    while (!signal.aborted) {
      changed = false;
      const rows = await scanAfter(deps, floor);
      let holding = false;
      for (const row of rows) {
        const { event, decision } = row;
        if (event.id !== floor + 1) {
          // Real time, not the injected clock: this bounds how long a commit may lag its id allocation.
          holeSeenAt ??= Date.now();
          if (Date.now() - holeSeenAt < GAP_GRACE_MS) {
            holding = true;
            break;
          }
        }
        holeSeenAt = undefined;
        floor = event.id;
        if (!canSee(principal, decision)) continue;
        await send({ id: event.id, type: event.type, data: streamed(row) });
        if (signal.aborted) return;
      }
      if ((rows.length === SCAN_LIMIT || changed) && !holding) continue; // more to read already
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, holding ? HOLD_RESCAN_MS : IDLE_RESCAN_MS);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  } finally {
    unsubscribe();
    signal.removeEventListener("abort", onAbort);
  }
}
