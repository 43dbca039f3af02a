import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { type Context, Hono, type MiddlewareHandler } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { authenticate, rateLimit } from "../auth/middleware";
import type { AuthRuntime } from "../auth/runtime";
import { isDatabaseUnavailable } from "../db/errors";
import type { AppEnv } from "../http/env";
import { ApiError } from "../http/errors";
import { mcpServerFor } from "./tools";

/**
 * The Model Context Protocol endpoint: Streamable HTTP, stateless (each POST carries its own
 * JSON-RPC messages and its own credentials, so any replica answers any request and nothing is kept
 * between requests), answered as JSON. It is built on the official SDK's Web-standard transport
 * (WebStandardStreamableHTTPServerTransport), which runs on every runtime Arbiter does.
 *
 * Callers authenticate as on the REST API (API key or service token) and are rate limited the same
 * way; the tools they see follow their key's permissions. Every error, including authentication
 * and Origin refusals, is a JSON-RPC error object with a 4xx status (5xx only for a real fault).
 */
export const MCP_PATH = "/mcp";

/** JSON-RPC's "server error" range: the transport-level refusals (auth, origin, method, rate limit). */
const TRANSPORT_ERROR = -32000;

const jsonRpcError = (c: Context, status: ContentfulStatusCode, code: string, message: string, details?: unknown) =>
  c.json(
    { jsonrpc: "2.0", error: { code: TRANSPORT_ERROR, message, data: details === undefined ? { code } : { code, details } }, id: null },
    status,
  );

/**
 * The MCP transport rules: a server MUST validate Origin, against DNS rebinding (a page on another
 * site, its name re-pointed at this server, posting to it from the user's browser). Non-browser
 * clients send no Origin and pass; a browser's is accepted only when it is one of
 * CORS_ALLOWED_ORIGINS. The Host header is not trusted for this: under DNS rebinding it is the
 * attacker's name, so "same origin as Host" would let exactly that attack through.
 */
function originGuard(allowedOrigins: readonly string[]): MiddlewareHandler<AppEnv> {
  const anyOrigin = allowedOrigins.includes("*");
  const allowed = new Set(allowedOrigins);
  return async (c, next) => {
    const origin = c.req.header("origin");
    if (origin !== undefined && !anyOrigin && !allowed.has(origin)) {
      return jsonRpcError(c, 403, "origin_not_allowed", "requests from this Origin are not accepted; see CORS_ALLOWED_ORIGINS");
    }
    await next();
  };
}

export function mcpRoutes(auth: AuthRuntime) {
  const { deps } = auth;
  const router = new Hono<AppEnv>();
  router.use(MCP_PATH, originGuard(deps.config.CORS_ALLOWED_ORIGINS), authenticate(auth.guard), rateLimit(auth.guard));

  router.post(MCP_PATH, async (c) => {
    const principal = c.get("principal");
    if (!principal) {
      c.header("WWW-Authenticate", 'Bearer realm="arbiter"');
      return jsonRpcError(c, 401, "unauthenticated", "send an API key (X-API-Key or Authorization: Bearer) or a service token");
    }
    const server = mcpServerFor(deps, auth.signer, principal, { version: deps.version, requestSignal: c.req.raw.signal });
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    await server.connect(transport);
    try {
      // JSON responses: the Response is complete once this resolves, so the server can close after it.
      return await transport.handleRequest(c.req.raw);
    } finally {
      await server.close();
    }
  });
  // Stateless: there is no server-initiated stream to GET and no session to DELETE.
  router.all(MCP_PATH, (c) => {
    c.header("Allow", "POST");
    return jsonRpcError(c, 405, "method_not_allowed", `${c.req.method} is not allowed here; MCP messages are POSTed`);
  });

  router.onError((error, c) => {
    if (error instanceof ApiError) {
      for (const [name, value] of Object.entries(error.headers ?? {})) c.header(name, value);
      return jsonRpcError(c, error.status, error.code, error.message, error.details);
    }
    if (isDatabaseUnavailable(error)) {
      c.header("Retry-After", "1");
      return jsonRpcError(c, 503, "database_unavailable", "the database is unavailable; retry after the number of seconds in Retry-After");
    }
    (c.get("logger") ?? deps.logger).error("unhandled error", { request_id: c.get("requestId"), error });
    return jsonRpcError(c, 500, "internal_error", "an internal error occurred; quote the request id when reporting it", {
      request_id: c.get("requestId"),
    });
  });
  return router;
}
