import type { Database } from "../db/client";
import { type BatchedDeleteOptions, deleteOlderThan } from "../db/retention";
import { telemetryEvents, telemetrySnapshots } from "../db/schema";
import type { AppDeps, Clock } from "../deps";

export interface RetentionOptions extends BatchedDeleteOptions {
  retentionDays: number;
}

/** Deletes telemetry older than the retention window, in bounded batches (see deleteOlderThan). */
export async function deleteExpiredTelemetry(
  db: Database,
  clock: Clock,
  options: RetentionOptions,
): Promise<{ events: number; snapshots: number; cutoff: Date }> {
  const cutoff = new Date(clock.now().getTime() - options.retentionDays * 86_400_000);
  const events = await deleteOlderThan(
    db,
    { table: telemetryEvents, id: telemetryEvents.id, time: telemetryEvents.occurredAt },
    cutoff,
    options,
  );
  const snapshots = await deleteOlderThan(
    db,
    { table: telemetrySnapshots, id: telemetrySnapshots.id, time: telemetrySnapshots.at },
    cutoff,
    options,
  );
  return { events, snapshots, cutoff };
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
