import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { generateApiKey } from "../../src/auth/key-format";
import { type JSONWebKeySet, verifyReceipt } from "../../src/sdk";
import { type ArbiterProcess, spawnArbiter, tempDir, waitFor, within } from "../foundation/support";
import { createScratchDatabase } from "../helpers/db";
import { parseExposition, type Sample, total } from "../observability/exposition";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * One app, three runtimes: each entry point (Bun, Deno, Node through tsx) is started as a real
 * process on this run's tier (a temp PGlite directory, or a scratch database on DATABASE_URL plus
 * REDIS_URL) and taken through the same HTTP flow over fetch.
 */
interface Runtime {
  name: "bun" | "deno" | "node";
  command: string[];
  /** why it cannot run here, or undefined */
  missing(): string | undefined;
}

const DENO_PERMISSIONS = ["--allow-net", "--allow-env", "--allow-read", "--allow-write", "--allow-sys"];

const RUNTIMES: Runtime[] = [
  { name: "bun", command: ["bun", "run", "src/main.ts"], missing: () => undefined },
  {
    name: "deno",
    command: ["deno", "run", ...DENO_PERMISSIONS, "src/deno.ts"],
    missing: () => (Bun.which("deno") ? undefined : "the deno binary is not on PATH (install it with `npm install -g deno`)"),
  },
  {
    name: "node",
    command: ["node", "--import", "tsx", "src/node.ts"],
    missing: () => {
      if (!Bun.which("node")) return "the node binary is not on PATH (Node 20 or later is needed)";
      const major = Number(Bun.spawnSync(["node", "-p", "process.versions.node.split('.')[0]"]).stdout.toString().trim());
      return major >= 20 ? undefined : `node ${major} is too old: Node 20 or later is needed`;
    },
  },
];

type Body = Record<string, unknown>;

for (const runtime of RUNTIMES) {
  const missing = runtime.missing();
  // In CI every runtime must run: a missing one fails loudly instead of passing by skipping.
  if (missing && process.env.CI !== "true") console.warn(`runtimes: skipping ${runtime.name}: ${missing}`);

  describe.skipIf(Boolean(missing) && process.env.CI !== "true")(`${runtime.name} entry point`, () => {
    const adminKey = generateApiKey();
    let arbiter: ArbiterProcess | undefined;
    let dropDatabase: (() => Promise<void>) | undefined;
    let base: URL;
    const keys: Record<"service" | "operator", { id: string; key: string }> = {} as never;
    let approvedId: string;

    const call = (path: string, init: { key?: string; method?: string; json?: unknown } = {}) =>
      fetch(new URL(path, base), {
        method: init.method ?? (init.json === undefined ? "GET" : "POST"),
        headers: {
          ...(init.key ? { "X-API-Key": init.key } : {}),
          ...(init.json === undefined ? {} : { "Content-Type": "application/json" }),
        },
        ...(init.json === undefined ? {} : { body: JSON.stringify(init.json) }),
      });
    const scrape = async (): Promise<Sample[]> => {
      const res = await call("/metrics", { key: adminKey });
      expect(res.status).toBe(200);
      return parseExposition(await res.text());
    };

    beforeAll(async () => {
      if (missing) throw new Error(`CI=true and ${runtime.name} cannot run: ${missing}`);
      const env: Record<string, string> = {
        PORT: "0",
        HOST: "127.0.0.1",
        ARBITER_API_KEYS: `admin:${adminKey}`,
        CACHE_PREFIX: `arbiter-rt-${runtime.name}-${crypto.randomUUID().slice(0, 8)}:`,
      };
      if (process.env.DATABASE_URL) {
        const scratch = await createScratchDatabase(process.env.DATABASE_URL);
        dropDatabase = scratch.drop;
        env.DATABASE_URL = scratch.url;
      } else env.DATA_DIR = tempDir(`runtime-${runtime.name}`);
      if (process.env.REDIS_URL) env.REDIS_URL = process.env.REDIS_URL;
      arbiter = spawnArbiter(env, runtime.command);
      const listening = await arbiter.waitForLog("listening", 90_000);
      expect(String(listening.runtime)).toStartWith(runtime.name);
      base = new URL(String(listening.url));
    }, 120_000);

    afterAll(async () => {
      if (arbiter && arbiter.proc.exitCode === null) {
        arbiter.proc.kill("SIGTERM");
        await within(arbiter.exited, 20_000, `${runtime.name} after SIGTERM`).catch(() => arbiter?.proc.kill("SIGKILL"));
      }
      await dropDatabase?.();
    }, 60_000);

    test("health: live and ready", async () => {
      expect((await call("/health/live")).status).toBe(200);
      const ready = await call("/health/ready");
      expect(ready.status).toBe(200);
      expect(((await ready.json()) as Body).status).toBe("pass");
    });

    test("keys: the admin creates a service and an operator key; only valid keys authenticate", async () => {
      for (const role of ["service", "operator"] as const) {
        const res = await call("/v1/keys", { key: adminKey, json: { name: `${runtime.name}-${role}`, role } });
        expect(res.status).toBe(201);
        const body = (await res.json()) as { id: string; key: string; role: string };
        expect(body.role).toBe(role);
        keys[role] = { id: body.id, key: body.key };
      }
      expect((await call("/v1/decisions")).status).toBe(401);
      expect((await call("/v1/decisions", { key: generateApiKey() })).status).toBe(401);
      expect((await call("/v1/decisions", { key: keys.service.key })).status).toBe(200);
      // A service key may not manage keys.
      expect((await call(`/v1/keys/${keys.operator.id}`, { key: keys.service.key })).status).toBe(403);
    });

    test("decisions: a waiter parked with ?wait= answers 'approved' when the operator approves", async () => {
      const created = await call("/v1/decisions", {
        key: keys.service.key,
        json: { kind: "deploy", title: `Deploy on ${runtime.name}`, payload: { runtime: runtime.name } },
      });
      expect(created.status).toBe(201);
      const decision = (await created.json()) as { id: string; status: string };
      expect(decision.status).toBe("pending");

      const waiting = call(`/v1/decisions/${decision.id}?wait=30`, { key: keys.service.key });
      // The approval is sent only once the server reports the waiter parked, so this is a real long-poll.
      await waitFor(async () => total(await scrape(), "arbiter_decisions_waiters") >= 1, "the long-poll to be parked", 15_000);
      const approved = await call(`/v1/decisions/${decision.id}/approve`, { key: keys.operator.key, json: { reason: "ship it" } });
      expect(approved.status).toBe(200);
      const answer = await within(waiting, 15_000, "the long-poll answer");
      expect(answer.status).toBe(200);
      expect(((await answer.json()) as { status: string }).status).toBe("approved");
      approvedId = decision.id;
    });

    test("agents: over MCP (the official SDK's client) the approved decision comes with a receipt that verifies", async () => {
      const mcp = new Client({ name: "runtime-check", version: "1.0.0" });
      await mcp.connect(
        new StreamableHTTPClientTransport(new URL("/mcp", base), { requestInit: { headers: { "X-API-Key": keys.service.key } } }),
      );
      try {
        const answer = await mcp.callTool({ name: "get_decision", arguments: { id: approvedId } });
        const result = answer.structuredContent as { approved: boolean; receipt: string };
        expect(result.approved).toBe(true);
        const jwks = (await (await call("/.well-known/jwks.json")).json()) as JSONWebKeySet;
        const verified = await verifyReceipt(result.receipt, { jwks, payload: { runtime: runtime.name }, decisionId: approvedId });
        expect(verified.claims.decided_by).toEqual({
          type: "people",
          people: [{ key_id: keys.operator.id, person_id: keys.operator.id, name: `${runtime.name}-operator` }],
        });
      } finally {
        await mcp.close();
      }
    });

    test("telemetry: a batch of events is ingested", async () => {
      const occurred = new Date(Date.now() - 60_000).toISOString();
      const events = [1, 2].map((step) => ({
        type: "agent.step",
        source: runtime.name,
        severity: "info",
        occurred_at: occurred,
        attributes: { step },
      }));
      const res = await call("/v1/telemetry/events", { key: keys.service.key, json: { events } });
      expect(res.status).toBe(202);
      expect(await res.json()).toEqual({ received: 2, accepted: 2, duplicates: 0 });
    });

    test("/metrics (as admin) counts this run's requests and names the runtime", async () => {
      const samples = await scrape();
      expect(total(samples, "arbiter_build_info", { runtime: runtime.name })).toBe(1);
      expect(total(samples, "http_server_requests_total", { http_route: "/v1/keys", http_request_method: "POST" })).toBe(2);
      expect(total(samples, "http_server_requests_total", { http_route: "/v1/decisions/:id", http_request_method: "GET" })).toBe(1);
      expect(total(samples, "arbiter_telemetry_events_ingested_total")).toBe(2);
      expect(total(samples, "arbiter_decisions_resolved_total")).toBe(1);
      expect((await call("/metrics", { key: keys.service.key })).status).toBe(403);
    });

    test("SIGTERM stops it cleanly: exit 0 and 'stopped' logged", async () => {
      const running = arbiter!;
      running.proc.kill("SIGTERM");
      expect(await within(running.exited, 20_000, `${runtime.name} after SIGTERM`)).toBe(0);
      expect(running.logs().find((record) => record.msg === "stopped")?.signal).toBe("SIGTERM");
    });
  });
}
