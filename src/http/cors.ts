import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";

/** What a browser client of the API sends besides simple headers. */
const REQUEST_HEADERS = [
  "Authorization",
  "X-API-Key",
  "Content-Type",
  "Idempotency-Key",
  "Last-Event-ID",
  "X-Request-Id",
  "traceparent",
  "tracestate",
  "Mcp-Protocol-Version",
];
/** What it may read of a response besides the CORS-safelisted headers. */
const EXPOSED_HEADERS = [
  "X-Request-Id",
  "Retry-After",
  "RateLimit-Limit",
  "RateLimit-Remaining",
  "RateLimit-Reset",
  "Idempotent-Replayed",
  "Location",
  "X-Cache",
  "traceparent",
];

/**
 * Cross-origin access for browser clients, closed unless origins are configured: with none, no
 * CORS header is ever sent, so browsers keep other sites' pages from reading any answer. Credentials
 * are headers a page must hold itself (never cookies: the console's cookie stays same-origin), so
 * `Access-Control-Allow-Credentials` is never sent. Preflights are answered here, before
 * authentication, since a browser sends them without credentials.
 */
export function corsPolicy(allowedOrigins: readonly string[]): MiddlewareHandler | undefined {
  if (allowedOrigins.length === 0) return undefined;
  const anyOrigin = allowedOrigins.includes("*");
  const allowed = new Set(allowedOrigins);
  return cors({
    origin: anyOrigin ? "*" : (origin) => (allowed.has(origin) ? origin : null),
    allowMethods: ["GET", "POST", "OPTIONS"],
    allowHeaders: REQUEST_HEADERS,
    exposeHeaders: EXPOSED_HEADERS,
    maxAge: 600,
  });
}
