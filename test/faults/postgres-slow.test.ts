import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import postgres from "postgres";
import { type DatabaseHandle, openPostgres } from "../../src/db/client";
import { startTestApp, type TestApp } from "../helpers/app";
import { postgresServerBinaries as bin, startThrowawayPostgres, type ThrowawayPostgres } from "../helpers/cluster";
import { reportFault, storedCopies } from "./summary";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * A slow database: another session holds a lock on the decisions table for 10 s, on a throwaway
 * cluster of this file's own. Writes to decisions end within the statement timeout with a clear 503
 * (the server cancels the waiting statement, so its pool connection comes back), and other routes
 * keep being served by the same small pool meanwhile.
 */
if (!bin) console.warn("postgres-slow.test: skipped: no PostgreSQL server binaries (initdb, pg_ctl, postgres) on this machine");

const STATEMENT_TIMEOUT_MS = 1_500;
const LOCK_HELD_MS = 10_000;
const POOL = 3;

let server: ThrowawayPostgres;
let database: DatabaseHandle;
let t: TestApp;

beforeAll(async () => {
  if (!bin) return;
  server = await startThrowawayPostgres("slow");
  database = await openPostgres({ url: server.cluster.url, poolMax: POOL, statementTimeoutMs: STATEMENT_TIMEOUT_MS });
  await database.migrate();
  t = await startTestApp({ database });
}, 120_000);
afterAll(async () => {
  await t?.close();
  await server?.remove();
});

async function timed(request: Promise<Response>) {
  const started = performance.now();
  const res = await request;
  const body = (await res.json()) as { error?: { code: string } };
  return { status: res.status, code: body.error?.code, retryAfter: res.headers.get("retry-after"), ms: performance.now() - started };
}

test.skipIf(!bin)("a lock held for 10 s: blocked writes end in 503 within the statement timeout; other routes keep working", async () => {
  const locker = postgres(server.cluster.url, { max: 1, onnotice: () => {} });
  const others: Awaited<ReturnType<typeof timed>>[] = [];
  const eventIds: string[] = [];
  let writes: Awaited<ReturnType<typeof timed>>[] = [];
  try {
    const held = locker.begin(async (tx) => {
      await tx`lock table decisions in exclusive mode`;
      await tx`select pg_sleep(${LOCK_HELD_MS / 1000})`;
    });
    await Bun.sleep(200);

    // More blocked writes than the pool has connections.
    const blocked = Array.from({ length: POOL * 2 }, (_, n) =>
      timed(t.request("/v1/decisions", { method: "POST", as: "service", json: { kind: "deploy", title: `slow ${n}`, payload: { n } } })),
    );
    await Bun.sleep(100);
    for (let n = 0; n < 5; n++) {
      const id = crypto.randomUUID();
      const ingested = await timed(
        t.request("/v1/telemetry/events", {
          method: "POST",
          as: "service",
          json: { events: [{ id, type: "probe", source: "slow", severity: "info", occurred_at: new Date().toISOString() }] },
        }),
      );
      others.push(ingested);
      if (ingested.status === 202) eventIds.push(id);
      // Routes on other tables (reads of decisions may settle overdue ones, a write behind the lock).
      others.push(await timed(t.request("/v1/keys?limit=5", { as: "admin" })));
    }
    writes = await Promise.all(blocked);
    console.log(
      `postgres-slow: ${writes.length} blocked writes answered in ≤ ${Math.round(Math.max(...writes.map((w) => w.ms)))} ms ` +
        `(${writes.map((w) => w.status).join(",")}); ${others.length} other requests, slowest ${Math.round(Math.max(...others.map((o) => o.ms)))} ms`,
    );
    for (const write of writes) {
      expect(write.status).toBe(503);
      expect(write.code).toBe("database_unavailable");
      expect(write.retryAfter).toBe("1");
      // Each waits at most one statement timeout, plus one more while queued behind the others for a connection.
      expect(write.ms).toBeLessThan(STATEMENT_TIMEOUT_MS * 3);
    }
    for (const other of others) {
      expect([200, 202]).toContain(other.status);
      // At worst queued for a connection until the blocked statements ahead of it were cancelled.
      expect(other.ms).toBeLessThan(STATEMENT_TIMEOUT_MS * 3);
    }
    // All of this happened while the lock was still held.
    expect(Math.max(...writes.map((w) => w.ms))).toBeLessThan(LOCK_HELD_MS);
    await held;
  } finally {
    await locker.end();
  }
  // Once the lock is gone, writes succeed again: at once, since no connection was left stuck.
  const released = performance.now();
  const after = await t.request("/v1/decisions", { method: "POST", as: "service", json: { kind: "deploy", title: "after", payload: {} } });
  const recoveredMs = performance.now() - released;
  expect(after.status).toBe(201);
  const { id } = (await after.json()) as { id: string };

  // The injected fault is the lock: the writes blocked behind it answer 503; nothing else may be a 5xx.
  const stored = await storedCopies(database.db, { decisions: new Map([["after", id]]), events: eventIds });
  reportFault({
    fault: `lock held on decisions for ${LOCK_HELD_MS / 1000} s (statement_timeout ${STATEMENT_TIMEOUT_MS} ms, pool ${POOL})`,
    requests: writes.length + others.length + 1,
    outage503s: writes.filter((w) => w.status === 503).length,
    serverErrorsOutside: others.filter((o) => o.status >= 500).length + (after.status >= 500 ? 1 : 0),
    acknowledgedWrites: stored.writes,
    lost: stored.lost,
    duplicates: stored.duplicates,
    recovery: { ms: recoveredMs, what: "a decision write answered 201 after the lock was released" },
  });
});
