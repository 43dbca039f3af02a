import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Role } from "../../src/db/schema";
import { startTestApp, type TestApp } from "../helpers/app";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * The document is an exact contract: a realistic session, sent through Prism proxying to the real
 * app, gets no response Prism finds at odds with the document (a status the operation does not
 * declare, a body off its schema). Prism validates responses only: the session sends invalid
 * requests on purpose, and what matters is that the server's answer to them is documented.
 */
const BODY_LIMIT = 8 * 1024;
const READONLY_LIMIT = 3;

let t: TestApp;
let dir: string;
let prism: ReturnType<typeof Bun.spawn>;
let proxy: string;
const violations: string[] = [];

beforeAll(async () => {
  t = await startTestApp({ env: { BODY_LIMIT_BYTES: String(BODY_LIMIT), RATE_LIMIT_READONLY: String(READONLY_LIMIT) } });
  dir = await mkdtemp(join(tmpdir(), "arbiter-prism-"));
  const document = join(dir, "openapi.json");
  await Bun.write(document, await (await t.request("/openapi.json")).text());
  // Prism takes a port number, not 0: borrow a free one from the OS.
  const probe = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const port = probe.port;
  await probe.stop(true);
  const cli = Bun.resolveSync("@stoplight/prism-cli/dist/index.js", import.meta.dir);
  prism = Bun.spawn(
    [
      process.execPath,
      "--bun",
      cli,
      "proxy",
      document,
      t.url,
      "--errors",
      "--validate-request=false",
      "-h",
      "127.0.0.1",
      "-p",
      String(port),
    ],
    { stdout: "pipe", stderr: "inherit" },
  );
  proxy = `http://127.0.0.1:${port}`;
  await listening(prism.stdout as ReadableStream<Uint8Array>);
}, 60_000);

afterAll(async () => {
  prism?.kill();
  await prism?.exited;
  await t.close();
  await rm(dir, { recursive: true, force: true });
});

/** Resolves once Prism says it listens; keeps draining its log so it never blocks on a full pipe. */
async function listening(stdout: ReadableStream<Uint8Array>): Promise<void> {
  const reader = stdout.getReader();
  const decoder = new TextDecoder();
  let log = "";
  while (!log.includes("Prism is listening")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`prism exited before listening:\n${log}`);
    log += decoder.decode(value, { stream: true });
  }
  void (async () => {
    while (!(await reader.read()).done) {}
  })();
}

interface Call {
  as?: Role | string;
  json?: unknown;
  body?: BodyInit;
  headers?: Record<string, string>;
  /** the problem Prism answers itself without forwarding: no operation for the request, no credentials */
  prismAnswers?: "NO_PATH_MATCHED_ERROR" | "NO_METHOD_MATCHED_ERROR" | "UNAUTHORIZED";
}

/** One request through Prism: records any violation it reports, returns the response and its JSON. */
async function call(method: string, path: string, status: number, options: Call = {}) {
  const headers = new Headers(options.headers);
  if (options.as) headers.set("X-API-Key", t.keys[options.as as Role] ?? options.as);
  let body = options.body;
  if (options.json !== undefined) {
    headers.set("Content-Type", "application/json");
    body = JSON.stringify(options.json);
  }
  const res = await fetch(proxy + path, { method, headers, body, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  const label = `${method} ${path} → ${res.status}`;
  const reported = res.headers.get("sl-violations");
  if (reported) violations.push(`${label}: ${reported}`);
  if (res.headers.get("content-type")?.startsWith("application/problem+json")) {
    const problem = JSON.parse(text) as { type?: string; detail?: string };
    const kind = problem.type?.split("#")[1] ?? "";
    if (kind !== options.prismAnswers) violations.push(`${label}: ${kind} ${problem.detail ?? text}`);
  }
  expect(`${label}`).toBe(`${method} ${path} → ${status}`);
  return { res, data: text && res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : undefined };
}

const decision = (title: string) => ({ kind: "deploy", title, payload: { service: "api", title } });

test("a realistic session through Prism draws no violation", async () => {
  // Public endpoints and the document itself.
  await call("GET", "/health/live", 200);
  await call("GET", "/health/ready", 200);
  await call("GET", "/.well-known/jwks.json", 200);

  // Authentication and permission failures.
  await call("GET", "/v1/decisions", 401, { prismAnswers: "UNAUTHORIZED" });
  await call("GET", "/v1/decisions", 401, { as: "arb_not_a_real_key" });
  await call("POST", "/v1/decisions", 403, { as: "readonly", json: decision("not mine to ask") });
  await call("GET", "/v1/keys", 403, { as: "service" });

  // Keys: create, read, rotate, revoke, and the mistakes around them.
  const key = await call("POST", "/v1/keys", 201, { as: "admin", json: { name: "session-service", role: "service" } });
  await call("POST", "/v1/keys", 400, { as: "admin", json: { name: "", role: "emperor" } });
  await call("GET", "/v1/keys?limit=5", 200, { as: "admin" });
  await call("GET", "/v1/keys?limit=abc", 400, { as: "admin" });
  await call("GET", `/v1/keys/${key.data.id}`, 200, { as: "admin" });
  await call("GET", `/v1/keys/${crypto.randomUUID()}`, 404, { as: "admin" });
  const rotated = await call("POST", `/v1/keys/${key.data.id}/rotate`, 201, { as: "admin", json: {} });
  const spare = await call("POST", "/v1/keys", 201, { as: "admin", json: { name: "session-spare", role: "readonly" } });
  await call("POST", `/v1/keys/${spare.data.id}/revoke`, 200, { as: "admin" });
  await call("POST", `/v1/keys/${spare.data.id}/revoke`, 409, { as: "admin" });
  const service = rotated.data.key as string;

  // Service tokens.
  const token = await call("POST", "/v1/auth/token", 200, { as: service, json: { ttl_seconds: 60 } });
  await call("POST", "/v1/auth/token", 400, { as: service, json: { ttl_seconds: -1 } });
  await call("GET", "/v1/decisions?limit=1", 200, { headers: { Authorization: `Bearer ${token.data.access_token}` } });
  await call("POST", "/v1/auth/revoke", 200, { headers: { Authorization: `Bearer ${token.data.access_token}` }, json: {} });
  await call("GET", "/v1/decisions?limit=1", 401, { headers: { Authorization: `Bearer ${token.data.access_token}` } });

  // Decisions: create (and retry), malformed requests, reads, lists with bad filters.
  const idempotency = { "Idempotency-Key": `session-${crypto.randomUUID()}` };
  const first = await call("POST", "/v1/decisions", 201, { as: service, json: decision("ship 1.2"), headers: idempotency });
  await call("POST", "/v1/decisions", 200, { as: service, json: decision("ship 1.2"), headers: idempotency });
  await call("POST", "/v1/decisions", 422, { as: service, json: decision("ship 1.3"), headers: idempotency });
  await call("POST", "/v1/decisions", 400, { as: service, json: { kind: "Not A Kind", title: "" } });
  // (No malformed JSON: Prism drops the connection on a body it cannot parse instead of forwarding it.)
  await call("POST", "/v1/decisions", 415, {
    as: service,
    body: JSON.stringify(decision("as text")),
    headers: { "Content-Type": "text/plain" },
  });
  await call("POST", "/v1/decisions", 413, { as: service, json: decision("x".repeat(BODY_LIMIT)) });
  const id = first.data.id as string;
  await call("GET", `/v1/decisions/${id}`, 200, { as: service });
  await call("GET", `/v1/decisions/${id}?wait=0`, 200, { as: service });
  await call("GET", `/v1/decisions/${crypto.randomUUID()}`, 404, { as: service });
  await call("GET", "/v1/decisions/not-a-uuid", 400, { as: service });
  await call("GET", "/v1/decisions?status=approved&priority=high&limit=10", 200, { as: "operator" });
  await call("GET", "/v1/decisions?status=bogus", 400, { as: "operator" });
  await call("GET", "/v1/decisions?cursor=garbage", 400, { as: "operator" });
  await call("GET", "/v1/decisions?limit=100000", 400, { as: "operator" });
  await call("GET", "/v1/decisions/pending?limit=10", 200, { as: "operator" });
  await call("GET", "/v1/decisions/pending?priority=urgent", 400, { as: "operator" });
  // Only the stream's refusal: Prism holds a proxied response until it ends, and an event stream never does.
  await call("GET", "/v1/decisions/stream?last_event_id=nonsense", 400, { as: "operator" });

  // The lifecycle: approve and consume; reject, escalate, cancel others; conflicts after the fact.
  await call("POST", `/v1/decisions/${id}/approve`, 200, { as: "operator", json: { reason: "window open" } });
  await call("POST", `/v1/decisions/${id}/approve`, 409, { as: "operator", json: {} });
  await call("POST", `/v1/decisions/${id}/consume`, 200, { as: service });
  await call("POST", `/v1/decisions/${id}/consume`, 409, { as: service });
  const second = await call("POST", "/v1/decisions", 201, { as: service, json: decision("drop table") });
  await call("POST", `/v1/decisions/${second.data.id}/reject`, 400, { as: "operator", json: {} });
  await call("POST", `/v1/decisions/${second.data.id}/reject`, 200, { as: "operator", json: { reason: "no" } });
  await call("POST", `/v1/decisions/${second.data.id}/consume`, 409, { as: service });
  const third = await call("POST", "/v1/decisions", 201, { as: service, json: decision("raise limits") });
  await call("POST", `/v1/decisions/${third.data.id}/escalate`, 200, { as: "operator", json: { reason: "needs an admin" } });
  await call("POST", `/v1/decisions/${third.data.id}/cancel`, 200, { as: service, json: { reason: "not needed" } });
  await call("POST", `/v1/decisions/${third.data.id}/cancel`, 409, { as: service, json: {} });
  await call("POST", `/v1/decisions/${crypto.randomUUID()}/approve`, 404, { as: "operator", json: {} });

  // Telemetry.
  const event = {
    id: `evt-${crypto.randomUUID()}`,
    type: "deploy.finished",
    source: "ci",
    severity: "info",
    occurred_at: new Date().toISOString(),
  };
  await call("POST", "/v1/telemetry/events", 202, { as: service, json: { events: [event] } });
  await call("POST", "/v1/telemetry/events", 202, { as: service, json: { events: [event] } });
  await call("POST", "/v1/telemetry/events", 400, { as: service, json: { events: [] } });
  await call("GET", "/v1/telemetry/events?source=ci&severity=info", 200, { as: "operator" });
  await call("GET", "/v1/telemetry/events?severity=apocalyptic", 400, { as: "operator" });
  await call("POST", "/v1/telemetry/snapshots", 201, { as: service, json: { source: "worker-1", metrics: { queue_depth: 3 } } });
  await call("POST", "/v1/telemetry/snapshots", 400, { as: service, json: { source: "worker-1", metrics: {} } });
  await call("GET", "/v1/telemetry/snapshots/latest?source=worker-1", 200, { as: "operator" });
  await call("GET", "/v1/telemetry/snapshots/latest?source=nobody", 404, { as: "operator" });
  const from = new Date(Date.now() - 3_600_000).toISOString();
  const to = new Date(Date.now() + 60_000).toISOString();
  await call("GET", `/v1/telemetry/snapshots?source=worker-1&metric=queue_depth&from=${from}&to=${to}&bucket=5m`, 200, { as: "operator" });
  await call("GET", `/v1/telemetry/snapshots?source=worker-1&metric=queue_depth&from=${from}&to=${to}&bucket=fortnight`, 400, {
    as: "operator",
  });

  // Audit, usage, metrics.
  await call("GET", "/v1/audit/auth?limit=5", 200, { as: "admin" });
  await call("GET", `/v1/audit/auth/usage?key_id=${t.keyIds.service}`, 200, { as: "admin" });
  await call("GET", "/v1/audit/auth/usage?key_id=nope", 400, { as: "admin" });
  await call("GET", "/metrics", 200, { as: "admin" });

  // Requests the document has no operation for: Prism answers them itself, and says so.
  await call("GET", "/v1/no-such-thing", 404, { as: "admin", prismAnswers: "NO_PATH_MATCHED_ERROR" });
  await call("DELETE", "/v1/decisions", 405, { as: "admin", prismAnswers: "NO_METHOD_MATCHED_ERROR" });

  // Rate limiting: a fresh readonly key's small budget runs out.
  const reader = await call("POST", "/v1/keys", 201, { as: "admin", json: { name: "session-reader", role: "readonly" } });
  for (let i = 0; i < READONLY_LIMIT; i++) await call("GET", "/v1/decisions?limit=1", 200, { as: reader.data.key });
  await call("GET", "/v1/decisions?limit=1", 429, { as: reader.data.key });

  expect(violations).toEqual([]);
});
