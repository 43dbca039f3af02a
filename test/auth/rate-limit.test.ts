import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startTestApp, type TestApp } from "../helpers/app";
import { errorCode, type ManualClock, manualClock, metricValue } from "./support";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

const WINDOW_MS = 60_000;
let t: TestApp;
let clock: ManualClock;
beforeAll(async () => {
  // Start at the beginning of a window, so the test controls exactly when windows roll over.
  clock = manualClock(Math.ceil(Date.now() / WINDOW_MS) * WINDOW_MS);
  t = await startTestApp({
    clock,
    env: {
      RATE_LIMIT_WINDOW_MS: String(WINDOW_MS),
      RATE_LIMIT_SERVICE: "3",
      RATE_LIMIT_ANONYMOUS: "2",
      AUTH_FAILURE_LIMIT: "3",
      AUTH_FAILURE_WINDOW_MS: String(WINDOW_MS),
    },
  });
}, 30_000);
afterAll(() => t.close());

const asService = () => t.request("/v1/auth/revoke", { as: "service", method: "POST" }); // 400 without a jti: cheap, authenticated

describe("per-key limits", () => {
  test("RateLimit headers count down; the request past the limit is 429 with Retry-After; the next window recovers", async () => {
    const remaining: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await asService();
      expect(res.status).toBe(400);
      expect(res.headers.get("ratelimit-limit")).toBe("3");
      remaining.push(res.headers.get("ratelimit-remaining")!);
    }
    expect(remaining).toEqual(["2", "1", "0"]);
    const limited = await asService();
    expect(limited.status).toBe(429);
    expect(await errorCode(limited)).toBe("rate_limited");
    expect(Number(limited.headers.get("retry-after"))).toBe(60);
    expect(limited.headers.get("ratelimit-remaining")).toBe("0");
    expect(await metricValue(t, "arbiter_rate_limit_rejections_total", { scope: "key" })).toBe(1);

    // Other keys have their own budget (and other roles their own limit).
    expect((await t.request("/v1/keys?limit=1", { as: "admin" })).headers.get("ratelimit-limit")).toBe("120000");

    clock.advance(30_000);
    expect((await asService()).status).toBe(429);
    expect(Number((await asService()).headers.get("retry-after"))).toBe(30);
    clock.advance(30_000);
    const recovered = await asService();
    expect(recovered.status).toBe(400);
    expect(recovered.headers.get("ratelimit-remaining")).toBe("2");
  });

  test("a token shares its key's budget", async () => {
    clock.advance(WINDOW_MS);
    const issued = await t.request("/v1/auth/token", { as: "service", method: "POST" });
    const token = ((await issued.json()) as { access_token: string }).access_token;
    const viaToken = () =>
      t.request("/v1/auth/revoke", { method: "POST", headers: { Authorization: `Bearer ${token}` }, json: { jti: crypto.randomUUID() } });
    expect((await viaToken()).status).toBe(404);
    expect((await viaToken()).status).toBe(404);
    expect((await asService()).status).toBe(429);
  });
});

describe("per-address limits", () => {
  test("anonymous requests are limited per address", async () => {
    clock.advance(WINDOW_MS);
    expect((await t.request("/.well-known/jwks.json")).status).toBe(200);
    expect((await t.request("/v1/keys")).status).toBe(401);
    const limited = await t.request("/.well-known/jwks.json");
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBeTruthy();
    expect(await metricValue(t, "arbiter_rate_limit_rejections_total", { scope: "address" })).toBeGreaterThanOrEqual(1);
    // Health probes are never limited.
    expect((await t.request("/health/live")).status).toBe(200);
  });

  test("repeated failed authentication throttles the address for any credential not already verified, until the window ends", async () => {
    clock.advance(WINDOW_MS);
    expect((await t.request("/v1/keys?limit=1", { as: "admin" })).status).toBe(200); // admin key now verified and cached
    const issue = async () => {
      const issued = await t.request("/v1/auth/token", { as: "admin", method: "POST" });
      return ((await issued.json()) as { access_token: string }).access_token;
    };
    const [verifiedToken, unseenToken] = [await issue(), await issue()];
    const withToken = (token: string) => t.request("/v1/keys?limit=1", { headers: { Authorization: `Bearer ${token}` } });
    expect((await withToken(verifiedToken)).status).toBe(200); // verified and cached
    const bogus = `${t.keys.admin.slice(0, -1)}${t.keys.admin.endsWith("A") ? "B" : "A"}`;
    for (let i = 0; i < 3; i++) expect((await t.request("/v1/keys", { headers: { "X-API-Key": bogus } })).status).toBe(401);
    const tamperedToken = `${unseenToken.slice(0, -2)}${unseenToken.endsWith("AA") ? "BB" : "AA"}`;
    for (const headers of <Record<string, string>[]>[
      { "X-API-Key": bogus },
      { "X-API-Key": t.keys.readonly },
      { "X-API-Key": "not-even-a-key" },
      // A token never verified here, genuine or not, takes the slow path and is refused with the rest.
      { Authorization: `Bearer ${unseenToken}` },
      { Authorization: `Bearer ${tamperedToken}` },
    ]) {
      const throttled = await t.request("/v1/keys?limit=1", { headers });
      expect(throttled.status).toBe(429);
      expect(await errorCode(throttled)).toBe("too_many_failed_attempts");
      expect(throttled.headers.get("retry-after")).toBeTruthy();
    }
    expect(await metricValue(t, "arbiter_auth_failures_total", { reason: "invalid_key" })).toBe(3);
    // A client that had already authenticated (sharing the address with the guesser) keeps working, by key or token.
    expect((await t.request("/v1/keys?limit=1", { as: "admin" })).status).toBe(200);
    expect((await withToken(verifiedToken)).status).toBe(200);

    clock.advance(WINDOW_MS);
    expect((await t.request("/v1/keys?limit=1", { as: "readonly" })).status).toBe(403); // authenticated again, not permitted
  });

  test("failure reasons are counted separately", async () => {
    clock.advance(WINDOW_MS);
    const token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.";
    expect((await t.request("/v1/keys", { headers: { Authorization: `Bearer ${token}` } })).status).toBe(401);
    expect(await metricValue(t, "arbiter_auth_failures_total", { reason: "invalid_token" })).toBe(1);
  });
});
