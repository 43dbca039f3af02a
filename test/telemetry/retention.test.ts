import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { count, like } from "drizzle-orm";
import { telemetryEvents, telemetrySnapshots } from "../../src/db/schema";
import type { Clock } from "../../src/deps";
import { deleteExpiredTelemetry, startTelemetryRetention } from "../../src/telemetry/retention";
import { startTestApp, type TestApp } from "../helpers/app";
import { scrape, total } from "../observability/exposition";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

const NOW = new Date("2026-06-15T00:00:00.000Z");
const clock: Clock = { now: () => NOW };
const daysAgo = (days: number, extraMs = 0) => new Date(NOW.getTime() - days * 86_400_000 - extraMs);

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ clock, env: { TELEMETRY_RETENTION_DAYS: "30", TELEMETRY_RETENTION_BATCH_SIZE: "4" } });
}, 30_000);
afterAll(() => t.close());

/** Rows older than the API accepts are written directly, as if they had aged in place. */
async function seed(prefix: string, oldCount: number, recentCount: number) {
  const rows = [
    ...Array.from({ length: oldCount }, (_, i) => ({ id: `${prefix}-old-${i}`, occurredAt: daysAgo(30, 1 + i * 1000) })),
    ...Array.from({ length: recentCount }, (_, i) => ({ id: `${prefix}-new-${i}`, occurredAt: daysAgo(29, i * 1000) })),
  ];
  await t.deps.database.db
    .insert(telemetryEvents)
    .values(rows.map((r) => ({ ...r, type: "t", source: prefix, severity: "info" as const, createdAt: r.occurredAt })));
  await t.deps.database.db.insert(telemetrySnapshots).values(
    rows.map((r, i) => ({
      id: crypto.randomUUID(),
      source: `${prefix}-${i}`,
      at: r.occurredAt,
      metrics: { v: i },
      createdAt: r.occurredAt,
    })),
  );
}

const eventsLike = async (prefix: string) =>
  (
    await t.deps.database.db
      .select({ n: count() })
      .from(telemetryEvents)
      .where(like(telemetryEvents.id, `${prefix}-%`))
  )[0]!.n;
const snapshotsLike = async (prefix: string) =>
  (
    await t.deps.database.db
      .select({ n: count() })
      .from(telemetrySnapshots)
      .where(like(telemetrySnapshots.source, `${prefix}-%`))
  )[0]!.n;

describe("telemetry retention", () => {
  test("deletes everything past the window in bounded batches and keeps the rest", async () => {
    await seed("sweep", 11, 3);
    const before = total((await scrape(t)).samples, "db_client_operation_duration_seconds_count", { db_operation_name: "with" });
    const result = await deleteExpiredTelemetry(t.deps.database.db, clock, { retentionDays: 30, batchSize: 4 });
    expect(result).toEqual({ events: 11, snapshots: 11, cutoff: daysAgo(30) });
    expect(await eventsLike("sweep-old")).toBe(0);
    expect(await eventsLike("sweep-new")).toBe(3);
    expect(await snapshotsLike("sweep")).toBe(3);
    // 11 rows in batches of 4 → 3 statements per table (4, 4, 3): no single long delete.
    const after = total((await scrape(t)).samples, "db_client_operation_duration_seconds_count", { db_operation_name: "with" });
    expect(after - before).toBe(6);
  });

  test("a run stops after maxBatches; the next run continues", async () => {
    await seed("capped", 10, 0);
    const first = await deleteExpiredTelemetry(t.deps.database.db, clock, { retentionDays: 30, batchSize: 3, maxBatches: 2 });
    expect(first.events).toBe(6);
    expect(await eventsLike("capped")).toBe(4);
    const second = await deleteExpiredTelemetry(t.deps.database.db, clock, { retentionDays: 30, batchSize: 3 });
    expect(second.events).toBe(4);
    expect(await eventsLike("capped")).toBe(0);
  });

  test("the background worker sweeps at once, counts what it deleted, and stops cleanly", async () => {
    await seed("worker", 5, 2);
    const stop = startTelemetryRetention(t.deps);
    await stop(); // waits for the run in progress
    expect(await eventsLike("worker-old")).toBe(0);
    expect(await eventsLike("worker-new")).toBe(2);
    const { samples } = await scrape(t);
    expect(total(samples, "arbiter_telemetry_retention_deleted_total", { table: "telemetry_events" })).toBe(5);
    expect(total(samples, "arbiter_telemetry_retention_deleted_total", { table: "telemetry_snapshots" })).toBe(5);
  });
});
