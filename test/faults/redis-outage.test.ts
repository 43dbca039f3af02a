import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { rmSync } from "node:fs";
import { createRedisCache } from "../../src/cache/redis";
import { closedPort, tempDir, waitFor } from "../foundation/support";
import { startTestApp, type TestApp } from "../helpers/app";
import { reportFault, storedCopies } from "./summary";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * Redis killed (SIGKILL) under load, on a redis-server of this file's own (the shared one is never
 * touched): Arbiter keeps serving (no 5xx; readiness says warn), and reconnects by itself when
 * Redis is back on the same port.
 */
const redisServer = Bun.which("redis-server");
if (!redisServer) console.warn("redis-outage.test: skipped: redis-server is not installed");

let port: number;
let redis: Bun.Subprocess | undefined;
let t: TestApp;
const dir = tempDir("redis-outage");

async function startRedis() {
  redis = Bun.spawn(
    [redisServer as string, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
    {
      stdout: "ignore",
      stderr: "ignore",
    },
  );
  await waitFor(
    async () => {
      try {
        const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
        socket.end();
        return true;
      } catch {
        return false;
      }
    },
    "redis-server listening",
    10_000,
  );
}

beforeAll(async () => {
  if (!redisServer) return;
  port = await closedPort();
  await startRedis();
  t = await startTestApp({ cache: createRedisCache({ url: `redis://127.0.0.1:${port}`, prefix: "outage:" }) });
}, 60_000);
afterAll(async () => {
  redis?.kill("SIGKILL");
  await t?.close();
  rmSync(dir, { recursive: true, force: true });
});

const readiness = async () => ((await (await t.request("/health/ready")).json()) as { status: string }).status;

test.skipIf(!redisServer)("killed under load: no 5xx, ready says warn, back to pass by itself when Redis returns", async () => {
  const decision = (await (
    await t.request("/v1/decisions", { method: "POST", as: "service", json: { kind: "deploy", title: "redis outage", payload: {} } })
  ).json()) as { id: string };
  const statuses: number[] = [];
  /** title → id of every create answered 201 */
  const acknowledged = new Map<string, string>();
  let running = true;
  let n = 0;
  const worker = async () => {
    while (running) {
      const title = `r ${n++}`;
      const write = await t.request("/v1/decisions", { method: "POST", as: "service", json: { kind: "deploy", title, payload: { n } } });
      statuses.push(write.status);
      if (write.status === 201) acknowledged.set(title, ((await write.json()) as { id: string }).id);
      statuses.push((await t.request(`/v1/decisions/${decision.id}`, { as: "operator" })).status);
      statuses.push(
        (await t.request("/v1/telemetry/snapshots", { method: "POST", as: "service", json: { source: "outage", metrics: { n } } })).status,
      );
      statuses.push((await t.request("/v1/telemetry/snapshots/latest?source=outage", { as: "operator" })).status);
    }
  };
  const workers = Array.from({ length: 4 }, worker);
  await Bun.sleep(300);
  expect(await readiness()).toBe("pass");

  redis?.kill("SIGKILL");
  await redis?.exited;
  await Bun.sleep(1_500);
  expect(await readiness()).toBe("warn");

  const restarted = performance.now();
  await startRedis();
  await waitFor(async () => (await readiness()) === "pass", "readiness back to pass", 15_000);
  const recoveredMs = performance.now() - restarted;
  running = false;
  await Promise.all(workers);

  const serverErrors = statuses.filter((s) => s >= 500);
  console.log(
    `redis-outage: ${statuses.length} requests, ${serverErrors.length} 5xx, readiness back to pass ${Math.round(recoveredMs)} ms after Redis returned`,
  );
  // Redis down is not a database outage: no 5xx at all.
  const stored = await storedCopies(t.deps.database.db, { decisions: acknowledged });
  reportFault({
    fault: "Redis killed under load (SIGKILL)",
    requests: statuses.length,
    outage503s: 0,
    serverErrorsOutside: serverErrors.length,
    acknowledgedWrites: stored.writes,
    lost: stored.lost,
    duplicates: stored.duplicates,
    recovery: { ms: recoveredMs, what: "readiness back to pass after Redis returned on the same port, no Arbiter restart" },
  });
  expect(statuses.length).toBeGreaterThan(0);
  expect(serverErrors).toEqual([]);
  for (const status of statuses) expect([200, 201]).toContain(status);
});
