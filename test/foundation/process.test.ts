import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { rmSync } from "node:fs";
import { and, eq } from "drizzle-orm";
import { generateApiKey, hashApiKeySync } from "../../src/auth/key-format";
import { openPglite, openPostgres } from "../../src/db/client";
import { apiKeys, apiKeyUsage, authEvents } from "../../src/db/schema";
import { createScratchDatabase } from "../helpers/db";
import { startUpstashBridge, type UpstashBridge } from "../helpers/upstash-bridge";
import { closedPort, REAL_REDIS_URL, redisReachable, spawnArbiter, tempDir, waitFor, within } from "./support";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * The real entry point as a child process: configuration errors, unreachable dependencies at start,
 * and graceful shutdown. Servers run on the tier's database (a scratch database on the real server,
 * or a PGlite data directory shared by this file's runs, so only the first start is cold).
 */
let databaseEnv: Record<string, string>;
let dropDatabase: (() => Promise<void>) | undefined;
const dataDirs: string[] = [];
const dataDir = (label: string) => {
  const dir = tempDir(label);
  dataDirs.push(dir);
  return dir;
};
beforeAll(async () => {
  if (process.env.DATABASE_URL) {
    const scratch = await createScratchDatabase(process.env.DATABASE_URL);
    dropDatabase = scratch.drop;
    databaseEnv = { DATABASE_URL: scratch.url };
  } else {
    databaseEnv = { DATA_DIR: dataDir("process") };
  }
});
afterAll(async () => {
  await dropDatabase?.();
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
});

const noStackTrace = (lines: string[]) =>
  lines.every((line) => !/^\s+at\s/.test(line) && !line.includes("error: ") && !/\.ts:\d+/.test(line));

describe("bad configuration: exit non-zero with one line naming the variable", () => {
  const cases: [string, Record<string, string>, string][] = [
    ["PORT is not a number", { PORT: "abc" }, "PORT"],
    ["PORT out of range", { PORT: "70000" }, "PORT"],
    ["DATABASE_URL of another database", { DATABASE_URL: "mysql://x" }, "DATABASE_URL"],
    ["REDIS_URL not a URL", { REDIS_URL: "localhost:6379" }, "REDIS_URL"],
    ["Upstash URL without its token", { UPSTASH_REDIS_REST_URL: "https://example.upstash.io" }, "UPSTASH_REDIS_REST_TOKEN"],
    ["Upstash token without its URL", { UPSTASH_REDIS_REST_TOKEN: "t0ken-value" }, "UPSTASH_REDIS_REST_URL"],
    ["unknown LOG_LEVEL", { LOG_LEVEL: "verbose" }, "LOG_LEVEL"],
    ["BODY_LIMIT_BYTES negative", { BODY_LIMIT_BYTES: "-5" }, "BODY_LIMIT_BYTES"],
  ];
  for (const [name, env, variable] of cases) {
    test(name, async () => {
      const arbiter = spawnArbiter({ DATA_DIR: dataDir("config"), ...env });
      const code = await within(arbiter.exited, 20_000, "arbiter with a bad configuration");
      expect(code).not.toBe(0);
      const lines = arbiter.stderr.filter((line) => line.trim() !== "");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`${variable}:`);
      expect(noStackTrace(lines)).toBe(true);
      expect(arbiter.stdout.filter((line) => line.trim() !== "")).toEqual([]);
    });
  }

  test("the message never echoes a secret value", async () => {
    const arbiter = spawnArbiter({ DATA_DIR: dataDir("config"), UPSTASH_REDIS_REST_TOKEN: "sup3r-secret-token" });
    expect(await arbiter.exited).not.toBe(0);
    expect(arbiter.stderr.join("\n")).not.toContain("sup3r-secret-token");
  });
});

describe("unreachable dependencies at start", () => {
  test("database at a closed port: clear message, non-zero exit, no hang, no password", async () => {
    const port = await closedPort();
    const arbiter = spawnArbiter({ DATABASE_URL: `postgres://arbiter:pa55word@127.0.0.1:${port}/arbiter` });
    const code = await within(arbiter.exited, 20_000, "arbiter with an unreachable database");
    expect(code).not.toBe(0);
    const lines = arbiter.stderr.filter((line) => line.trim() !== "");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("database unreachable");
    expect(noStackTrace(lines)).toBe(true);
    expect([...arbiter.stderr, ...arbiter.stdout].join("\n")).not.toContain("pa55word");
  });

  test("a port already taken: one line naming the address, non-zero exit", async () => {
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const arbiter = spawnArbiter({ ...databaseEnv, PORT: String(taken.port) });
      const code = await within(arbiter.exited, 60_000, "arbiter on a taken port");
      expect(code).not.toBe(0);
      const lines = arbiter.stderr.filter((line) => line.startsWith("arbiter: "));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`cannot listen on 127.0.0.1:${taken.port}`);
      expect(noStackTrace(arbiter.stderr)).toBe(true);
    } finally {
      taken.stop(true);
    }
  }, 90_000);

  test("Redis at a closed port: starts degraded, says so, answers ready with warn, stops on SIGINT", async () => {
    const port = await closedPort();
    const arbiter = spawnArbiter({ ...databaseEnv, PORT: String(await closedPort()), REDIS_URL: `redis://127.0.0.1:${port}` });
    try {
      const warning = await arbiter.waitForLog("cache unreachable at start; serving degraded");
      expect(warning.level).toBe("warn");
      expect(warning.cache).toBe("redis");
      const listening = await arbiter.waitForLog("listening");
      const res = await fetch(new URL("/health/ready", String(listening.url)));
      expect(res.status).toBe(200);
      expect(((await res.json()) as { status: string }).status).toBe("warn");

      arbiter.proc.kill("SIGINT");
      expect(await within(arbiter.exited, 20_000, "arbiter after SIGINT")).toBe(0);
      const stopped = arbiter.logs().find((r) => r.msg === "stopped");
      expect(stopped?.signal).toBe("SIGINT");
    } finally {
      arbiter.proc.kill("SIGKILL");
    }
  }, 90_000);
});

const haveRedis = await redisReachable();

describe.skipIf(!haveRedis)("graceful shutdown", () => {
  let bridge: UpstashBridge;
  beforeAll(() => {
    bridge = startUpstashBridge({ redisUrl: REAL_REDIS_URL });
  });
  afterAll(() => bridge.close());

  test("SIGTERM: the in-flight request completes, new connections are refused, exit 0, 'stopped' logged", async () => {
    bridge.setLatency(0);
    const arbiter = spawnArbiter({
      ...databaseEnv,
      PORT: String(await closedPort()),
      UPSTASH_REDIS_REST_URL: bridge.url,
      UPSTASH_REDIS_REST_TOKEN: bridge.token,
      // The slow request: a readiness check waiting on a cache that has become slow.
      HEALTH_CHECK_TIMEOUT_MS: "1500",
      SHUTDOWN_TIMEOUT_MS: "30000",
    });
    try {
      const listening = await arbiter.waitForLog("listening");
      const url = new URL(String(listening.url));
      // A warm keep-alive connection, as a load balancer would hold one.
      expect((await fetch(new URL("/health/live", url))).status).toBe(200);

      bridge.setLatency(10_000);
      const inFlight = fetch(new URL("/health/ready", url));
      await waitFor(() => bridge.delayed() > 0, "the readiness check to be waiting on the cache");
      arbiter.proc.kill("SIGTERM");
      const shuttingDown = await arbiter.waitForLog("shutting down");
      expect(shuttingDown.in_flight).toBe(1);

      // New connections are refused while the in-flight request is still running.
      const refused = await Bun.connect({ hostname: url.hostname, port: Number(url.port), socket: { data() {} } }).then(
        (socket) => {
          socket.end();
          return false;
        },
        () => true,
      );
      expect(refused).toBe(true);

      const res = await inFlight;
      expect(res.status).toBe(200);
      const report = (await res.json()) as { status: string; checks: Record<string, { output?: string }[]> };
      expect(report.status).toBe("warn");
      expect(report.checks["cache:responseTime"]?.[0]?.output).toContain("no answer within 1500 ms");

      expect(await within(arbiter.exited, 20_000, "arbiter after SIGTERM")).toBe(0);
      const logs = arbiter.logs();
      expect(logs.find((r) => r.msg === "stopped")?.signal).toBe("SIGTERM");
      // Idle keep-alive connections did not hold the drain up to its timeout.
      expect(logs.some((r) => r.msg === "drain timed out; closing remaining connections")).toBe(false);
      const request = logs.find((r) => r.msg === "request" && r.route === "/health/ready");
      expect(request?.status).toBe(200);
    } finally {
      bridge.setLatency(0);
      arbiter.proc.kill("SIGKILL");
    }
  }, 90_000);
});

describe("shutdown keeps buffered writes", () => {
  test("audit rows and usage counts buffered just before SIGTERM are in the database after exit", async () => {
    const adminKey = generateApiKey();
    const arbiter = spawnArbiter({ ...databaseEnv, PORT: String(await closedPort()), ARBITER_API_KEYS: `admin:${adminKey}` });
    try {
      const listening = await arbiter.waitForLog("listening");
      const res = await fetch(new URL("/v1/keys", String(listening.url)), { headers: { "X-API-Key": adminKey } });
      expect(res.status).toBe(200);
      const refused = await fetch(new URL("/v1/keys", String(listening.url)), { headers: { "X-API-Key": generateApiKey() } });
      expect(refused.status).toBe(401);
      // Signalled at once: well inside the audit buffer's flush delay.
      arbiter.proc.kill("SIGTERM");
      expect(await within(arbiter.exited, 20_000, "arbiter after SIGTERM")).toBe(0);
    } finally {
      arbiter.proc.kill("SIGKILL");
    }
    const database = databaseEnv.DATABASE_URL
      ? await openPostgres({ url: databaseEnv.DATABASE_URL, poolMax: 1 })
      : await openPglite({ dataDir: databaseEnv.DATA_DIR });
    try {
      const failures = await database.db
        .select()
        .from(authEvents)
        .where(and(eq(authEvents.action, "authenticate"), eq(authEvents.outcome, "failure")));
      expect(failures.length).toBeGreaterThanOrEqual(1);
      const [key] = await database.db
        .select()
        .from(apiKeys)
        .where(eq(apiKeys.keyHash, hashApiKeySync(adminKey)));
      const usage = await database.db.select().from(apiKeyUsage).where(eq(apiKeyUsage.keyId, key!.id));
      expect(usage.map((row) => [row.via, row.requests])).toEqual([["api_key", 1]]);
    } finally {
      await database.close();
    }
  }, 90_000);
});
