import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createRedisCache } from "../../src/cache/redis";
import type { Clock } from "../../src/deps";
import { startTestApp, type TestApp } from "../helpers/app";
import { uniquePrefix } from "../helpers/cache";
import { scrape, total } from "../observability/exposition";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/** A clock the test moves by hand. */
function manualClock(start: Date): Clock & { set(at: Date): void } {
  let now = start;
  return { now: () => now, set: (at) => (now = at) };
}

const T0 = new Date("2026-03-01T12:00:00.000Z");
const at = (minutes: number, seconds = 0) => new Date(T0.getTime() + minutes * 60_000 + seconds * 1000).toISOString();

let t: TestApp;
const clock = manualClock(new Date(T0.getTime() + 60 * 60_000));
beforeAll(async () => {
  t = await startTestApp({ clock });
}, 30_000);
afterAll(() => t.close());

const postSnapshot = (body: unknown, app = t) => app.request("/v1/telemetry/snapshots", { method: "POST", as: "service", json: body });
const latest = (source: string, app = t) => app.request(`/v1/telemetry/snapshots/latest?source=${source}`, { as: "operator" });
const cacheKey = (source: string) => `telemetry:snapshot:latest:${source}`;

describe("snapshots: write-through cache", () => {
  test("the latest snapshot is written to the cache and served from it", async () => {
    const created = await postSnapshot({ source: "robot-1", at: at(0), metrics: { arousal: 0.4, queue_depth: 3 } });
    expect(created.status).toBe(201);
    const body = await created.json();
    expect(body).toMatchObject({ source: "robot-1", at: at(0), metrics: { arousal: 0.4, queue_depth: 3 } });
    expect(JSON.parse((await t.deps.cache.get(cacheKey("robot-1")))!)).toMatchObject({ id: body.id, at: at(0) });

    const res = await latest("robot-1");
    expect(res.status).toBe(200);
    expect(res.headers.get("x-cache")).toBe("hit");
    expect(await res.json()).toEqual(body);
  });

  test("a late, older snapshot does not replace the newer one", async () => {
    await postSnapshot({ source: "robot-2", at: at(10), metrics: { arousal: 0.9 } });
    await postSnapshot({ source: "robot-2", at: at(5), metrics: { arousal: 0.1 } });
    const res = await latest("robot-2");
    expect((await res.json()).metrics).toEqual({ arousal: 0.9 });
  });

  test("a cache miss reads the database and refills the cache", async () => {
    const { samples: before } = await scrape(t);
    await postSnapshot({ source: "robot-3", at: at(1), metrics: { arousal: 0.5 } });
    await t.deps.cache.delete(cacheKey("robot-3"));
    const miss = await latest("robot-3");
    expect(miss.headers.get("x-cache")).toBe("miss");
    expect((await miss.json()).metrics).toEqual({ arousal: 0.5 });
    const hit = await latest("robot-3");
    expect(hit.headers.get("x-cache")).toBe("hit");
    const { samples: after } = await scrape(t);
    expect(total(after, "arbiter_cache_misses_total") - total(before, "arbiter_cache_misses_total")).toBe(1);
    expect(total(after, "arbiter_cache_hits_total") - total(before, "arbiter_cache_hits_total")).toBe(1);
  });

  test("the cached entry expires after its TTL", async () => {
    const short = await startTestApp({ env: { TELEMETRY_SNAPSHOT_CACHE_TTL_SECONDS: "1" }, clock });
    try {
      await postSnapshot({ source: "robot-ttl", at: at(0), metrics: { a: 1 } }, short);
      expect(await short.deps.cache.get(cacheKey("robot-ttl"))).not.toBeNull();
      // The memory cache and Redis both expire on their own clocks; 1 s is the smallest TTL.
      await Bun.sleep(1_500);
      expect(await short.deps.cache.get(cacheKey("robot-ttl"))).toBeNull();
      expect((await latest("robot-ttl", short)).headers.get("x-cache")).toBe("miss");
    } finally {
      await short.close();
    }
  });

  test("an unknown source is a 404", async () => {
    const res = await latest("nobody");
    expect(res.status).toBe(404);
    expect((await res.json()).error.code).toBe("not_found");
  });

  test.each([
    ["no metrics", { source: "s", metrics: {} }],
    ["a non-numeric metric", { source: "s", metrics: { a: "high" } }],
    ["a bad source", { source: "has space", metrics: { a: 1 } }],
    ["a future time", { source: "s", at: "2030-01-01T00:00:00Z", metrics: { a: 1 } }],
    ["an unknown field", { source: "s", metrics: { a: 1 }, extra: true }],
  ])("400 for %s", async (_, body) => {
    const res = await postSnapshot(body);
    expect(res.status).toBe(400);
    expect((await res.json()).error.code).toBe("validation_failed");
  });
});

describe("snapshots: the cache is down", () => {
  test("writes and reads still answer, from the database", async () => {
    // A real Redis client pointed at a port nothing listens on: every command fails.
    const deadCache = createRedisCache({ url: "redis://127.0.0.1:1", prefix: uniquePrefix(), connectTimeoutMs: 200 });
    const degraded = await startTestApp({ cache: deadCache, clock });
    try {
      const created = await postSnapshot({ source: "robot-down", at: at(2), metrics: { arousal: 0.7 } }, degraded);
      expect(created.status).toBe(201);
      const res = await latest("robot-down", degraded);
      expect(res.status).toBe(200);
      expect(res.headers.get("x-cache")).toBe("miss");
      expect((await res.json()).metrics).toEqual({ arousal: 0.7 });
      expect(degraded.logs.some((l) => String(l.msg).includes("snapshot cache") && l.level === "warn")).toBe(true);
    } finally {
      await degraded.close();
    }
  });
});

describe("snapshots: bucketed aggregates in SQL", () => {
  beforeAll(async () => {
    // Minute 0: 1, 3 (and one snapshot without the metric); minute 1: 10; minute 3: 4, 6, 8.
    const points: [number, number, Record<string, number>][] = [
      [0, 5, { load: 1 }],
      [0, 40, { load: 3 }],
      [0, 50, { other: 99 }],
      [1, 30, { load: 10 }],
      [3, 0, { load: 4 }],
      [3, 20, { load: 6, other: 1 }],
      [3, 59, { load: 8 }],
      [5, 0, { load: 1000 }], // outside [from, to)
    ];
    for (const [m, s, metrics] of points) expect((await postSnapshot({ source: "agg", at: at(m, s), metrics })).status).toBe(201);
    expect((await postSnapshot({ source: "agg-other", at: at(0, 10), metrics: { load: 500 } })).status).toBe(201);
  }, 30_000);

  const series = (query: string) => t.request(`/v1/telemetry/snapshots?${query}`, { as: "readonly" });

  test("avg, min, max and count per bucket, empty buckets omitted", async () => {
    const res = await series(`source=agg&metric=load&bucket=1m&from=${at(0)}&to=${at(5)}`);
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toMatchObject({ source: "agg", metric: "load", bucket_seconds: 60, from: at(0), to: at(5) });
    expect(body.data).toEqual([
      { bucket_start: at(0), avg: 2, min: 1, max: 3, count: 2 },
      { bucket_start: at(1), avg: 10, min: 10, max: 10, count: 1 },
      { bucket_start: at(3), avg: 6, min: 4, max: 8, count: 3 },
    ]);
  });

  test("wider buckets aggregate across minutes; buckets align to from", async () => {
    const body = await (await series(`source=agg&metric=load&bucket=2m&from=${at(0)}&to=${at(4)}`)).json();
    expect(body.data).toEqual([
      { bucket_start: at(0), avg: 14 / 3, min: 1, max: 10, count: 3 },
      { bucket_start: at(2), avg: 6, min: 4, max: 8, count: 3 },
    ]);
    const shifted = await (await series(`source=agg&metric=load&bucket=1h&from=${at(0, 30)}&to=${at(10)}`)).json();
    expect(shifted.data).toEqual([{ bucket_start: at(0, 30), avg: (3 + 10 + 4 + 6 + 8 + 1000) / 6, min: 3, max: 1000, count: 6 }]);
  });

  test("a metric no snapshot has gives no buckets", async () => {
    const body = await (await series(`source=agg&metric=missing&bucket=1m&from=${at(0)}&to=${at(5)}`)).json();
    expect(body.data).toEqual([]);
  });

  test.each([
    ["a malformed bucket", `source=agg&metric=load&bucket=5x&from=${at(0)}&to=${at(5)}`],
    ["a zero bucket", `source=agg&metric=load&bucket=0m&from=${at(0)}&to=${at(5)}`],
    ["too many buckets", `source=agg&metric=load&bucket=1s&from=${at(0)}&to=${at(60 * 24)}`],
    ["from after to", `source=agg&metric=load&bucket=1m&from=${at(5)}&to=${at(0)}`],
    ["no metric", `source=agg&bucket=1m&from=${at(0)}&to=${at(5)}`],
  ])("400 for %s", async (_, query) => {
    const res = await series(query);
    expect(res.status).toBe(400);
    expect((await res.json()).error.code).toBe("validation_failed");
  });
});
