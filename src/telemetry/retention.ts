import { type AnyColumn, sql } from "drizzle-orm";
import type { PgTable } from "drizzle-orm/pg-core";
import { type Database, rowsOf } from "../db/client";
import { telemetryEvents, telemetrySnapshots } from "../db/schema";
import type { AppDeps, Clock } from "../deps";

export interface RetentionOptions {
  retentionDays: number;
  /** rows deleted per statement: each statement is its own short transaction */
  batchSize: number;
  /** a run stops after this many batches, so one run never monopolises the database */
  maxBatches?: number;
}

/**
 * Deletes telemetry older than the retention window in bounded batches. Each batch is one
 * statement that picks its rows with FOR UPDATE SKIP LOCKED, so locks are held only for one batch
 * and replicas running the sweep at the same time split the work instead of waiting on each other.
 */
export async function deleteExpiredTelemetry(
  db: Database,
  clock: Clock,
  options: RetentionOptions,
): Promise<{ events: number; snapshots: number; cutoff: Date }> {
  const cutoff = new Date(clock.now().getTime() - options.retentionDays * 86_400_000);
  const events = await sweep(db, { table: telemetryEvents, id: telemetryEvents.id, time: telemetryEvents.occurredAt }, cutoff, options);
  const snapshots = await sweep(db, { table: telemetrySnapshots, id: telemetrySnapshots.id, time: telemetrySnapshots.at }, cutoff, options);
  return { events, snapshots, cutoff };
}

/** Deletes one table's rows older than `cutoff`, batch by batch, until a batch comes back short. */
async function sweep(
  db: Database,
  target: { table: PgTable; id: AnyColumn; time: AnyColumn },
  cutoff: Date,
  options: RetentionOptions,
): Promise<number> {
  const { table, id, time } = target;
  let total = 0;
  for (let batch = 0; batch < (options.maxBatches ?? 1_000); batch++) {
    const result = await db.execute(sql`
      with doomed as (
        select ${id} from ${table} where ${time} < ${cutoff.toISOString()}::timestamptz
        limit ${options.batchSize} for update skip locked)
      delete from ${table} where ${id} in (select id from doomed) returning 1`);
    const deleted = rowsOf(result).length;
    total += deleted;
    if (deleted < options.batchSize) break;
  }
  return total;
}

/**
 * Runs the retention sweep now and then every TELEMETRY_RETENTION_INTERVAL_MS, until the returned
 * function is called. Started by the process entry point, never by createApp, so building an app
 * starts no timers.
 */
export function startTelemetryRetention(deps: Pick<AppDeps, "database" | "clock" | "logger" | "meter" | "config">): () => Promise<void> {
  const options: RetentionOptions = {
    retentionDays: deps.config.TELEMETRY_RETENTION_DAYS,
    batchSize: deps.config.TELEMETRY_RETENTION_BATCH_SIZE,
  };
  const deleted = deps.meter.createCounter("arbiter.telemetry.retention.deleted", {
    description: "Telemetry rows deleted by the retention sweep",
  });
  let running: Promise<void> | undefined;
  let stopped = false;
  const run = () => {
    if (running || stopped) return;
    running = deleteExpiredTelemetry(deps.database.db, deps.clock, options)
      .then((result) => {
        deleted.add(result.events, { table: "telemetry_events" });
        deleted.add(result.snapshots, { table: "telemetry_snapshots" });
        if (result.events + result.snapshots > 0) {
          deps.logger.info("telemetry retention", {
            events: result.events,
            snapshots: result.snapshots,
            cutoff: result.cutoff.toISOString(),
          });
        }
      })
      .catch((error: unknown) => deps.logger.error("telemetry retention failed", { error: (error as Error).message }))
      .finally(() => {
        running = undefined;
      });
  };
  run();
  const timer = setInterval(run, deps.config.TELEMETRY_RETENTION_INTERVAL_MS);
  (timer as { unref?: () => void }).unref?.();
  return async () => {
    stopped = true;
    clearInterval(timer);
    await running;
  };
}
