import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { Validator } from "@seriousme/openapi-schema-validator";
import { startTestApp, type TestApp } from "../helpers/app";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * The generated document is valid OpenAPI 3.1 and complete: every endpoint the app serves is in it,
 * with the permission it needs. Generic over `app.routes`, so routes added later are covered too.
 */
let t: TestApp;
let doc: { openapi: string; paths: Record<string, Record<string, Record<string, unknown>>> };
beforeAll(async () => {
  t = await startTestApp();
  const res = await t.request("/openapi.json");
  expect(res.status).toBe(200);
  doc = await res.json();
}, 60_000);
afterAll(() => t.close());

/** Hono's `/a/:id` (optionally `:id{regex}`) as OpenAPI's `/a/{id}`. */
const toOpenApiPath = (path: string) => path.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?/g, "{$1}");
/** The document itself, its viewer, and the MCP endpoint: one JSON-RPC URL whose tools docs/agents.md describes, not REST operations. */
const UNDOCUMENTED = new Set(["/openapi.json", "/docs", "/mcp"]);
/**
 * The operator console's HTML pages and forms are for browsers, and the integration endpoints are for
 * Slack and email recipients (docs/notifications.md): neither is part of the API.
 */
const isConsolePage = (path: string) => path === "/console" || path.startsWith("/console/") || path.startsWith("/integrations/");

const endpoints = () => {
  const seen = new Set<string>();
  for (const route of t.app.routes) {
    // Middleware mounts (`/v1/*`, method ALL) are not endpoints.
    if (route.method === "ALL" || route.path.includes("*") || UNDOCUMENTED.has(route.path) || isConsolePage(route.path)) continue;
    seen.add(`${route.method} ${route.path}`);
  }
  return [...seen].map((entry) => {
    const [method, path] = entry.split(" ") as [string, string];
    return { method: method.toLowerCase(), path, documented: toOpenApiPath(path) };
  });
};

describe("OpenAPI document", () => {
  test("is valid OpenAPI 3.1 per a maintained validator", async () => {
    expect(doc.openapi).toStartWith("3.1");
    const result = await new Validator().validate(doc);
    if (!result.valid) console.error(JSON.stringify(result.errors, null, 2));
    expect(result.valid).toBe(true);
  });

  test("every route the app serves is documented under its method", () => {
    const routes = endpoints();
    expect(routes.length).toBeGreaterThanOrEqual(2);
    const missing = routes.filter((r) => !doc.paths[r.documented]?.[r.method]).map((r) => `${r.method.toUpperCase()} ${r.path}`);
    expect(missing).toEqual([]);
  });

  test("every documented operation names the permission it needs", () => {
    const lacking: string[] = [];
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const permission = operation["x-permission"];
        if (typeof permission !== "string" || permission === "") lacking.push(`${method.toUpperCase()} ${path}`);
      }
    }
    expect(lacking).toEqual([]);
  });

  test("nothing is documented that the app does not serve", () => {
    const served = new Set(endpoints().map((r) => `${r.method} ${r.documented}`));
    const phantom = Object.entries(doc.paths).flatMap(([path, operations]) =>
      Object.keys(operations)
        .filter((method) => !served.has(`${method} ${path}`))
        .map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(phantom).toEqual([]);
  });

  test("/docs serves the browsable reference", async () => {
    const res = await t.request("/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toStartWith("text/html");
    expect(await res.text()).toContain("/openapi.json");
  });
});
