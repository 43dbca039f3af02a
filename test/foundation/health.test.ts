import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createMemoryCache } from "../../src/cache/memory";
import { createRedisCache } from "../../src/cache/redis";
import { openPostgres } from "../../src/db/client";
import type { HealthReport } from "../../src/health/checks";
import { startTestApp, type TestApp } from "../helpers/app";
import { openTestDatabase } from "../helpers/db";
import { appOver, closedPort, silentServer, within } from "./support";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

const HEALTH_JSON = "application/health+json";

function expectCheckShape(report: HealthReport) {
  expect(Object.keys(report.checks).sort()).toEqual(["cache:responseTime", "database:responseTime"]);
  for (const [check] of Object.values(report.checks)) {
    expect(check?.componentType).toBe("datastore");
    expect(check?.observedUnit).toBe("ms");
    expect(typeof check?.observedValue).toBe("number");
    expect(check?.observedValue).toBeGreaterThanOrEqual(0);
    expect(Number.isNaN(Date.parse(check?.time ?? ""))).toBe(false);
  }
}

describe("health over working backends", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ env: { RELEASE_ID: "2026.11.23-abc" } });
  }, 60_000);
  afterAll(() => t.close());

  test("GET /health/live → 200 pass", async () => {
    const res = await t.request("/health/live");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toStartWith(HEALTH_JSON);
    expect(await res.json()).toEqual({ status: "pass" });
  });

  test("GET /health/ready → 200 pass in application/health+json with latencies", async () => {
    const res = await t.request("/health/ready");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toStartWith(HEALTH_JSON);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const report = (await res.json()) as HealthReport;
    expect(report.status).toBe("pass");
    expect(report.version).toBe(t.deps.version.split(".")[0] as string);
    expect(report.releaseId).toBe("2026.11.23-abc");
    expect(report.serviceId).toBe("arbiter");
    expectCheckShape(report);
    expect(report.checks["database:responseTime"]?.[0]?.status).toBe("pass");
    expect(report.checks["cache:responseTime"]?.[0]?.status).toBe("pass");
  });

  test("a closed database handle → 503 fail, cache still reported", async () => {
    const database = await openTestDatabase();
    const { app } = appOver({ database, cache: createMemoryCache() });
    await database.close();
    const res = await app.request("/health/ready");
    expect(res.status).toBe(503);
    expect(res.headers.get("content-type")).toStartWith(HEALTH_JSON);
    const report = (await res.json()) as HealthReport;
    expect(report.status).toBe("fail");
    expect(report.checks["database:responseTime"]?.[0]?.status).toBe("fail");
    expect(report.checks["cache:responseTime"]?.[0]?.status).toBe("pass");
  });
});

describe("health over unreachable backends", () => {
  const closers: (() => unknown)[] = [];
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
  }, 20_000); // postgres.js waits up to 5 s for a connection that was never established

  test("cache at a closed port → 200 warn (degraded, still serving)", async () => {
    const database = await openTestDatabase();
    const cache = createRedisCache({ url: `redis://127.0.0.1:${await closedPort()}`, prefix: "unused:" });
    closers.push(
      () => database.close(),
      () => cache.close(),
    );
    const { app } = appOver({ database, cache });
    const res = await app.request("/health/ready");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toStartWith(HEALTH_JSON);
    const report = (await res.json()) as HealthReport;
    expect(report.status).toBe("warn");
    expectCheckShape(report);
    expect(report.checks["database:responseTime"]?.[0]?.status).toBe("pass");
    const cacheCheck = report.checks["cache:responseTime"]?.[0];
    expect(cacheCheck?.status).toBe("warn");
    expect(cacheCheck?.output).toBeString();
  });

  test("database at a closed port → 503 fail; the output never carries the URL or password", async () => {
    const port = await closedPort();
    const database = await openPostgres({ url: `postgres://arbiter:hunter2-secret@127.0.0.1:${port}/arbiter`, poolMax: 1 });
    closers.push(() => database.close());
    const { app } = appOver({ database, cache: createMemoryCache() });
    const res = await app.request("/health/ready");
    expect(res.status).toBe(503);
    expect(res.headers.get("content-type")).toStartWith(HEALTH_JSON);
    const text = await res.text();
    expect(text).not.toContain("hunter2");
    const report = JSON.parse(text) as HealthReport;
    expect(report.status).toBe("fail");
    expectCheckShape(report);
    expect(report.checks["database:responseTime"]?.[0]?.status).toBe("fail");
  });

  test("dependencies that accept connections and never answer: the timeout is honoured", async () => {
    const silentDb = silentServer();
    const silentCache = silentServer();
    const database = await openPostgres({
      url: `postgres://postgres@127.0.0.1:${silentDb.port}/arbiter`,
      poolMax: 1,
      connectTimeoutSeconds: 30,
    });
    const cache = createRedisCache({ url: `redis://127.0.0.1:${silentCache.port}`, prefix: "unused:", connectTimeoutMs: 30_000 });
    // Closed in reverse: the silent servers go first, so the clients' close sees a dropped connection.
    closers.push(
      () => database.close(),
      () => cache.close(),
      silentDb.stop,
      silentCache.stop,
    );
    const { app } = appOver({ database, cache, env: { HEALTH_CHECK_TIMEOUT_MS: "300" } });
    // Both clients would wait 30 s; the check answers once its own 300 ms timeout passes.
    const res = await within(Promise.resolve(app.request("/health/ready")), 5_000, "/health/ready against silent servers");
    expect(res.status).toBe(503);
    const report = (await res.json()) as HealthReport;
    const database_ = report.checks["database:responseTime"]?.[0];
    const cache_ = report.checks["cache:responseTime"]?.[0];
    expect(database_?.status).toBe("fail");
    expect(database_?.output).toContain("no answer within 300 ms");
    expect(cache_?.status).toBe("warn");
    expect(cache_?.output).toContain("no answer within 300 ms");
    expect(database_?.observedValue).toBeGreaterThanOrEqual(300);
  });
});
