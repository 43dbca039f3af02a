import { z } from "@hono/zod-openapi";
import type { AppDeps } from "../deps";
import { createRouter, defineRoute } from "../http/openapi";
import { type HealthReport, overallStatus, timedCheck } from "./checks";

const HEALTH_JSON = "application/health+json";
const HEADERS = { "Content-Type": HEALTH_JSON, "Cache-Control": "no-store" };

const CheckSchema = z.object({
  componentType: z.literal("datastore"),
  observedValue: z.number(),
  observedUnit: z.literal("ms"),
  status: z.enum(["pass", "warn", "fail"]),
  time: z.string(),
  output: z.string().optional(),
});
const HealthSchema = z
  .object({
    status: z.enum(["pass", "warn", "fail"]),
    version: z.string(),
    releaseId: z.string(),
    serviceId: z.string(),
    description: z.string(),
    checks: z.record(z.string(), z.array(CheckSchema)),
  })
  .openapi("Health");
const LiveSchema = z.object({ status: z.literal("pass") }).openapi("Liveness");

const live = defineRoute("public", {
  operationId: "getLiveness",
  method: "get",
  path: "/health/live",
  tags: ["health"],
  summary: "Liveness: 200 while the process serves",
  responses: { 200: { description: "Serving", content: { [HEALTH_JSON]: { schema: LiveSchema } } } },
});

const ready = defineRoute("public", {
  operationId: "getReadiness",
  method: "get",
  path: "/health/ready",
  tags: ["health"],
  summary: "Readiness: database (required) and cache (degrades to warn)",
  responses: {
    200: { description: "pass or warn", content: { [HEALTH_JSON]: { schema: HealthSchema } } },
    503: { description: "fail: the database is unreachable", content: { [HEALTH_JSON]: { schema: HealthSchema } } },
  },
});

export function healthRoutes(deps: Pick<AppDeps, "database" | "cache" | "config" | "clock" | "version">) {
  const now = () => deps.clock.now();
  const timeoutMs = deps.config.HEALTH_CHECK_TIMEOUT_MS;
  return createRouter()
    .openapi(live, (c) => c.json({ status: "pass" as const }, 200, HEADERS))
    .openapi(ready, async (c) => {
      const [database, cache] = await Promise.all([
        timedCheck(() => deps.database.ping(), { timeoutMs, failStatus: "fail", now }),
        timedCheck(() => deps.cache.ping(), { timeoutMs, failStatus: "warn", now }),
      ]);
      const status = overallStatus([database.status, cache.status]);
      const report: HealthReport = {
        status,
        version: deps.version.split(".")[0] ?? deps.version,
        releaseId: deps.config.RELEASE_ID ?? deps.version,
        serviceId: "arbiter",
        description: `Arbiter (${deps.database.kind} database, ${deps.cache.kind} cache)`,
        checks: { "database:responseTime": [database], "cache:responseTime": [cache] },
      };
      // c.json keeps a Content-Type already given, so the health media type survives.
      return status === "fail" ? c.json(report, 503, HEADERS) : c.json(report, 200, HEADERS);
    });
}
