import type { Meter } from "@opentelemetry/api";
import { and, desc, eq, gte, lt, type SQL, sql } from "drizzle-orm";
import type { Cache } from "../cache";
import type { Database, DatabaseHandle } from "../db/client";
import { COPY_NULL, copyField, rowsOf } from "../db/client";
import { errorCodes } from "../db/errors";
import { uuidv7 } from "../db/ids";
import { type Severity, telemetryEvents, telemetrySnapshots } from "../db/schema";
import type { Clock } from "../deps";
import { notFound, validationFailed } from "../http/errors";
import { afterCursor, toPage } from "../http/pagination";
import type { Logger } from "../observability/logger";
import { cacheInstruments } from "../observability/metrics";
import { MAX_BUCKETS, MAX_FUTURE_SKEW_MS, type TelemetryEventInput } from "./schemas";

export interface TelemetryDeps {
  db: Database;
  /** COPY into a table, where the database has it (PostgreSQL): the fast path for event batches */
  copyIn?: DatabaseHandle["copyIn"];
  cache: Cache;
  clock: Clock;
  logger: Logger;
  instruments: TelemetryInstruments;
  retentionDays: number;
  snapshotTtlMs: number;
}

export type TelemetryInstruments = ReturnType<typeof telemetryInstruments>;

export function telemetryInstruments(meter: Meter) {
  return {
    ingested: meter.createCounter("arbiter.telemetry.events.ingested", { description: "Telemetry events stored" }),
    duplicates: meter.createCounter("arbiter.telemetry.events.duplicates", {
      description: "Telemetry events ignored because their id was already stored",
    }),
    snapshots: meter.createCounter("arbiter.telemetry.snapshots.received", { description: "Telemetry snapshots stored" }),
    cache: cacheInstruments(meter),
  };
}

// ── Events ──────────────────────────────────────────────────────────────────────────────────────

/**
 * Stores a batch, all or nothing. The batch is checked whole before anything is written: one bad
 * event rejects the batch, with every bad index named. Ids already stored (a retried batch) are
 * skipped, so the accepted count is what this request added.
 *
 * On PostgreSQL the rows are streamed with one COPY, the cheapest way in for the server (no
 * statement to unpack, no speculative insertion per row). COPY cannot skip a stored id: it fails
 * whole on a unique violation (or a deadlock), and the batch then goes through the conflict-safe
 * INSERT instead, so a retried batch costs a failed COPY (cut short at its first known id) plus the
 * INSERT. A batch that repeats an id within itself goes straight to the INSERT. PGlite always takes
 * the INSERT. Either way one statement writes the batch: a 2xx means it is committed.
 */
export async function ingestEvents(
  deps: TelemetryDeps,
  events: TelemetryEventInput[],
  ingestedBy: string | undefined,
): Promise<{ received: number; accepted: number; duplicates: number }> {
  const now = deps.clock.now().getTime();
  const oldest = now - deps.retentionDays * 86_400_000;
  const problems = events.flatMap((event, index) => {
    const at = event.occurred_at.getTime();
    const path = `json.events.${index}.occurred_at`;
    if (at > now + MAX_FUTURE_SKEW_MS) return [{ path, message: "occurred_at is in the future", code: "too_big" }];
    if (at < oldest) return [{ path, message: `occurred_at is older than the ${deps.retentionDays}-day retention`, code: "too_small" }];
    return [];
  });
  if (problems.length > 0) throw validationFailed(problems);

  const receivedAt = new Date(now).toISOString();
  const rows = events.map((event) => ({
    id: event.id ?? uuidv7(now),
    type: event.type,
    source: event.source,
    severity: event.severity,
    occurred_at: event.occurred_at.toISOString(),
    attributes: event.attributes,
    trace_id: event.trace_id ?? null,
  }));
  // Batches that share ids and arrive together wait for each other's uncommitted rows. Taken in one
  // order (by id) they cannot wait in a cycle, which PostgreSQL would end by failing one of them
  // (deadlock detected). Generated ids already ascend; only a batch with ids of the caller's is sorted.
  if (events.some((event) => event.id !== undefined)) rows.sort(byId);
  let accepted: number | undefined;
  if (deps.copyIn && !repeatsAnId(events)) {
    try {
      await deps.copyIn("telemetry_events", COPY_COLUMNS, copyText(rows, ingestedBy, receivedAt));
      accepted = rows.length;
    } catch (error) {
      // An id already stored, or being stored by a concurrent request: the INSERT below skips it. The
      // COPY was rolled back whole, so a deadlock (with some other writer) is retried the same way.
      if (!errorCodes(error).some((code) => COPY_FALLBACK_CODES.has(code))) throw error;
      deps.logger.debug("telemetry COPY met a stored id (or a deadlock); inserting the batch skipping known ids", {
        events: rows.length,
        code: errorCodes(error)[0],
      });
    }
  }
  accepted ??= await insertSkippingKnownIds(deps.db, rows, ingestedBy, receivedAt);
  const duplicates = rows.length - accepted;
  if (accepted > 0) deps.instruments.ingested.add(accepted);
  if (duplicates > 0) deps.instruments.duplicates.add(duplicates);
  return { received: rows.length, accepted, duplicates };
}

/** unique_violation, deadlock_detected */
const COPY_FALLBACK_CODES = new Set(["23505", "40P01"]);
const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
const COPY_COLUMNS = ["id", "type", "source", "severity", "occurred_at", "attributes", "trace_id", "ingested_by", "created_at"] as const;

interface EventRow {
  id: string;
  type: string;
  source: string;
  severity: Severity;
  occurred_at: string;
  attributes: Record<string, unknown>;
  trace_id: string | null;
}

/** Whether two events of the batch name the same id (COPY would fail on the second). */
function repeatsAnId(events: TelemetryEventInput[]): boolean {
  const seen = new Set<string>();
  for (const { id } of events) {
    if (id === undefined) continue;
    if (seen.has(id)) return true;
    seen.add(id);
  }
  return false;
}

/**
 * JSON text as a COPY field. JSON.stringify escapes every control character (tab, newline and
 * carriage return among them), so only its backslashes need escaping for COPY.
 */
const copyJson = (json: string) => (json.includes("\\") ? json.replaceAll("\\", "\\\\") : json);

/** The rows as COPY text, in COPY_COLUMNS order. */
function copyText(rows: EventRow[], ingestedBy: string | undefined, receivedAt: string): string {
  const tail = `\t${ingestedBy ? copyField(ingestedBy) : COPY_NULL}\t${receivedAt}\n`;
  let text = "";
  for (const row of rows) {
    // The schema already limits ids, types and sources to characters COPY does not treat specially;
    // copyField keeps that from being an assumption.
    text += `${copyField(row.id)}\t${copyField(row.type)}\t${copyField(row.source)}\t${row.severity}\t${row.occurred_at}\t${copyJson(JSON.stringify(row.attributes))}\t${row.trace_id === null ? COPY_NULL : copyField(row.trace_id)}${tail}`;
  }
  return text;
}

/**
 * One INSERT of the whole batch that skips ids already stored (ON CONFLICT DO NOTHING); returns the
 * number it stored. The batch travels as ONE jsonb parameter that the server unpacks
 * (jsonb_to_recordset): one statement of constant text, prepared once, instead of a statement of
 * 9 × n parameters built afresh for every batch. Only the number stored comes back.
 */
async function insertSkippingKnownIds(db: Database, rows: EventRow[], ingestedBy: string | undefined, receivedAt: string) {
  const result = await db.execute(sql`
    with stored as (
      insert into ${telemetryEvents} (id, type, source, severity, occurred_at, attributes, trace_id, ingested_by, created_at)
      select e.id, e.type, e.source, e.severity, e.occurred_at, coalesce(e.attributes, '{}'::jsonb), e.trace_id,
             ${ingestedBy ?? null}::uuid, ${receivedAt}::timestamptz
      from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
        as e(id text, type text, source text, severity text, occurred_at timestamptz, attributes jsonb, trace_id text)
      on conflict (id) do nothing
      returning 1
    )
    select count(*)::int as accepted from stored`);
  return Number(rowsOf<{ accepted: number }>(result)[0]?.accepted ?? 0);
}

export interface EventFilters {
  type?: string;
  source?: string;
  severity?: Severity;
  from?: Date;
  to?: Date;
  limit: number;
  cursor?: string;
}

/** Newest received first, keyset-paginated on (created_at, id). */
export async function listEvents(deps: Pick<TelemetryDeps, "db">, filters: EventFilters) {
  if (filters.from && filters.to && filters.from >= filters.to) {
    throw validationFailed([{ path: "query.from", message: "from must be before to", code: "custom" }]);
  }
  const conditions: (SQL | undefined)[] = [
    filters.type ? eq(telemetryEvents.type, filters.type) : undefined,
    filters.source ? eq(telemetryEvents.source, filters.source) : undefined,
    filters.severity ? eq(telemetryEvents.severity, filters.severity) : undefined,
    filters.from ? gte(telemetryEvents.occurredAt, filters.from) : undefined,
    filters.to ? lt(telemetryEvents.occurredAt, filters.to) : undefined,
    afterCursor(telemetryEvents.createdAt, telemetryEvents.id, filters.cursor),
  ];
  const rows = await deps.db
    .select()
    .from(telemetryEvents)
    .where(and(...conditions))
    .orderBy(desc(telemetryEvents.createdAt), desc(telemetryEvents.id))
    .limit(filters.limit + 1);
  return toPage(rows, filters.limit, (row) => ({
    id: row.id,
    type: row.type,
    source: row.source,
    severity: row.severity,
    occurred_at: row.occurredAt.toISOString(),
    received_at: row.createdAt.toISOString(),
    attributes: row.attributes,
    trace_id: row.traceId,
  }));
}

// ── Snapshots ───────────────────────────────────────────────────────────────────────────────────

export interface SnapshotView {
  id: string;
  source: string;
  at: string;
  metrics: Record<string, number>;
  received_at: string;
}

const latestKey = (source: string) => `telemetry:snapshot:latest:${source}`;

const present = (row: typeof telemetrySnapshots.$inferSelect): SnapshotView => ({
  id: row.id,
  source: row.source,
  at: row.at.toISOString(),
  metrics: row.metrics,
  received_at: row.createdAt.toISOString(),
});

async function latestFromDatabase(db: Database, source: string): Promise<SnapshotView | undefined> {
  const [row] = await db
    .select()
    .from(telemetrySnapshots)
    .where(eq(telemetrySnapshots.source, source))
    .orderBy(desc(telemetrySnapshots.at), desc(telemetrySnapshots.id))
    .limit(1);
  return row ? present(row) : undefined;
}

/** A cache failure never fails the request: the database is the source of truth. */
async function cacheQuietly<T>(deps: Pick<TelemetryDeps, "logger">, what: string, op: () => Promise<T>): Promise<T | undefined> {
  try {
    return await op();
  } catch (error) {
    deps.logger.warn(`telemetry snapshot cache ${what} failed; using the database`, { error: (error as Error).message });
    return undefined;
  }
}

/**
 * Stores a snapshot, then writes the source's latest snapshot through to the cache. The latest is
 * read back from the database rather than assumed, so a late-arriving older snapshot never
 * replaces a newer one in the cache.
 */
export async function recordSnapshot(
  deps: TelemetryDeps,
  input: { source: string; at?: Date; metrics: Record<string, number> },
): Promise<SnapshotView> {
  const now = deps.clock.now();
  if (input.at && input.at.getTime() > now.getTime() + MAX_FUTURE_SKEW_MS) {
    throw validationFailed([{ path: "json.at", message: "at is in the future", code: "too_big" }]);
  }
  const [row] = await deps.db
    .insert(telemetrySnapshots)
    .values({ id: uuidv7(now.getTime()), source: input.source, at: input.at ?? now, metrics: input.metrics, createdAt: now })
    .returning();
  deps.instruments.snapshots.add(1);
  const latest = await latestFromDatabase(deps.db, input.source);
  if (latest) await cacheQuietly(deps, "write", () => deps.cache.set(latestKey(input.source), JSON.stringify(latest), deps.snapshotTtlMs));
  return present(row!);
}

/** The source's latest snapshot: from the cache when it has it, else from the database (refilling the cache). */
export async function latestSnapshot(deps: TelemetryDeps, source: string): Promise<{ snapshot: SnapshotView; cached: boolean }> {
  const labels = { "cache.name": "telemetry_snapshot" };
  const cached = await cacheQuietly(deps, "read", () => deps.cache.get(latestKey(source)));
  if (cached) {
    deps.instruments.cache.hits.add(1, labels);
    return { snapshot: JSON.parse(cached) as SnapshotView, cached: true };
  }
  deps.instruments.cache.misses.add(1, labels);
  const snapshot = await latestFromDatabase(deps.db, source);
  if (!snapshot) throw notFound(`no snapshot from source ${source}`);
  // Only refill when the read worked: a cache that just failed is not worth a second wait.
  if (cached === null)
    await cacheQuietly(deps, "write", () => deps.cache.set(latestKey(source), JSON.stringify(snapshot), deps.snapshotTtlMs));
  return { snapshot, cached: false };
}

export interface SeriesQuery {
  source: string;
  metric: string;
  from: Date;
  to: Date;
  bucketSeconds: number;
}

/** avg/min/max/count of one metric per time bucket, computed by PostgreSQL (date_bin, PG 14+). */
export async function snapshotSeries(deps: Pick<TelemetryDeps, "db">, query: SeriesQuery) {
  const span = query.to.getTime() - query.from.getTime();
  if (span <= 0) throw validationFailed([{ path: "query.from", message: "from must be before to", code: "custom" }]);
  if (span / 1000 / query.bucketSeconds > MAX_BUCKETS) {
    throw validationFailed([
      { path: "query.bucket", message: `the range holds more than ${MAX_BUCKETS} buckets; widen the bucket`, code: "too_small" },
    ]);
  }
  const text = sql`(${telemetrySnapshots.metrics} ->> ${query.metric})`;
  const value = sql`${text}::double precision`;
  // The mean is summed in numeric: a double sum of values near the double maximum overflows (a 500).
  const mean = sql`avg(${text}::numeric)::double precision`;
  // Buckets are aligned to `from`, so the first bucket starts exactly at the requested start.
  const bucketStart = sql`date_bin(${query.bucketSeconds} * interval '1 second', ${telemetrySnapshots.at}, ${query.from.toISOString()}::timestamptz)`;
  const result = await deps.db.execute(sql`
    select ${bucketStart} as bucket_start,
           ${mean} as avg, min(${value}) as min, max(${value}) as max, count(*) as count
    from ${telemetrySnapshots}
    where ${telemetrySnapshots.source} = ${query.source}
      and ${telemetrySnapshots.at} >= ${query.from.toISOString()}::timestamptz
      and ${telemetrySnapshots.at} < ${query.to.toISOString()}::timestamptz
      and jsonb_typeof(${telemetrySnapshots.metrics} -> ${query.metric}) = 'number'
    group by 1
    order by 1`);
  const rows = rowsOf<{
    bucket_start: Date | string;
    avg: number | string;
    min: number | string;
    max: number | string;
    count: number | string;
  }>(result);
  return {
    source: query.source,
    metric: query.metric,
    bucket_seconds: query.bucketSeconds,
    from: query.from.toISOString(),
    to: query.to.toISOString(),
    data: rows.map((row) => ({
      bucket_start: new Date(row.bucket_start).toISOString(),
      avg: Number(row.avg),
      min: Number(row.min),
      max: Number(row.max),
      count: Number(row.count),
    })),
  };
}
