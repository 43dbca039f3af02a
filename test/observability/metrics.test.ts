import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createMetricsRegistry, PROMETHEUS_CONTENT_TYPE } from "../../src/observability/metrics";
import { metricsListener } from "../../src/observability/metrics-routes";
import { startTestApp, type TestApp } from "../helpers/app";
import { findPromtool, parseExposition, runPromtool, scrape, total } from "./exposition";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

const METRICS_TOKEN = "scrape-token-0123456789abcdef";
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ env: { METRICS_TOKEN } });
}, 30_000);
afterAll(() => t.close());

const event = (source: string) => ({ type: "probe", source, severity: "info", occurred_at: new Date().toISOString() });

describe("GET /metrics access", () => {
  test("needs metrics:read or the bearer METRICS_TOKEN", async () => {
    expect((await t.request("/metrics")).status).toBe(401);
    expect((await t.request("/metrics", { as: "service" })).status).toBe(403);
    for (const role of ["readonly", "operator", "admin"] as const) {
      const res = await t.request("/metrics", { as: role });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe(PROMETHEUS_CONTENT_TYPE);
    }
    const withToken = await fetch(`${t.url}/metrics`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(withToken.status).toBe(200);
    expect(await withToken.text()).toContain("arbiter_build_info");
    const wrongToken = await fetch(`${t.url}/metrics`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}x` } });
    expect(wrongToken.status).toBe(401);
    expect(await wrongToken.text()).not.toContain("arbiter_build_info");
  });

  test("the token opens /metrics only, nothing else", async () => {
    const res = await fetch(`${t.url}/v1/telemetry/events`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(res.status).toBe(401);
  });

  test("the separate METRICS_PORT listener serves /metrics only, behind the token when one is set", async () => {
    const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: metricsListener(t.deps.metrics, METRICS_TOKEN) });
    try {
      const base = server.url.toString().replace(/\/$/, "");
      expect((await fetch(`${base}/metrics`)).status).toBe(401);
      const ok = await fetch(`${base}/metrics`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } });
      expect(ok.status).toBe(200);
      expect(ok.headers.get("content-type")).toBe(PROMETHEUS_CONTENT_TYPE);
      expect(parseExposition(await ok.text()).some((s) => s.name === "process_uptime_seconds")).toBe(true);
      expect((await fetch(`${base}/v1/telemetry/events`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } })).status).toBe(404);
      expect((await fetch(`${base}/metrics`, { method: "POST" })).status).toBe(405);
    } finally {
      await server.stop(true);
    }
    const open = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: metricsListener(t.deps.metrics, undefined) });
    try {
      expect((await fetch(new URL("/metrics", open.url))).status).toBe(200);
    } finally {
      await open.stop(true);
    }
  });
});

describe("exposition", () => {
  test("values move when traffic flows", async () => {
    const route = { http_route: "/v1/telemetry/events", http_request_method: "POST", http_response_status_class: "2xx" };
    const { samples: before } = await scrape(t);
    for (let i = 0; i < 3; i++) {
      const res = await t.request("/v1/telemetry/events", {
        method: "POST",
        as: "service",
        json: { events: [event("moves"), event("moves")] },
      });
      expect(res.status).toBe(202);
    }
    const rejected = await t.request("/v1/telemetry/events", { method: "POST", as: "service", json: { events: [] } });
    expect(rejected.status).toBe(400);
    await t.request("/v1/telemetry/events", { headers: { "X-API-Key": "arb_not-a-real-key" } });
    const { samples: after } = await scrape(t);

    const delta = (name: string, where: Record<string, string> = {}) => total(after, name, where) - total(before, name, where);
    expect(delta("http_server_requests_total", route)).toBe(3);
    expect(delta("http_server_request_duration_seconds_count", route)).toBe(3);
    expect(delta("http_server_request_duration_seconds_sum", route)).toBeGreaterThan(0);
    expect(delta("http_server_request_duration_seconds_bucket", { ...route, le: "+Inf" })).toBe(3);
    expect(delta("http_server_requests_total", { ...route, http_response_status_class: "4xx" })).toBe(1);
    expect(delta("arbiter_telemetry_events_ingested_total")).toBe(6);
    expect(delta("arbiter_auth_failures_total")).toBe(1);
    expect(delta("db_client_operation_duration_seconds_count")).toBeGreaterThan(0);
    expect(total(after, "process_uptime_seconds")).toBeGreaterThan(0);
    expect(total(after, "process_memory_usage_bytes", { memory_type: "rss" })).toBeGreaterThan(0);
    expect(after.find((s) => s.name === "arbiter_build_info")?.labels.version).toBe(t.deps.version);
    // Nothing is in flight between requests except the scrape itself.
    expect(total(after, "http_server_active_requests")).toBe(1);
  });

  test("a unit is spelled out at the end of the name, before _total, and never twice", async () => {
    const registry = createMetricsRegistry({ version: "test" });
    try {
      registry.meter.createHistogram("job.duration", { unit: "s" }).record(2);
      registry.meter.createCounter("job.busy_time", { unit: "s" }).add(1);
      registry.meter.createHistogram("queue.wait_seconds", { unit: "s" }).record(1);
      registry.meter.createCounter("jobs.done").add(1);
      const text = await registry.render();
      const families = [...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]);
      expect(families).toEqual(
        expect.arrayContaining(["job_duration_seconds", "job_busy_time_seconds_total", "queue_wait_seconds", "jobs_done_total"]),
      );
      expect(text).toContain("# UNIT job_duration_seconds seconds");
      expect(text).toContain("job_duration_seconds_sum 2");
    } finally {
      await registry.shutdown();
    }
  });

  test("histogram buckets are in seconds and sized for an API", async () => {
    const { samples } = await scrape(t);
    const bounds = samples
      .filter((s) => s.name === "http_server_request_duration_seconds_bucket" && s.labels.http_route === "/v1/telemetry/events")
      .map((s) => s.labels.le);
    expect(bounds).toContain("0.005");
    expect(bounds).toContain("0.1");
    expect(bounds).toContain("10");
    expect(bounds).toContain("+Inf");
    expect(bounds).not.toContain("1000"); // the SDK's millisecond-sized default
  });

  test("route labels are templates, never raw paths", async () => {
    await t.request("/v1/telemetry/events?source=secret-source-42", { as: "operator" });
    await t.request("/v1/telemetry/snapshots/latest?source=probe-9f3a", { as: "operator" });
    await t.request("/no/such/path/7d41c0de", { as: "operator" });
    await t.request("/v1/no-such-area/7d41c0de", { as: "operator" });
    const { text, samples } = await scrape(t);
    expect(text).not.toContain("7d41c0de");
    expect(text).not.toContain("secret-source-42");
    expect(text).not.toContain("probe-9f3a");
    const templates = new Set(t.app.routes.map((r) => r.path));
    const routeLabels = new Set(samples.flatMap((s) => (s.labels.http_route === undefined ? [] : [s.labels.http_route])));
    expect(routeLabels.size).toBeGreaterThan(0);
    for (const label of routeLabels) expect(templates.has(label)).toBe(true);
    // Unmatched requests are still counted, without a route label.
    expect(total(samples, "http_server_requests_total", { http_response_status_class: "4xx" })).toBeGreaterThan(0);
  });

  const promtool = findPromtool();
  test.skipIf(!promtool)("passes promtool check metrics", async () => {
    await t.request("/v1/telemetry/events", { method: "POST", as: "service", json: { events: [event("promtool")] } });
    await t.request("/v1/telemetry/snapshots", { method: "POST", as: "service", json: { source: "promtool", metrics: { a: 1 } } });
    await t.request("/v1/telemetry/snapshots/latest?source=promtool", { as: "operator" });
    const { text } = await scrape(t);
    const result = runPromtool(promtool!, ["check", "metrics"], text);
    expect(result.output).toBe("");
    expect(result.status).toBe(0);
  });
});

describe("W3C trace context", () => {
  test("a caller's traceparent is continued: same trace id, new span, trace id in the log line", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const res = await t.request("/health/live", { headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01`, tracestate: "vendor=1" } });
    const answered = res.headers.get("traceparent")!;
    expect(answered).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    expect(answered).not.toContain("00f067aa0ba902b7");
    const line = t.logs.find((l) => l.msg === "request" && l.trace_id === traceId);
    expect(line).toBeDefined();
    expect(line?.route).toBe("/health/live");
  });

  test.each([
    ["absent", undefined],
    ["malformed", "not-a-traceparent"],
    ["all-zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"],
    ["version ff", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
  ])("%s traceparent starts a new trace", async (_, header) => {
    const res = await t.request("/health/live", header ? { headers: { traceparent: header } } : {});
    const answered = res.headers.get("traceparent");
    expect(answered).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(answered).not.toContain("4bf92f3577b34da6a3ce929d0e0e4736");
    const traceId = answered!.split("-")[1];
    expect(t.logs.some((l) => l.msg === "request" && l.trace_id === traceId)).toBe(true);
  });

  test("an unsampled caller stays unsampled", async () => {
    const res = await t.request("/health/live", { headers: { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00" } });
    expect(res.headers.get("traceparent")).toMatch(/-00$/);
  });
});
