import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createMemoryCache } from "../../src/cache/memory";
import { createRedisCache } from "../../src/cache/redis";
import type { Cache } from "../../src/cache/types";
import type { DatabaseHandle } from "../../src/db/client";
import { startTestApp, type TestApp } from "../helpers/app";
import { uniquePrefix } from "../helpers/cache";
import { openTestDatabase } from "../helpers/db";
import { errorCode, type ManualClock, manualClock } from "./support";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * Two app instances over one database and one cache (real Redis on the real-server tier, two
 * separate connections as two replicas would have): what one replica does, the other must see.
 */
const CACHE_TTL_MS = 2_000;
const WINDOW_MS = 60_000;
let database: DatabaseHandle;
let a: TestApp;
let b: TestApp;
let clockA: ManualClock;
let clockB: ManualClock;

function sharedCache(prefix: string, memory: Cache): Cache {
  return process.env.REDIS_URL ? createRedisCache({ url: process.env.REDIS_URL, prefix }) : memory;
}

beforeAll(async () => {
  database = await openTestDatabase();
  const start = Math.ceil(Date.now() / WINDOW_MS) * WINDOW_MS;
  clockA = manualClock(start);
  clockB = manualClock(start);
  const prefix = uniquePrefix();
  const memory = createMemoryCache();
  const env = { AUTH_CACHE_TTL_MS: String(CACHE_TTL_MS), RATE_LIMIT_SERVICE: "4", RATE_LIMIT_WINDOW_MS: String(WINDOW_MS) };
  a = await startTestApp({ database, cache: sharedCache(prefix, memory), clock: clockA, env });
  // B must not close what A owns: the database (and the in-memory cache) are closed once, by A.
  b = await startTestApp({ database: { ...database, close: async () => {} }, cache: sharedCache(prefix, memory), clock: clockB, env });
}, 30_000);
afterAll(async () => {
  await b.close();
  await a.close();
});

const readWith = (app: TestApp, key: string) => app.request("/v1/keys?limit=1", { headers: { "X-API-Key": key } });

describe("two replicas", () => {
  test("a key created on one replica works on the other", async () => {
    const created = await a.request("/v1/keys", { as: "admin", method: "POST", json: { name: "shared", role: "admin" } });
    const { key } = (await created.json()) as { key: string };
    expect((await readWith(b, key)).status).toBe(200);
  });

  test(`revocation: immediate on the revoking replica, within AUTH_CACHE_TTL_MS (${CACHE_TTL_MS} ms) on the other`, async () => {
    const created = await a.request("/v1/keys", { as: "admin", method: "POST", json: { name: "revoked across", role: "admin" } });
    const { id, key } = (await created.json()) as { id: string; key: string };
    expect((await readWith(a, key)).status).toBe(200);
    expect((await readWith(b, key)).status).toBe(200); // B now holds the key in its cache

    expect((await a.request(`/v1/keys/${id}/revoke`, { as: "admin", method: "POST" })).status).toBe(200);
    const onA = await readWith(a, key);
    expect(onA.status).toBe(401);
    expect(await errorCode(onA)).toBe("key_revoked");

    // B may still answer from its cache, but never for longer than the bound.
    clockB.advance(CACHE_TTL_MS);
    const onB = await readWith(b, key);
    expect(onB.status).toBe(401);
    expect(await errorCode(onB)).toBe("key_revoked");
  });

  test("a token issued on one replica verifies on the other; its revocation reaches the other within the bound", async () => {
    const issued = await a.request("/v1/auth/token", { as: "admin", method: "POST" });
    const { access_token: token, jti } = (await issued.json()) as { access_token: string; jti: string };
    expect((await readWith(b, token)).status).toBe(200);
    expect((await b.request("/v1/auth/revoke", { as: "admin", method: "POST", json: { jti } })).status).toBe(200);
    expect((await readWith(b, token)).status).toBe(401);
    clockA.advance(CACHE_TTL_MS);
    const onA = await readWith(a, token);
    expect(onA.status).toBe(401);
    expect(await errorCode(onA)).toBe("token_revoked");
  });

  test("a rate limit holds across replicas sharing the cache", async () => {
    // One key (A's service key) presented to both replicas.
    const call = (app: TestApp) => app.request("/v1/auth/revoke", { method: "POST", headers: { "X-API-Key": a.keys.service } });
    expect((await call(a)).status).toBe(400);
    expect((await call(b)).status).toBe(400);
    expect((await call(a)).status).toBe(400);
    expect((await call(b)).status).toBe(400);
    expect((await call(a)).status).toBe(429);
    expect((await call(b)).status).toBe(429);
  });
});
