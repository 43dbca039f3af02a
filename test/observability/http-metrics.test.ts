import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { Hono } from "hono";
import type { AppEnv } from "../../src/http/env";
import { aroundRequest } from "../../src/http/request-hooks";
import { httpMetrics } from "../../src/observability/http-metrics";
import { createMetricsRegistry } from "../../src/observability/metrics";
import { parseExposition, total } from "./exposition";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

describe("HTTP metrics middleware", () => {
  test("counts 5xx answers as errors, by route template, and odd methods as _OTHER", async () => {
    const registry = createMetricsRegistry({ version: "test" });
    const app = new Hono<AppEnv>();
    app.use(aroundRequest(httpMetrics(registry)));
    app.get("/boom/:id", () => {
      throw new Error("handler failed");
    });
    app.get("/ok/:id", (c) => c.text("ok"));
    app.on("PURGE", "/ok/:id", (c) => c.text("purged"));
    app.onError((_, c) => c.text("internal", 500));

    expect((await app.request("/boom/123")).status).toBe(500);
    expect((await app.request("/boom/456")).status).toBe(500);
    expect((await app.request("/ok/789")).status).toBe(200);
    expect((await app.request("/ok/789", { method: "PURGE" })).status).toBe(200);
    const samples = parseExposition(await registry.render());

    expect(total(samples, "http_server_errors_total", { http_route: "/boom/:id", http_response_status_class: "5xx" })).toBe(2);
    expect(total(samples, "http_server_errors_total", { http_route: "/ok/:id" })).toBe(0);
    expect(total(samples, "http_server_requests_total", { http_route: "/ok/:id", http_request_method: "GET" })).toBe(1);
    expect(total(samples, "http_server_requests_total", { http_route: "/ok/:id", http_request_method: "_OTHER" })).toBe(1);
    expect(samples.some((s) => Object.values(s.labels).some((v) => v.includes("123") || v === "PURGE"))).toBe(false);
    expect(total(samples, "http_server_active_requests")).toBe(0);
    await registry.shutdown();
  });

  test("two registries in one process keep separate figures", async () => {
    const a = createMetricsRegistry({ version: "a" });
    const b = createMetricsRegistry({ version: "b" });
    a.meter.createCounter("probe.count").add(5);
    b.meter.createCounter("probe.count").add(1);
    expect(total(parseExposition(await a.render()), "probe_count_total")).toBe(5);
    expect(total(parseExposition(await b.render()), "probe_count_total")).toBe(1);
  });
});
