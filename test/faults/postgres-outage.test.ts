import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { type DatabaseHandle, openPostgres } from "../../src/db/client";
import { startTestApp, type TestApp } from "../helpers/app";
import { postgresServerBinaries as bin, startThrowawayPostgres, type ThrowawayPostgres } from "../helpers/cluster";
import { reportFault, storedCopies } from "./summary";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * PostgreSQL stopped under load (`pg_ctl stop -m immediate`, a crash) on a throwaway cluster of this
 * file's own: requests that need the database fail with 503 and Retry-After, none hangs,
 * readiness says fail, nothing acknowledged is lost, and writes come back by themselves when the
 * server returns, without restarting Arbiter.
 */
if (!bin) console.warn("postgres-outage.test: skipped: no PostgreSQL server binaries (initdb, pg_ctl, postgres) on this machine");

/** REQUEST_TIMEOUT_MS here: no request may take longer (plus scheduling slack) while the database is down. */
const REQUEST_TIMEOUT_MS = 3_000;
const FAIL_FAST_BOUND_MS = REQUEST_TIMEOUT_MS + 1_000;
/** Writes must succeed again within this long after the server is back. */
const RECOVERY_BOUND_MS = 5_000;

let server: ThrowawayPostgres;
let database: DatabaseHandle;
let t: TestApp;

beforeAll(async () => {
  if (!bin) return;
  server = await startThrowawayPostgres("outage");
  database = await openPostgres({ url: server.cluster.url, poolMax: 4, connectTimeoutSeconds: 2 });
  await database.migrate();
  t = await startTestApp({ database, env: { REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) } });
}, 120_000);
afterAll(async () => {
  await t?.close();
  await server?.remove();
});

interface Outcome {
  status: number;
  /** when it was sent and answered (performance.now()) */
  sentAt: number;
  answeredAt: number;
  ms: number;
  /** a create's title */
  title?: string;
  retryAfter: string | null;
  code?: string;
  id?: string;
}

async function timed(request: () => Promise<Response>, title?: string): Promise<Outcome> {
  const started = performance.now();
  const res = await request();
  const body = (await res.json()) as { id?: string; error?: { code: string } };
  const answeredAt = performance.now();
  return {
    status: res.status,
    sentAt: started,
    answeredAt,
    ms: answeredAt - started,
    title,
    retryAfter: res.headers.get("retry-after"),
    code: body.error?.code,
    id: body.id,
  };
}

/** A create with a title of its own, timed. */
const create = (n: number) =>
  timed(
    () => t.request("/v1/decisions", { method: "POST", as: "service", json: { kind: "deploy", title: `outage ${n}`, payload: { n } } }),
    `outage ${n}`,
  );

test.skipIf(!bin)(
  "stopped under load: 503 + Retry-After within the bound, ready fails, nothing acknowledged lost, writes back within 5 s",
  async () => {
    const outcomes: Outcome[] = [];
    let running = true;
    let n = 0;
    const worker = async () => {
      while (running) {
        outcomes.push(await create(n++));
        outcomes.push(await timed(() => t.request("/v1/decisions?limit=5", { as: "operator" })));
      }
    };
    const workers = Array.from({ length: 4 }, worker);
    await Bun.sleep(500);
    const before = outcomes.length;
    const stoppedAt = performance.now();
    await server.cluster.stop("immediate");
    await Bun.sleep(2_000);

    const ready = await t.request("/health/ready");
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { status: string }).status).toBe("fail");

    const restarted = performance.now();
    await server.cluster.start();
    let recoveredMs = Number.POSITIVE_INFINITY;
    while (performance.now() - restarted < RECOVERY_BOUND_MS * 2) {
      const probe = await create(n++);
      outcomes.push(probe);
      if (probe.status === 201) {
        recoveredMs = probe.answeredAt - restarted;
        break;
      }
      await Bun.sleep(100);
    }
    running = false;
    await Promise.all(workers);

    const failed = outcomes.filter((o) => o.status >= 500);
    console.log(
      `postgres-outage: ${outcomes.length} requests (${before} before the stop), ${failed.length} answered 503, ` +
        `slowest ${Math.round(Math.max(...outcomes.map((o) => o.ms)))} ms, writes back ${Math.round(recoveredMs)} ms after the restart`,
    );
    // The outage: from the stop until the first write served after the restart. A request answered
    // before it began or sent after it ended must not be a 5xx.
    const recoveredAt = restarted + recoveredMs;
    const outside = (o: Outcome) => o.answeredAt < stoppedAt || o.sentAt > recoveredAt;
    const acknowledged = new Map(outcomes.filter((o) => o.status === 201).map((o) => [o.title as string, o.id as string]));
    const stored = await storedCopies(database.db, { decisions: acknowledged });
    reportFault({
      fault: "PostgreSQL stopped under load (pg_ctl stop -m immediate)",
      requests: outcomes.length,
      outage503s: outcomes.filter((o) => !outside(o) && o.status === 503).length,
      serverErrorsOutside: outcomes.filter((o) => outside(o) && o.status >= 500).length,
      acknowledgedWrites: stored.writes,
      lost: stored.lost,
      duplicates: stored.duplicates,
      recovery: { ms: recoveredMs, what: "first write answered 201 after PostgreSQL restarted, no Arbiter restart" },
    });
    expect(before).toBeGreaterThan(0);
    expect(failed.length).toBeGreaterThan(0);
    for (const o of outcomes) expect([200, 201, 503]).toContain(o.status);
    for (const o of failed) {
      expect(["database_unavailable", "request_timeout"]).toContain(o.code ?? "none");
      expect(o.retryAfter).toBe("1");
    }
    expect(Math.max(...outcomes.map((o) => o.ms))).toBeLessThan(FAIL_FAST_BOUND_MS);
    expect(recoveredMs).toBeLessThan(RECOVERY_BOUND_MS);
    expect((await t.request("/health/ready")).status).toBe(200);

    // Every acknowledged create is also served by the API after the crash and recovery.
    for (const id of acknowledged.values()) expect((await t.request(`/v1/decisions/${id}`, { as: "operator" })).status).toBe(200);
  },
  90_000,
);
