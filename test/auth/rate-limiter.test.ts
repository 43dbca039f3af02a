import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createRateLimiter, localAllowance } from "../../src/auth/rate-limit";
import type { Cache } from "../../src/cache/types";
import { openTestCache } from "../helpers/cache";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

// The local limiter against the suite's cache: in memory in the embedded tier, the real Redis in the
// other, where two limiters sharing it stand for two replicas.
const WINDOW_MS = 60_000;
const caches: Cache[] = [];
afterAll(async () => {
  for (const cache of caches) await cache.close();
});
const sharedCache = () => {
  const cache = openTestCache();
  caches.push(cache);
  return cache;
};
// A fixed instant in the middle of a window, so no test straddles two windows.
const now = () => Math.floor(Date.now() / WINDOW_MS) * WINDOW_MS + WINDOW_MS / 2;
const limiterOver = (cache: Cache, onError: (error: unknown) => void = () => {}) => createRateLimiter({ cache, now, onError });

async function admitted(limiter: ReturnType<typeof limiterOver>, key: string, limit: number, attempts: number): Promise<number> {
  const states = await Promise.all(Array.from({ length: attempts }, () => limiter.hit(key, limit, WINDOW_MS)));
  return states.filter((state) => state.allowed).length;
}

describe("local rate limiter", () => {
  test("one replica is exact: it admits the limit and not one request more", async () => {
    const limiter = limiterOver(sharedCache());
    const key = `exact-${crypto.randomUUID()}`;
    expect(await admitted(limiter, key, 1_000, 1_300)).toBe(1_000);
    const next = await limiter.hit(key, 1_000, WINDOW_MS);
    expect(next).toMatchObject({ allowed: false, remaining: 0, limit: 1_000 });
  });

  test("two replicas sharing the cache admit at most limit + one allowance between them", async () => {
    const cache = sharedCache();
    const [a, b] = [limiterOver(cache), limiterOver(cache)];
    const key = `pair-${crypto.randomUUID()}`;
    const limit = 2_000;
    const [fromA, fromB] = await Promise.all([admitted(a, key, limit, 1_500), admitted(b, key, limit, 1_500)]);
    expect(fromA + fromB).toBeGreaterThanOrEqual(limit);
    expect(fromA + fromB).toBeLessThanOrEqual(limit + localAllowance(limit));
  });

  test("a replica pushes its count: another replica that starts later sees it in the shared counter", async () => {
    const cache = sharedCache();
    const key = `later-${crypto.randomUUID()}`;
    await admitted(limiterOver(cache), key, 500, 500);
    // The allowance for 500 is 5: at most that many hits of the first replica may still be unpushed.
    const late = await limiterOver(cache).hit(key, 500, WINDOW_MS);
    expect(late.allowed).toBe(false);
  });

  test("limits under 100 push every hit before answering, as a plain shared counter would", async () => {
    const cache = sharedCache();
    const key = `small-${crypto.randomUUID()}`;
    const [a, b] = [limiterOver(cache), limiterOver(cache)];
    const answers: boolean[] = [];
    for (let i = 0; i < 6; i++) answers.push((await (i % 2 ? b : a).hit(key, 4, WINDOW_MS)).allowed);
    expect(answers).toEqual([true, true, true, true, false, false]);
  });

  test("when the cache fails, the limiter reports it and still limits this replica", async () => {
    const failing: Cache = {
      ...sharedCache(),
      increment: () => Promise.reject(new Error("cache down")),
    };
    const errors: unknown[] = [];
    const limiter = limiterOver(failing, (error) => errors.push(error));
    const key = `down-${crypto.randomUUID()}`;
    const answers: boolean[] = [];
    for (let i = 0; i < 4; i++) answers.push((await limiter.hit(key, 3, WINDOW_MS)).allowed);
    expect(answers).toEqual([true, true, true, false]);
    expect(errors.length).toBeGreaterThan(0);
  });
});
