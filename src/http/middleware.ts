import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import type { Logger } from "../observability/logger";
import type { AppEnv } from "./env";
import { ApiError } from "./errors";
import type { RequestHook } from "./request-hooks";

/**
 * One JSON line per request, with its trace id, the route *template* (never the raw path, which may carry ids)
 * and the caller's key id when known. Headers and bodies are never logged. A request that failed past
 * every error handler is logged as the 500 the server answers.
 */
export function requestLogger(logger: Logger, now: () => number = () => performance.now()): RequestHook<{ started: number; log: Logger }> {
  return {
    before(c) {
      const log = logger.child({ request_id: c.get("requestId"), trace_id: c.get("trace")?.traceId });
      c.set("logger", log);
      return { started: now(), log };
    },
    after(c, { started, log }) {
      const status = c.finalized ? c.res.status : 500;
      const level = status >= 500 ? "error" : "info";
      // Below the configured level the line would be dropped: it is not built at all.
      if (!log.enabled(level)) return;
      log[level]("request", {
        method: c.req.method,
        route: matchedRoute(c),
        status,
        duration_ms: Math.round((now() - started) * 100) / 100,
        key_id: c.get("principal")?.keyId,
      });
    },
  };
}

/** The route template that answered, or undefined when no endpoint matched (404/405). */
export function matchedRoute(c: Parameters<typeof routePath>[0]): string | undefined {
  const path = routePath(c, -1);
  return path.includes("*") ? undefined : path;
}

/**
 * Answers 503 `request_timeout` (with Retry-After) when a request takes longer than `timeoutMs`, so
 * no caller hangs on a database that stopped answering or a pool waiting to reconnect. Long-polls
 * (`?wait=`), MCP tool calls and event streams hold their connection on purpose and have bounds of their own. The
 * work itself is not cancelled: a write may still commit after its caller was told to retry, which
 * is what idempotency keys are for.
 *
 * One coarse timer serves every request in flight, rather than a timer and a race per request: the
 * answer comes between `timeoutMs` and `timeoutMs` + TIMEOUT_GRANULARITY late (a tenth of it, at
 * most 250 ms). Every deadline is the same distance from its request's start, so requests in the
 * order they came are also in the order they expire and a sweep stops at the first still running.
 */
export function requestTimeout(timeoutMs: number): MiddlewareHandler<AppEnv> {
  const granularityMs = Math.min(250, Math.max(1, Math.floor(timeoutMs / 10)));
  const running = new Set<{ deadline: number; reject: (error: ApiError) => void }>();
  let sweeper: ReturnType<typeof setInterval> | undefined;
  const sweep = () => {
    const now = performance.now();
    for (const request of running) {
      if (request.deadline > now) break;
      running.delete(request);
      request.reject(
        new ApiError(
          503,
          "request_timeout",
          `the request did not complete within ${timeoutMs} ms; retry after the number of seconds in Retry-After`,
          undefined,
          { "Retry-After": "1" },
        ),
      );
    }
    if (running.size === 0) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  };
  const bounded = (next: () => Promise<void>) =>
    new Promise<void>((resolve, reject) => {
      const request = { deadline: performance.now() + timeoutMs, reject };
      running.add(request);
      if (!sweeper) {
        sweeper = setInterval(sweep, granularityMs);
        // An idle server with nothing in flight keeps no timer; a busy one must not be kept alive by it.
        sweeper.unref?.();
      }
      next().then(
        () => {
          running.delete(request);
          resolve();
        },
        (error: unknown) => {
          running.delete(request);
          reject(error);
        },
      );
    });
  // Not async itself: a long-poll (thousands answered at once) passes with no frame of its own to resume.
  return (c, next) =>
    // MCP tool calls wait for verdicts as long-polls do, bounded by the tools themselves.
    c.req.path.endsWith("/stream") || c.req.query("wait") !== undefined || c.req.path === "/mcp" ? next() : bounded(next);
}
