import { afterAll, beforeAll, describe, expect, setDefaultTimeout, spyOn, test } from "bun:test";
import { generateApiKey } from "../../src/auth/key-format";
import { openPostgres } from "../../src/db/client";
import { StartupError } from "../../src/deps";
import edge, { createEdgeHandler, edgeConfig } from "../../src/edge";
import { REAL_REDIS_URL, redisReachable } from "../foundation/support";
import { createScratchDatabase } from "../helpers/db";
import { startUpstashBridge, type UpstashBridge } from "../helpers/upstash-bridge";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/** The fetch-only entry: `{ fetch(request, env) }`, configured from the platform's bindings. */
const upstash = { UPSTASH_REDIS_REST_URL: "https://example-edge.upstash.io", UPSTASH_REDIS_REST_TOKEN: "edge-token-0123456789" };
const postgresUrl = { DATABASE_URL: "postgres://arbiter@db.example.com:5432/arbiter" };

describe("edge configuration", () => {
  test("the default export is a fetch handler", () => {
    expect(typeof edge.fetch).toBe("function");
  });

  test("embedded PGlite, TCP Redis and a missing Upstash are refused with a reason", () => {
    expect(() => edgeConfig({ ...upstash })).toThrow(StartupError);
    expect(() => edgeConfig({ ...upstash })).toThrow(/DATABASE_URL is required on the edge: embedded PGlite/);
    expect(() => edgeConfig({ ...postgresUrl, REDIS_URL: "redis://127.0.0.1:6379" })).toThrow(/REDIS_URL \(Redis over TCP\)/);
    expect(() => edgeConfig({ ...postgresUrl })).toThrow(/UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN are required/);
    expect(() => edgeConfig({ ...upstash, ...postgresUrl, PORT: "not-a-port" })).toThrow(StartupError);
  });

  test("migrations are never run from the edge; non-string bindings (KV, queues) are ignored", () => {
    const config = edgeConfig({ ...upstash, ...postgresUrl, RUN_MIGRATIONS: "true", SOME_KV: { get() {} } });
    expect(config.RUN_MIGRATIONS).toBe(false);
    expect(config.DATABASE_URL).toBe(postgresUrl.DATABASE_URL);
  });

  test("a deployment that cannot start answers 503 without naming why; the reason goes to the log", async () => {
    const errors = spyOn(console, "error").mockImplementation(() => {});
    try {
      const handler = createEdgeHandler();
      const res = await handler(new Request("https://edge.example/health/live"), { ...upstash });
      expect(res.status).toBe(503);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("unavailable");
      expect(JSON.stringify(body)).not.toContain("DATABASE_URL");
      expect(errors.mock.calls.flat().join(" ")).toContain("DATABASE_URL is required on the edge");
      expect(errors.mock.calls.flat().join(" ")).not.toContain(upstash.UPSTASH_REDIS_REST_TOKEN);
    } finally {
      errors.mockRestore();
    }
  });
});

// Serving needs what the edge needs: a real PostgreSQL and an Upstash REST endpoint (a bridge to the real Redis).
const haveServers = Boolean(process.env.DATABASE_URL) && (await redisReachable());

describe.skipIf(!haveServers)("edge serving (PostgreSQL + Upstash REST)", () => {
  let bridge: UpstashBridge;
  let scratch: Awaited<ReturnType<typeof createScratchDatabase>>;
  const adminKey = generateApiKey();

  beforeAll(async () => {
    bridge = startUpstashBridge({ redisUrl: REAL_REDIS_URL });
    scratch = await createScratchDatabase(process.env.DATABASE_URL!);
    // As in a real deployment, the schema is migrated beforehand, not from the edge.
    const database = await openPostgres({ url: scratch.url, poolMax: 1 });
    await database.migrate();
    await database.close();
  }, 60_000);
  afterAll(async () => {
    await bridge?.close();
    await scratch?.drop();
  });

  test("a failed first start is retried on the next request; then keys, auth and readiness work", async () => {
    const handler = createEdgeHandler();
    const bindings = {
      DATABASE_URL: scratch.url,
      DATABASE_POOL_MAX: "2",
      UPSTASH_REDIS_REST_URL: bridge.url,
      UPSTASH_REDIS_REST_TOKEN: bridge.token,
      CACHE_PREFIX: `edge-${crypto.randomUUID().slice(0, 8)}:`,
      ARBITER_API_KEYS: `admin:${adminKey}`,
      LOG_LEVEL: "silent",
    };
    const errors = spyOn(console, "error").mockImplementation(() => {});
    try {
      expect((await handler(new Request("https://edge.example/health/live"), { ...bindings, DATABASE_URL: undefined })).status).toBe(503);
    } finally {
      errors.mockRestore();
    }

    const ready = await handler(new Request("https://edge.example/health/ready"), bindings);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { description: string }).description).toContain("upstash");

    const created = await handler(
      new Request("https://edge.example/v1/keys", {
        method: "POST",
        headers: { "X-API-Key": adminKey, "Content-Type": "application/json" },
        body: JSON.stringify({ name: "edge-service", role: "service" }),
      }),
      bindings,
    );
    expect(created.status).toBe(201);
    const { key } = (await created.json()) as { key: string };
    const listed = await handler(new Request("https://edge.example/v1/decisions", { headers: { "X-API-Key": key } }), bindings);
    expect(listed.status).toBe(200);
    expect((await handler(new Request("https://edge.example/v1/decisions"), bindings)).status).toBe(401);
  });
});
