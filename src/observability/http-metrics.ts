import type { Meter } from "@opentelemetry/api";
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../http/env";
import { matchedRoute } from "../http/middleware";
import { HTTP_DURATION_BUCKETS } from "./metrics";

// Any other method is reported as _OTHER (OpenTelemetry HTTP semantic conventions), bounding cardinality.
const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"]);

/**
 * HTTP server metrics under the OpenTelemetry semantic-convention names. Labels are the method, the
 * route *template* (absent when no route matched, so a scan of random paths cannot blow up
 * cardinality or leak ids) and the status class.
 */
export function httpMetrics(meter: Meter, now: () => number = () => performance.now()): MiddlewareHandler<AppEnv> {
  const duration = meter.createHistogram("http.server.request.duration", {
    description: "Duration of HTTP server requests",
    unit: "s",
    advice: { explicitBucketBoundaries: HTTP_DURATION_BUCKETS },
  });
  const active = meter.createUpDownCounter("http.server.active_requests", { description: "HTTP server requests in flight" });
  const requests = meter.createCounter("http.server.requests", { description: "HTTP server requests answered" });
  const errors = meter.createCounter("http.server.errors", { description: "HTTP server requests answered with a 5xx status" });

  return async (c, next) => {
    const method = KNOWN_METHODS.has(c.req.method) ? c.req.method : "_OTHER";
    const started = now();
    active.add(1, { "http.request.method": method });
    try {
      await next();
    } finally {
      active.add(-1, { "http.request.method": method });
      // A handler that threw past every error handler is answered 500 by the server.
      const status = c.finalized ? c.res.status : 500;
      const route = matchedRoute(c);
      const attributes: Record<string, string> = {
        "http.request.method": method,
        "http.response.status_class": `${Math.floor(status / 100)}xx`,
      };
      if (route) attributes["http.route"] = route;
      duration.record((now() - started) / 1000, attributes);
      requests.add(1, attributes);
      if (status >= 500) errors.add(1, attributes);
    }
  };
}
