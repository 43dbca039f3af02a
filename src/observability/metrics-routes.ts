import { z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { secretsEqual } from "../crypto/hash";
import type { AppDeps } from "../deps";
import type { AppEnv } from "../http/env";
import { errorBody } from "../http/errors";
import { createRouter, defineRoute } from "../http/openapi";
import { type MetricsRegistry, PROMETHEUS_CONTENT_TYPE } from "./metrics";
import { observeDecisionQueue } from "./queue-metrics";

const HEADERS = { "Content-Type": PROMETHEUS_CONTENT_TYPE, "Cache-Control": "no-store" };

const exposition = defineRoute("metrics:read", {
  operationId: "getMetrics",
  method: "get",
  path: "/metrics",
  tags: ["observability"],
  summary: "Prometheus exposition of Arbiter's metrics (also open to a bearer METRICS_TOKEN)",
  responses: {
    200: { description: "Prometheus text format 0.0.4", content: { [PROMETHEUS_CONTENT_TYPE]: { schema: z.string() } } },
  },
});

/** GET /metrics, and the scrape-time gauges it reports that no request path updates. */
export function metricsRoutes(deps: Pick<AppDeps, "metrics" | "database" | "clock" | "meter">) {
  observeDecisionQueue({ db: deps.database.db, clock: deps.clock, meter: deps.meter });
  const registry = deps.metrics;
  return createRouter().openapi(exposition, async (c) => c.text(await registry.render(), 200, HEADERS));
}

function bearerToken(headers: Headers): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(headers.get("authorization") ?? "")?.[1];
}

/**
 * Lets a scraper holding `METRICS_TOKEN` read /metrics without an API key. It runs before
 * authentication: the token is not an API key and would be refused there. Any other credential
 * falls through to the usual authentication and the metrics:read permission.
 */
export function metricsTokenAccess(token: string | undefined, registry: MetricsRegistry): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const presented = bearerToken(c.req.raw.headers);
    if (!token || c.req.method !== "GET" || presented === undefined || !secretsEqual(presented, token)) return next();
    return c.body(await registry.render(), 200, HEADERS);
  };
}

/**
 * The METRICS_PORT listener: GET /metrics and nothing else. Meant for a private scrape network;
 * when METRICS_TOKEN is set it is required there too.
 */
export function metricsListener(registry: MetricsRegistry, token: string | undefined): (request: Request) => Promise<Response> {
  const json = (status: number, code: string, message: string, headers: Record<string, string> = {}) =>
    Response.json(errorBody(code, message), { status, headers });
  return async (request) => {
    if (new URL(request.url).pathname !== "/metrics") return json(404, "not_found", "only /metrics is served on this port");
    if (request.method !== "GET" && request.method !== "HEAD") return json(405, "method_not_allowed", "use GET", { Allow: "GET, HEAD" });
    if (token) {
      const presented = bearerToken(request.headers);
      if (presented === undefined || !secretsEqual(presented, token)) {
        return json(401, "unauthenticated", "send Authorization: Bearer <METRICS_TOKEN>", {
          "WWW-Authenticate": 'Bearer realm="arbiter-metrics"',
        });
      }
    }
    return new Response(request.method === "HEAD" ? null : await registry.render(), { status: 200, headers: HEADERS });
  };
}
