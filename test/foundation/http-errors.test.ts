import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { z } from "@hono/zod-openapi";
import { createMemoryCache } from "../../src/cache/memory";
import { createRouter, defineRoute } from "../../src/http/openapi";
import { startTestApp, type TestApp } from "../helpers/app";
import { openTestDatabase } from "../helpers/db";
import { appOver } from "./support";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * Error shapes, request ids, request logs and secure headers, through the real app. Two probe routes
 * are mounted on it before it serves its first request (Hono routers may grow until then): one that
 * validates a JSON body, one that fails the way a bug would, with internals in its message.
 */
const LEAKY_MESSAGE = 'relation "secret_internal_table" does not exist: select * from secret_internal_table where token = $1';

const Item = z.object({ name: z.string().min(1), items: z.array(z.object({ qty: z.number().int().positive() })) });
const echo = defineRoute("public", {
  operationId: "probeEcho",
  method: "post",
  path: "/probe/echo/{id}",
  request: {
    params: z.object({ id: z.string().uuid() }),
    body: { content: { "application/json": { schema: Item } }, required: true },
  },
  responses: { 200: { description: "the body back", content: { "application/json": { schema: Item } } } },
});
const boom = defineRoute("public", {
  operationId: "probeBoom",
  method: "get",
  path: "/probe/boom",
  responses: { 200: { description: "never", content: { "application/json": { schema: z.object({}) } } } },
});
const probeRoutes = () =>
  createRouter()
    .openapi(echo, (c) => c.json(c.req.valid("json"), 200))
    .openapi(boom, () => {
      throw new Error(LEAKY_MESSAGE);
    });

const BODY_LIMIT = 1024;
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ env: { BODY_LIMIT_BYTES: String(BODY_LIMIT) } });
  t.app.route("/", probeRoutes());
}, 60_000);
afterAll(() => t.close());

const ID = "0190f0a2-7b3c-7d4e-8f01-23456789abcd";
type ErrorJson = { error: { code: string; message: string; details?: unknown } };

async function expectError(res: Response, status: number, code: string): Promise<ErrorJson> {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toStartWith("application/json");
  const body = (await res.json()) as ErrorJson;
  expect(Object.keys(body)).toEqual(["error"]);
  expect(body.error.code).toBe(code);
  expect(body.error.message).toBeString();
  return body;
}

describe("error shapes", () => {
  test("unknown route → 404 not_found", async () => {
    await expectError(await t.request("/no/such/route"), 404, "not_found");
  });

  test("wrong method → 405 with Allow", async () => {
    const live = await t.request("/health/live", { method: "POST" });
    await expectError(live, 405, "method_not_allowed");
    expect(live.headers.get("allow")).toBe("GET, HEAD");
    const echoGet = await t.request(`/probe/echo/${ID}`, { method: "DELETE" });
    await expectError(echoGet, 405, "method_not_allowed");
    expect(echoGet.headers.get("allow")).toBe("POST");
  });

  test("malformed JSON → 400 malformed_json", async () => {
    const res = await t.request(`/probe/echo/${ID}`, {
      method: "POST",
      body: '{"name": "x",',
      headers: { "Content-Type": "application/json" },
    });
    await expectError(res, 400, "malformed_json");
  });

  test("failed validation → 400 validation_failed naming each field path", async () => {
    const res = await t.request("/probe/echo/not-a-uuid", { method: "POST", json: { name: "", items: [{ qty: 1 }, { qty: -2 }] } });
    const body = await expectError(res, 400, "validation_failed");
    const paths = (body.error.details as { path: string }[]).map((d) => d.path);
    expect(paths).toContain("param.id");

    const bodyOnly = await t.request(`/probe/echo/${ID}`, { method: "POST", json: { name: "", items: [{ qty: 1 }, { qty: -2 }] } });
    const details = (await expectError(bodyOnly, 400, "validation_failed")).error.details as { path: string; message: string }[];
    expect(details.map((d) => d.path).sort()).toEqual(["json.items.1.qty", "json.name"]);
    for (const d of details) expect(d.message).toBeString();
  });

  test("a JSON body under another media type → 415 unsupported_media_type", async () => {
    const res = await t.request(`/probe/echo/${ID}`, {
      method: "POST",
      body: '{"name":"x","items":[]}',
      headers: { "Content-Type": "text/plain" },
    });
    await expectError(res, 415, "unsupported_media_type");
  });

  test("valid input passes through", async () => {
    const res = await t.request(`/probe/echo/${ID}`, { method: "POST", json: { name: "ok", items: [{ qty: 3 }] } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ name: "ok", items: [{ qty: 3 }] });
  });

  test("body over BODY_LIMIT_BYTES → 413, with a Content-Length", async () => {
    const big = JSON.stringify({ name: "x".repeat(BODY_LIMIT), items: [] });
    const res = await t.request(`/probe/echo/${ID}`, { method: "POST", body: big, headers: { "Content-Type": "application/json" } });
    await expectError(res, 413, "payload_too_large");
  });

  test("body over BODY_LIMIT_BYTES → 413, chunked without a Content-Length", async () => {
    const chunk = new TextEncoder().encode(`{"name":"${"y".repeat(300)}`);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 8) return controller.close();
        sent += 1;
        controller.enqueue(chunk);
      },
    });
    const res = await t.request(`/probe/echo/${ID}`, { method: "POST", body, headers: { "Content-Type": "application/json" } });
    await expectError(res, 413, "payload_too_large");
  });

  test("an unexpected exception → 500 with the request id and nothing internal; the log has the detail", async () => {
    const res = await t.request("/probe/boom", { headers: { "X-Request-Id": "boom-request-1" } });
    const text = await res.clone().text();
    const body = await expectError(res, 500, "internal_error");
    expect(body.error.details).toEqual({ request_id: "boom-request-1" });
    expect(res.headers.get("x-request-id")).toBe("boom-request-1");
    for (const leak of ["secret_internal_table", "select", "at ", ".ts"]) expect(text).not.toContain(leak);

    const logged = t.logs.find((r) => r.msg === "unhandled error" && r.request_id === "boom-request-1");
    expect(logged?.level).toBe("error");
    expect(JSON.stringify(logged?.error)).toContain("secret_internal_table");
  });
});

describe("request ids and request logs", () => {
  const requestLines = (id: string) => t.logs.filter((r) => r.msg === "request" && r.request_id === id);

  test("a well-formed X-Request-Id is echoed and carried by the log line", async () => {
    const id = "client-id_123=";
    const res = await t.request(`/probe/echo/${ID}`, { method: "POST", json: { name: "a", items: [] }, headers: { "X-Request-Id": id } });
    expect(res.headers.get("x-request-id")).toBe(id);
    const lines = requestLines(id);
    expect(lines).toHaveLength(1);
    const line = lines[0] as Record<string, unknown>;
    expect(line.level).toBe("info");
    expect(Number.isNaN(Date.parse(String(line.time)))).toBe(false);
    expect(line.method).toBe("POST");
    expect(line.route).toBe("/probe/echo/:id"); // the template, not the raw path with its id
    expect(line.status).toBe(200);
    expect(line.duration_ms).toBeNumber();
    expect(JSON.stringify(line)).not.toContain(ID);
  });

  for (const [name, bad] of [
    ["too long", "a".repeat(200)],
    ["bad characters", "abc def<script>"],
    ["a quote and a slash", 'id"/../x'],
  ] as const) {
    test(`a malformed X-Request-Id (${name}) is replaced by a generated one`, async () => {
      const res = await t.request("/health/live", { headers: { "X-Request-Id": bad } });
      const id = res.headers.get("x-request-id");
      expect(id).not.toBe(bad);
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(requestLines(id as string)).toHaveLength(1);
      expect(JSON.stringify(t.logs)).not.toContain("<script>");
    });
  }

  test("every response, errors included, carries a request id", async () => {
    for (const res of [await t.request("/nope"), await t.request("/health/live", { method: "PUT" }), await t.request("/probe/boom")]) {
      expect(res.headers.get("x-request-id")).toBeString();
      await res.body?.cancel();
    }
  });

  test("404, 405 and 500 each log one line at the right level; unmatched routes log no route", async () => {
    const notFound = await t.request("/nope", { headers: { "X-Request-Id": "log-404" } });
    const wrongMethod = await t.request("/health/live", { method: "PUT", headers: { "X-Request-Id": "log-405" } });
    const failed = await t.request("/probe/boom", { headers: { "X-Request-Id": "log-500" } });
    await Promise.all([notFound.text(), wrongMethod.text(), failed.text()]);
    const [l404, l405, l500] = ["log-404", "log-405", "log-500"].map((id) => requestLines(id));
    expect(l404).toHaveLength(1);
    expect(l404?.[0]).toMatchObject({ level: "info", status: 404, method: "GET" });
    expect(l404?.[0]?.route).toBeUndefined();
    expect(l405?.[0]).toMatchObject({ level: "info", status: 405, method: "PUT" });
    expect(l500).toHaveLength(1);
    expect(l500?.[0]).toMatchObject({ level: "error", status: 500, route: "/probe/boom" });
  });
});

test("secure headers on every response", async () => {
  for (const res of [await t.request("/health/live"), await t.request("/nope"), await t.request("/probe/boom")]) {
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("x-frame-options")).toBe("SAMEORIGIN");
    expect(res.headers.get("strict-transport-security")).toContain("max-age=");
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
    expect(res.headers.get("x-powered-by")).toBeNull();
    await res.body?.cancel();
  }
});

test("LOG_LEVEL is honoured: at warn, request lines are dropped and errors kept", async () => {
  const database = await openTestDatabase();
  try {
    const { app, logs } = appOver({ database, cache: createMemoryCache(), env: { LOG_LEVEL: "warn" } });
    app.route("/", probeRoutes());
    expect((await app.request("/health/live")).status).toBe(200);
    expect((await app.request("/probe/boom")).status).toBe(500);
    expect(logs.some((r) => r.level === "info" || r.level === "debug")).toBe(false);
    expect(logs.some((r) => r.msg === "unhandled error")).toBe(true);
    expect(logs.some((r) => r.msg === "request" && r.status === 500)).toBe(true);
  } finally {
    await database.close();
  }
});
