import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { loadConfig } from "../../src/config";
import { startTestApp, type TestApp } from "../helpers/app";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/** Cross-origin browser access: closed by default, exact origins when configured, never credentials. */
const ALLOWED = "https://ops.example";
const OTHER = "https://evil.example";

const preflight = (app: TestApp, origin: string, path = "/v1/decisions") =>
  fetch(app.url + path, {
    method: "OPTIONS",
    headers: {
      Origin: origin,
      "Access-Control-Request-Method": "POST",
      "Access-Control-Request-Headers": "x-api-key, content-type, idempotency-key",
    },
  });

describe("closed by default", () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(() => app.close());

  test("no CORS header on an answer to another origin, even an authorised one", async () => {
    const res = await app.request("/v1/decisions", { as: "admin", headers: { Origin: OTHER } });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    expect(res.headers.get("access-control-allow-credentials")).toBeNull();
  });

  test("a preflight is not granted", async () => {
    const res = await preflight(app, OTHER);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    expect(res.headers.get("access-control-allow-methods")).toBeNull();
  });
});

describe("with CORS_ALLOWED_ORIGINS", () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ env: { CORS_ALLOWED_ORIGINS: `${ALLOWED}, http://localhost:5173` } });
  });
  afterAll(() => app.close());

  test("a preflight from an allowed origin is answered before authentication, with what the API needs", async () => {
    const res = await preflight(app, ALLOWED);
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(ALLOWED);
    expect(res.headers.get("access-control-allow-methods")).toContain("POST");
    const allowedHeaders = (res.headers.get("access-control-allow-headers") ?? "").toLowerCase();
    for (const header of ["x-api-key", "authorization", "content-type", "idempotency-key"]) expect(allowedHeaders).toContain(header);
    expect(res.headers.get("access-control-allow-credentials")).toBeNull();
    expect(res.headers.get("vary")?.toLowerCase()).toContain("origin");
  });

  test("an allowed origin reads the answer and the headers a client needs; credentials still required", async () => {
    const res = await app.request("/v1/decisions", { as: "operator", headers: { Origin: ALLOWED } });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe(ALLOWED);
    expect((res.headers.get("access-control-expose-headers") ?? "").toLowerCase()).toContain("x-request-id");

    const anonymous = await fetch(`${app.url}/v1/decisions`, { headers: { Origin: ALLOWED } });
    expect(anonymous.status).toBe(401);
  });

  test("another origin gets nothing, on the preflight or the answer", async () => {
    expect((await preflight(app, OTHER)).headers.get("access-control-allow-origin")).toBeNull();
    const res = await app.request("/v1/decisions", { as: "admin", headers: { Origin: OTHER } });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    // A prefix or suffix of an allowed origin is another origin.
    const lookalike = await app.request("/v1/decisions", { as: "admin", headers: { Origin: `${ALLOWED}.evil.example` } });
    expect(lookalike.headers.get("access-control-allow-origin")).toBeNull();
  });

  test("the console stays same-origin", async () => {
    const res = await fetch(`${app.url}/console/login`, { headers: { Origin: ALLOWED } });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("configuration", () => {
  test("exact origins, or * alone", () => {
    expect(loadConfig({}).CORS_ALLOWED_ORIGINS).toEqual([]);
    expect(loadConfig({ CORS_ALLOWED_ORIGINS: "https://a.example, http://localhost:8080" }).CORS_ALLOWED_ORIGINS).toEqual([
      "https://a.example",
      "http://localhost:8080",
    ]);
    expect(loadConfig({ CORS_ALLOWED_ORIGINS: "*" }).CORS_ALLOWED_ORIGINS).toEqual(["*"]);
  });

  for (const bad of [
    "https://a.example/",
    "https://*.example",
    "a.example",
    "ftp://a.example",
    "https://a.example/path",
    "*, https://a.example",
  ]) {
    test(`refuses ${JSON.stringify(bad)}`, () => {
      expect(() => loadConfig({ CORS_ALLOWED_ORIGINS: bad })).toThrow(/CORS_ALLOWED_ORIGINS/);
    });
  }
});
