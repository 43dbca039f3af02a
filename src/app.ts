import { OpenAPIHono } from "@hono/zod-openapi";
import { Scalar } from "@scalar/hono-api-reference";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { authenticate, rateLimit } from "./auth/middleware";
import { authRoutes } from "./auth/routes";
import { createAuthRuntime } from "./auth/runtime";
import { consoleRoutes } from "./console/routes";
import { isDatabaseUnavailable, isStorageFull } from "./db/errors";
import { storageReserve } from "./db/storage-reserve";
import { decisionRoutes } from "./decisions/routes";
import type { AppDeps } from "./deps";
import { healthRoutes } from "./health/routes";
import { corsPolicy } from "./http/cors";
import type { AppEnv } from "./http/env";
import { ApiError, errorBody, errorResponse } from "./http/errors";
import { requestLogger, requestTimeout } from "./http/middleware";
import { asOneLayer } from "./http/one-layer";
import { aroundRequest } from "./http/request-hooks";
import { requestId } from "./http/request-id";
import { securityHeaders } from "./http/security-headers";
import { MCP_PATH, mcpRoutes } from "./mcp/routes";
import { integrationRoutes, notificationRoutes } from "./notify/routes";
import { httpMetrics } from "./observability/http-metrics";
import { metricsRoutes, metricsTokenAccess } from "./observability/metrics-routes";
import { traceContext } from "./observability/trace-context";
import { peopleRoutes } from "./people/routes";
import { policyRoutes } from "./policies/routes";
import { telemetryRoutes } from "./telemetry/routes";

/**
 * The whole HTTP surface as a plain Hono app. No I/O happens here: every backend arrives in `deps`,
 * so the same app serves on Bun, Deno and Node, and a test builds one in milliseconds.
 */
export function createApp(deps: AppDeps) {
  const app = new OpenAPIHono<AppEnv>();

  // What every request gets, as hooks of one middleware (see RequestHook); none of them throws.
  app.use(aroundRequest(requestId(), traceContext(), requestLogger(deps.logger), httpMetrics(deps.metrics), securityHeaders()));
  app.use(
    bodyLimit({
      maxSize: deps.config.BODY_LIMIT_BYTES,
      onError: (c) => c.json(errorBody("payload_too_large", `request body exceeds ${deps.config.BODY_LIMIT_BYTES} bytes`), 413),
    }),
  );
  app.use(requestTimeout(deps.config.REQUEST_TIMEOUT_MS));
  const cors = corsPolicy(deps.config.CORS_ALLOWED_ORIGINS);
  if (cors) for (const path of ["/v1/*", "/.well-known/*", "/health/*", "/openapi.json", MCP_PATH]) app.use(path, cors);
  // Identity: authenticate, then rate limit per key (or per address when anonymous).
  const auth = createAuthRuntime(deps);
  // One layer: neither has work after the request, so a refusal by either skips nothing (see asOneLayer).
  app.use("/v1/*", asOneLayer(authenticate(auth.guard), rateLimit(auth.guard)));
  app.use("/.well-known/*", rateLimit(auth.guard));
  const { freeBytes } = deps.database;
  if (freeBytes && deps.config.DATA_DIR_MIN_FREE_MB > 0) {
    const reserve = storageReserve({ freeBytes, minFreeBytes: deps.config.DATA_DIR_MIN_FREE_MB * 2 ** 20 });
    app.use(async (c, next) => {
      if (!READ_METHODS.has(c.req.method)) reserve.check();
      await next();
    });
  }
  // /metrics: a scraper holding METRICS_TOKEN, or an authenticated caller with metrics:read.
  app.use("/metrics", metricsTokenAccess(deps.config.METRICS_TOKEN, deps.metrics));
  app.use("/metrics", authenticate(auth.guard));
  app.route("/", authRoutes(auth));
  app.route("/", peopleRoutes(auth));
  app.route("/", notificationRoutes(auth));
  // Slack interactions and email action links: authenticated by their own signatures, not by keys.
  app.route("/", integrationRoutes(auth));

  app.route("/", healthRoutes(deps));
  app.route("/", decisionRoutes(deps, auth.signer));
  app.route("/", policyRoutes(deps));
  app.route("/", telemetryRoutes(deps));
  app.route("/", metricsRoutes(deps));
  // The Model Context Protocol endpoint for agents (JSON-RPC, not in the OpenAPI document).
  app.route("/", mcpRoutes(auth));
  // The operator console: server-rendered pages with their own session cookie (not in the OpenAPI document).
  app.route("/", consoleRoutes(deps, auth));

  app.openAPIRegistry.registerComponent("securitySchemes", "ApiKey", { type: "apiKey", in: "header", name: "X-API-Key" });
  app.openAPIRegistry.registerComponent("securitySchemes", "BearerAuth", {
    type: "http",
    scheme: "bearer",
    description: "An API key or a JWT service token from POST /v1/auth/token",
  });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Arbiter",
      version: deps.version,
      description: "Human-in-the-loop governance API: services and agents ask, human operators decide.",
      license: { name: "Apache-2.0", url: "https://www.apache.org/licenses/LICENSE-2.0" },
    },
    // Relative: the API is wherever this document was fetched from, whatever host or proxy serves it.
    servers: [{ url: "/", description: "The server that serves this document" }],
  });
  app.get("/docs", Scalar({ url: "/openapi.json", pageTitle: "Arbiter API" }));

  app.notFound((c) => methodNotAllowed(app, c) ?? c.json(errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`), 404));
  app.onError((error, c) => handleError(error, c as Context<AppEnv>, deps));
  // Buffered writes (the auth audit trail and usage counters) are flushed by the server after the HTTP drain, before
  // the database closes, so a clean shutdown loses no audit row.
  return Object.assign(app, { flush: () => Promise.all([auth.audit.flush(), auth.usage.flush()]).then(() => undefined) });
}

export type App = ReturnType<typeof createApp>;

/** Methods that write nothing the caller asked for: served while the embedded database's storage reserve is reached. */
const READ_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** Stable codes for the client errors Hono raises itself (body limit, content type). */
const CLIENT_ERROR_CODES: Partial<Record<number, string>> = { 413: "payload_too_large", 415: "unsupported_media_type" };

/** Freeing disk space takes an operator: a client should not retry every second meanwhile. */
const STORAGE_FULL_RETRY_AFTER_S = 30;

function handleError(error: Error, c: Context<AppEnv>, deps: AppDeps): Response {
  if (error instanceof ApiError) return errorResponse(c, error);
  if (error instanceof HTTPException) {
    // Hono raises these for malformed JSON bodies and similar client mistakes.
    const status = error.status;
    if (status < 500) {
      const code = CLIENT_ERROR_CODES[status] ?? (/json/i.test(error.message) ? "malformed_json" : "bad_request");
      return c.json(errorBody(code, error.message || "bad request"), status);
    }
  }
  const requestIdValue = c.get("requestId");
  if (isStorageFull(error)) {
    // An operator must free space: logged as an error, answered as a retryable outage of writes.
    (c.get("logger") ?? deps.logger).error("database storage full", { request_id: requestIdValue, error: (error as Error).message });
    return c.json(
      errorBody(
        "insufficient_storage",
        "the database has no storage left for this write; nothing stored was changed; retry after the number of seconds in Retry-After",
      ),
      503,
      { "Retry-After": String(STORAGE_FULL_RETRY_AFTER_S) },
    );
  }
  if (isDatabaseUnavailable(error)) {
    (c.get("logger") ?? deps.logger).warn("database unavailable", { request_id: requestIdValue, error: (error as Error).message });
    return c.json(
      errorBody(
        "database_unavailable",
        "the database is unavailable or did not answer in time; retry after the number of seconds in Retry-After",
      ),
      503,
      {
        "Retry-After": "1",
      },
    );
  }
  (c.get("logger") ?? deps.logger).error("unhandled error", { request_id: requestIdValue, error });
  return c.json(
    errorBody("internal_error", "an internal error occurred; quote the request id when reporting it", { request_id: requestIdValue }),
    500,
  );
}

/** 405 with an Allow header when the path exists under other methods; undefined when it does not. */
function methodNotAllowed(app: OpenAPIHono<AppEnv>, c: Context): Response | undefined {
  const allowed = new Set<string>();
  for (const route of app.routes) {
    if (route.method === "ALL" || route.method === c.req.method) continue;
    if (route.path.includes("*")) continue; // middleware mounts, not endpoints
    if (pathPattern(route.path).test(c.req.path)) allowed.add(route.method);
  }
  if (allowed.size === 0) return undefined;
  if (allowed.has("GET")) allowed.add("HEAD");
  const allow = [...allowed].sort().join(", ");
  return c.json(errorBody("method_not_allowed", `${c.req.method} is not allowed here; use ${allow}`), 405, { Allow: allow });
}

const patterns = new Map<string, RegExp>();
function pathPattern(path: string): RegExp {
  let pattern = patterns.get(path);
  if (!pattern) {
    const source = path
      .split("/")
      .map((segment) => (segment.startsWith(":") ? "[^/]+" : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
      .join("/");
    pattern = new RegExp(`^${source}/?$`);
    patterns.set(path, pattern);
  }
  return pattern;
}
