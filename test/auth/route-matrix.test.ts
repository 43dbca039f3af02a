import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { PERMISSIONS, ROLE_PERMISSIONS } from "../../src/auth/rbac";
import { ROLES } from "../../src/db/schema";
import { startTestApp, type TestApp } from "../helpers/app";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * Every route × every role, read from the app's own OpenAPI document, so routes added by any area
 * are covered without touching this file. "Allowed" means the request got past authorisation (any
 * status but 401/403); "denied" means 403. A route that declares no permission fails.
 */
let t: TestApp;
let operations: { method: string; path: string; permission: unknown; hasBody: boolean }[];

beforeAll(async () => {
  t = await startTestApp();
  const doc = (await (await t.request("/openapi.json")).json()) as {
    paths: Record<string, Record<string, { "x-permission"?: unknown; requestBody?: unknown }>>;
  };
  operations = Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => ["get", "post", "put", "patch", "delete"].includes(method))
      .map(([method, op]) => ({
        method: method.toUpperCase(),
        path,
        permission: op["x-permission"],
        hasBody: op.requestBody !== undefined,
      })),
  );
}, 30_000);
afterAll(() => t.close());

/** Status once headers arrive; a response still open after 3 s (a long-poll or stream) got past authorisation. */
async function statusOf(method: string, path: string, headers: Record<string, string>, hasBody: boolean): Promise<number> {
  const url = t.url + path.replace(/\{[^}]+\}/g, () => crypto.randomUUID());
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 3_000);
  try {
    const res = await fetch(url, {
      method,
      headers: hasBody ? { ...headers, "Content-Type": "application/json" } : headers,
      body: hasBody ? "{}" : undefined,
      signal: controller.signal,
    });
    await res.body?.cancel();
    return res.status;
  } catch (error) {
    if ((error as Error).name === "AbortError") return 0;
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

describe("route × role matrix", () => {
  test("the document lists routes, including identity's own", () => {
    const paths = operations.map((o) => `${o.method} ${o.path}`);
    for (const route of ["POST /v1/keys", "GET /v1/keys/{id}", "POST /v1/auth/token", "GET /v1/audit/auth", "GET /.well-known/jwks.json"]) {
      expect(paths).toContain(route);
    }
  });

  test("every route declares a permission (one of the fourteen) or public", () => {
    const undeclared = operations.filter((o) => o.permission !== "public" && !(PERMISSIONS as readonly unknown[]).includes(o.permission));
    expect(undeclared.map((o) => `${o.method} ${o.path} → ${String(o.permission)}`)).toEqual([]);
  });

  test("every role is allowed exactly the routes its permissions cover", async () => {
    const mismatches: string[] = [];
    for (const op of operations) {
      if (op.permission === "public") {
        const status = await statusOf(op.method, op.path, {}, op.hasBody);
        if (status === 401 || status === 403) mismatches.push(`${op.method} ${op.path} public → ${status}`);
        continue;
      }
      const anonymous = await statusOf(op.method, op.path, {}, op.hasBody);
      if (anonymous !== 401) mismatches.push(`${op.method} ${op.path} anonymous → ${anonymous}, expected 401`);
      for (const role of ROLES) {
        const allowed = (ROLE_PERMISSIONS[role] as readonly unknown[]).includes(op.permission);
        const status = await statusOf(op.method, op.path, { "X-API-Key": t.keys[role] }, op.hasBody);
        const ok = allowed ? status !== 401 && status !== 403 : status === 403;
        if (!ok)
          mismatches.push(
            `${op.method} ${op.path} as ${role} (${String(op.permission)}) → ${status}, expected ${allowed ? "allowed" : "403"}`,
          );
      }
    }
    expect(mismatches).toEqual([]);
  }, 120_000);
});
