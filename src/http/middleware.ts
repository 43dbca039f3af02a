import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import type { Logger } from "../observability/logger";
import type { AppEnv } from "./env";

/**
 * One JSON line per request, with its trace id, the route *template* (never the raw path, which may carry ids)
 * and the caller's key id when known. Headers and bodies are never logged.
 */
export function requestLogger(logger: Logger, now: () => number = () => performance.now()): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = now();
    const log = logger.child({ request_id: c.get("requestId"), trace_id: c.get("trace")?.traceId });
    c.set("logger", log);
    await next();
    const status = c.res.status;
    const fields = {
      method: c.req.method,
      route: matchedRoute(c),
      status,
      duration_ms: Math.round((now() - started) * 100) / 100,
      key_id: c.get("principal")?.keyId,
    };
    if (status >= 500) log.error("request", fields);
    else log.info("request", fields);
  };
}

/** The route template that answered, or undefined when no endpoint matched (404/405). */
export function matchedRoute(c: Parameters<typeof routePath>[0]): string | undefined {
  const path = routePath(c, -1);
  return path.includes("*") ? undefined : path;
}
