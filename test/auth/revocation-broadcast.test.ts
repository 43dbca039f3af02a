import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { eq } from "drizzle-orm";
import { createApiKey } from "../../src/auth/api-keys";
import { REVOCATION_CHANNEL } from "../../src/auth/revocations";
import { createTokenSigner } from "../../src/auth/tokens";
import { AuthFailure, createVerifier } from "../../src/auth/verifier";
import { createMemoryCache } from "../../src/cache/memory";
import { createRedisCache } from "../../src/cache/redis";
import { type Cache, CacheUnavailableError } from "../../src/cache/types";
import { loadConfig } from "../../src/config";
import type { Database, DatabaseHandle } from "../../src/db/client";
import { apiKeys } from "../../src/db/schema";
import { createLogger } from "../../src/observability/logger";
import { waitFor } from "../foundation/support";
import { startTestApp, type TestApp } from "../helpers/app";
import { uniquePrefix } from "../helpers/cache";
import { openTestDatabase } from "../helpers/db";
import { errorCode, type ManualClock, manualClock } from "./support";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * Revocations broadcast over the cache's pub/sub: two replicas over one database and one cache.
 * The verification cache lives 60 s and the replicas' clocks stand still unless a test moves them,
 * so only the broadcast can explain a refusal on the replica that did not revoke.
 */
const CACHE_TTL_MS = 60_000;
const env = { AUTH_CACHE_TTL_MS: String(CACHE_TTL_MS) };

interface Pair {
  a: TestApp;
  b: TestApp;
  clockA: ManualClock;
  clockB: ManualClock;
  /** the cache replica B listens on */
  cacheB: Cache;
}

const opened: Pair[] = [];
let database: DatabaseHandle;

/** Replica A's cache may be wrapped (a failing publish); B always gets a working one. */
async function startPair(wrapA: (cache: Cache) => Cache = (cache) => cache): Promise<Pair> {
  const prefix = uniquePrefix();
  const memory = createMemoryCache();
  const shared = () => (process.env.REDIS_URL ? createRedisCache({ url: process.env.REDIS_URL, prefix }) : memory);
  const clockA = manualClock();
  const clockB = manualClock();
  const cacheB = shared();
  // Neither replica closes the shared database; the in-memory cache is closed once, by A.
  const borrowed = { ...database, close: async () => {} };
  const a = await startTestApp({ database: borrowed, cache: wrapA(shared()), clock: clockA, env });
  const b = await startTestApp({ database: borrowed, cache: cacheB, clock: clockB, env });
  const pair = { a, b, clockA, clockB, cacheB };
  opened.push(pair);
  return pair;
}

beforeAll(async () => {
  database = await openTestDatabase();
}, 30_000);
afterAll(async () => {
  for (const { a, b } of opened) await Promise.all([b.close(), a.close()]);
  await database.close();
});

const readWith = (app: TestApp, credential: string) => app.request("/v1/keys?limit=1", { headers: { "X-API-Key": credential } });

async function newKey(app: TestApp, name: string): Promise<{ id: string; key: string }> {
  const res = await app.request("/v1/keys", { as: "admin", method: "POST", json: { name, role: "admin" } });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; key: string };
}

/**
 * Polls `app` with `credential` until it is refused (bounded, far below the 60 s TTL) and returns
 * the refusal's code and how long after `since` it came.
 */
async function refusedBy(app: TestApp, credential: string, since: number): Promise<{ code: string | undefined; afterMs: number }> {
  let refusal: Response | undefined;
  await waitFor(async () => {
    const res = await readWith(app, credential);
    if (res.status === 401) refusal = res;
    else expect(res.status).toBe(200);
    return refusal !== undefined;
  }, "the other replica to refuse a revoked credential");
  const afterMs = performance.now() - since;
  return { code: await errorCode(refusal!), afterMs };
}

describe("revocation broadcast", () => {
  test("a key revoked on one replica is refused on the other long before AUTH_CACHE_TTL_MS", async () => {
    const { a, b } = await startPair();
    const { id, key } = await newKey(a, "revoked everywhere");
    expect((await readWith(b, key)).status).toBe(200); // B caches the key for 60 s
    expect((await readWith(b, key)).status).toBe(200);

    const started = performance.now();
    expect((await a.request(`/v1/keys/${id}/revoke`, { as: "admin", method: "POST" })).status).toBe(200);
    const onB = await refusedBy(b, key, started);
    expect(onB.code).toBe("key_revoked");
    console.log(`key revocation reached the other replica ${onB.afterMs.toFixed(1)} ms after the revoke request was sent`);
  });

  test("a token revoked on one replica is refused on the other; the broadcast names the jti, never the token", async () => {
    const { a, b, cacheB } = await startPair();
    const messages: string[] = [];
    await cacheB.subscribe(REVOCATION_CHANNEL, (message) => messages.push(message));
    const issued = await a.request("/v1/auth/token", { as: "admin", method: "POST" });
    const { access_token: token, jti } = (await issued.json()) as { access_token: string; jti: string };
    expect((await readWith(b, token)).status).toBe(200);

    const started = performance.now();
    expect((await a.request("/v1/auth/revoke", { as: "admin", method: "POST", json: { jti } })).status).toBe(200);
    const onB = await refusedBy(b, token, started);
    expect(onB.code).toBe("token_revoked");
    console.log(`token revocation reached the other replica ${onB.afterMs.toFixed(1)} ms after the revoke request was sent`);
    await waitFor(() => messages.length > 0, "the broadcast seen by a plain subscriber");
    expect(messages.map((m) => JSON.parse(m))).toEqual([{ kind: "session", jti }]);
  });

  test("rotation without grace ends the old key on the other replica at once", async () => {
    const { a, b } = await startPair();
    const { id, key } = await newKey(a, "rotated now");
    expect((await readWith(b, key)).status).toBe(200);
    const rotated = await a.request(`/v1/keys/${id}/rotate`, { as: "admin", method: "POST", json: { grace_seconds: 0 } });
    expect(rotated.status).toBe(201);
    const { key: replacement } = (await rotated.json()) as { key: string };
    expect((await refusedBy(b, key, performance.now())).code).toBe("key_revoked");
    expect((await readWith(b, replacement)).status).toBe(200);
  });

  test("rotation with grace: the other replica learns when the grace ends, before its cache entry would expire", async () => {
    const { a, b, clockB, cacheB } = await startPair();
    const { id, key } = await newKey(a, "rotated with grace");
    expect((await readWith(b, key)).status).toBe(200); // cached without any revocation time
    // Subscribed after B, so B has handled every broadcast this listener has seen.
    const messages: string[] = [];
    await cacheB.subscribe(REVOCATION_CHANNEL, (message) => messages.push(message));
    const rotated = await a.request(`/v1/keys/${id}/rotate`, { as: "admin", method: "POST", json: { grace_seconds: 30 } });
    expect(rotated.status).toBe(201);
    await waitFor(() => messages.length > 0, "the rotation's broadcast");
    expect(messages.map((m) => JSON.parse(m))).toEqual([{ kind: "key", id }]);
    // The old key keeps working on B through the grace period (B re-reads it, with its end).
    expect((await readWith(b, key)).status).toBe(200);
    // 30 s later — half the 60 s cache TTL — the grace has ended on B too.
    clockB.advance(30_000);
    const onB = await readWith(b, key);
    expect(onB.status).toBe(401);
    expect(await errorCode(onB)).toBe("key_revoked");
  });

  test("a failing publish does not fail the revocation: it is logged, and the TTL still bounds the other replica", async () => {
    const failingPublish = (cache: Cache): Cache => ({
      ...cache,
      publish: async () => {
        throw new CacheUnavailableError("publish refused");
      },
    });
    const { a, b, clockB } = await startPair(failingPublish);
    const { id, key } = await newKey(a, "revoked, broadcast lost");
    const issued = await a.request("/v1/auth/token", { as: "admin", method: "POST" });
    const { access_token: token, jti } = (await issued.json()) as { access_token: string; jti: string };
    expect((await readWith(b, key)).status).toBe(200);
    expect((await readWith(b, token)).status).toBe(200);

    const revoked = await a.request(`/v1/keys/${id}/revoke`, { as: "admin", method: "POST" });
    expect(revoked.status).toBe(200);
    expect((await a.request("/v1/auth/revoke", { as: "admin", method: "POST", json: { jti } })).status).toBe(200);
    const warnings = a.logs.filter((line) => line.level === "warn" && String(line.msg).startsWith("revocation broadcast failed"));
    expect(warnings.map((line) => line.kind)).toEqual(["key", "session"]);
    expect(JSON.stringify(a.logs)).not.toContain(key);
    expect(JSON.stringify(a.logs)).not.toContain(token);
    // Immediate on A; on B the cached entries stand until the TTL, and not a moment longer.
    expect((await readWith(a, key)).status).toBe(401);
    expect((await readWith(b, key)).status).toBe(200);
    clockB.advance(CACHE_TTL_MS);
    const keyOnB = await readWith(b, key);
    expect(keyOnB.status).toBe(401);
    expect(await errorCode(keyOnB)).toBe("key_revoked");
    const tokenOnB = await readWith(b, token);
    expect(tokenOnB.status).toBe(401);
    expect(await errorCode(tokenOnB)).toBe("token_revoked");
  });

  test("a malformed broadcast is ignored with a warning; the replica keeps serving", async () => {
    const { a, b, cacheB } = await startPair();
    expect((await readWith(b, a.keys.admin)).status).toBe(200); // B listens from its first lookup on
    await cacheB.publish(REVOCATION_CHANNEL, "not json");
    await cacheB.publish(REVOCATION_CHANNEL, JSON.stringify({ kind: "key", id: "x".repeat(100) }));
    await waitFor(
      () => b.logs.filter((line) => line.msg === "ignored a malformed revocation broadcast").length === 2,
      "B to ignore both messages",
    );
    expect((await readWith(b, a.keys.admin)).status).toBe(200);
  });
});

/**
 * The database, except that the next query's result is held back until `afterNextRead` has run:
 * a revocation that commits and is broadcast while a lookup is in flight.
 */
function pausingDatabase(db: Database) {
  let afterNextRead: (() => Promise<void>) | undefined;
  const wrap = (value: unknown): unknown => {
    if (value === null || typeof value !== "object") return value;
    return new Proxy(value, {
      get(target, property) {
        const member = Reflect.get(target, property, target);
        if (typeof member !== "function") return member;
        if (property === "then") {
          return (resolve: (v: unknown) => unknown, reject: (e: unknown) => unknown) =>
            member
              .call(target, async (result: unknown) => {
                const hook = afterNextRead;
                afterNextRead = undefined;
                await hook?.();
                return result;
              })
              .then(resolve, reject);
        }
        return (...args: unknown[]) => wrap(member.apply(target, args));
      },
    });
  };
  return {
    db: wrap(db) as Database,
    pauseNextRead(hook: () => Promise<void>) {
      afterNextRead = hook;
    },
  };
}

describe("a revocation racing a lookup", () => {
  test("a row read before a revocation arrived answers its own request but is not cached", async () => {
    const clock = manualClock();
    const { key, row } = await createApiKey(database.db, { name: "raced", role: "readonly" }, clock.now());
    const paused = pausingDatabase(database.db);
    const verifier = createVerifier({
      db: paused.db,
      clock,
      logger: createLogger({ level: "silent" }),
      signer: createTokenSigner({ db: database.db, config: loadConfig({}), clock }),
      ttlMs: CACHE_TTL_MS,
      clockToleranceSeconds: 30,
    });
    paused.pauseNextRead(async () => {
      await database.db.update(apiKeys).set({ revokedAt: clock.now() }).where(eq(apiKeys.id, row.id));
      verifier.forgetKey(row.id); // the broadcast lands while the lookup is in flight
    });
    expect((await verifier.verify(key)).keyId).toBe(row.id);
    const again = await verifier.verify(key).catch((error: unknown) => error);
    expect(again).toBeInstanceOf(AuthFailure);
    expect((again as AuthFailure).code).toBe("key_revoked");
  });
});
