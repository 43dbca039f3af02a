import type { Counter } from "@opentelemetry/api";
import type { Context, MiddlewareHandler } from "hono";
import type { Cache } from "../cache";
import type { Config } from "../config";
import type { Role } from "../db/schema";
import type { Clock } from "../deps";
import type { AppEnv } from "../http/env";
import { ApiError } from "../http/errors";
import type { Logger } from "../observability/logger";
import type { AuthAudit, RequestMeta } from "./audit";
import { clientAddress, hitWindow, peekWindow, type RateLimiter, rateLimitHeaders, type WindowState } from "./rate-limit";
import type { RevocationListener } from "./revocations";
import type { AuthUsage } from "./usage";
import { AuthFailure, type CredentialVerifier } from "./verifier";

/** Reads the credential from `X-API-Key` or `Authorization: Bearer`; undefined when none was sent. */
export function presentedCredential(headers: Headers): string | undefined {
  const apiKey = headers.get("x-api-key");
  if (apiKey) return apiKey.trim();
  const authorization = headers.get("authorization");
  if (!authorization) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  return match ? match[1] : authorization.trim();
}

export interface GuardDeps {
  config: Pick<
    Config,
    | "TRUST_PROXY_HOPS"
    | "RATE_LIMIT_WINDOW_MS"
    | "RATE_LIMIT_ADMIN"
    | "RATE_LIMIT_OPERATOR"
    | "RATE_LIMIT_READONLY"
    | "RATE_LIMIT_SERVICE"
    | "RATE_LIMIT_ANONYMOUS"
    | "AUTH_FAILURE_LIMIT"
    | "AUTH_FAILURE_WINDOW_MS"
  >;
  cache: Cache;
  clock: Clock;
  logger: Logger;
  verifier: CredentialVerifier;
  revocations: RevocationListener;
  audit: AuthAudit;
  usage: AuthUsage;
  limiter: RateLimiter;
  authFailures: Counter;
  rateLimitRejections: Counter;
}

export const requestMeta = (c: Context<AppEnv>, trustedHops: number): RequestMeta => ({
  address: clientAddress(c, trustedHops),
  userAgent: c.req.header("user-agent") ?? null,
  requestId: c.get("requestId") ?? null,
});

/**
 * A limiter backed by the shared cache fails open: a cache outage must not take the API down with
 * it. The warning is logged at most once a minute so an outage does not flood the logs.
 */
export function failOpen(deps: Pick<GuardDeps, "clock" | "logger">) {
  let lastWarning = Number.NEGATIVE_INFINITY;
  return (error: unknown): undefined => {
    const at = deps.clock.now().getTime();
    if (at - lastWarning >= 60_000) {
      lastWarning = at;
      deps.logger.warn("rate limiting skipped: cache unavailable", { error: (error as Error).message });
    }
    return undefined;
  };
}

const tooMany = (code: string, message: string, state: WindowState) => new ApiError(429, code, message, undefined, rateLimitHeaders(state));

/**
 * Authenticates the caller when credentials are present and sets `principal`. Requests without
 * credentials pass through: routes that need a permission answer 401 through requirePermission.
 * An address with too many recent failures is refused (429) before any lookup, to slow guessing.
 */
export function authenticate(deps: GuardDeps): MiddlewareHandler<AppEnv> {
  const skip = failOpen(deps);
  const failureKey = (address: string) => `authfail:${address}`;
  return async (c, next) => {
    const raw = presentedCredential(c.req.raw.headers);
    if (raw === undefined) return next();
    // Where the request came from is needed only on the slow path and for failures: a cached key
    // answers without looking at the socket.
    let meta: RequestMeta | undefined;
    const metaOf = () => (meta ??= requestMeta(c, deps.config.TRUST_PROXY_HOPS));
    const { AUTH_FAILURE_LIMIT: limit, AUTH_FAILURE_WINDOW_MS: windowMs } = deps.config;

    // Checked only when the credential is not already verified in this replica's cache: guessing
    // always takes that path, while a client sharing an address with a guesser keeps working.
    const refuseWhenThrottled = async () => {
      const address = metaOf().address ?? "unknown";
      const failures = await peekWindow(deps.cache, failureKey(address), limit, windowMs, deps.clock.now().getTime()).catch(skip);
      if (failures && !failures.allowed) {
        deps.rateLimitRejections.add(1, { scope: "address" });
        throw tooMany("too_many_failed_attempts", "too many failed authentication attempts from this address; retry later", failures);
      }
    };

    // Subscribed lazily, so building the app stays free of I/O; awaited before the first lookup
    // whose result is cached, so no credential is cached while this replica is deaf to revocations
    // (unless the pub/sub is down: then AUTH_CACHE_TTL_MS is the bound).
    const beforeSlowPath = async () => {
      await refuseWhenThrottled();
      await deps.revocations.listen();
    };

    try {
      const principal = await deps.verifier.verify(raw, beforeSlowPath);
      c.set("principal", principal);
      // Successful use is counted per key and minute (api_key_usage), not written row by row.
      deps.usage.count(principal.keyId, principal.via);
    } catch (error) {
      if (!(error instanceof AuthFailure)) throw error;
      const failure = metaOf();
      deps.authFailures.add(1, { reason: error.code });
      deps.audit.record({ ...failure, action: "authenticate", outcome: "failure", reason: error.code, actorKeyId: error.actorKeyId });
      await hitWindow(deps.cache, failureKey(failure.address ?? "unknown"), limit, windowMs, deps.clock.now().getTime()).catch(skip);
      throw error;
    }
    await next();
  };
}

/** Per key (by role) for authenticated callers, per address for anonymous ones. */
export function rateLimit(deps: GuardDeps): MiddlewareHandler<AppEnv> {
  const limits: Record<Role, number> = {
    admin: deps.config.RATE_LIMIT_ADMIN,
    operator: deps.config.RATE_LIMIT_OPERATOR,
    readonly: deps.config.RATE_LIMIT_READONLY,
    service: deps.config.RATE_LIMIT_SERVICE,
  };
  return async (c, next) => {
    const principal = c.get("principal");
    const [bucket, limit] = principal
      ? [`key:${principal.keyId}`, limits[principal.role]]
      : [`addr:${clientAddress(c, deps.config.TRUST_PROXY_HOPS)}`, deps.config.RATE_LIMIT_ANONYMOUS];
    const state = await deps.limiter.hit(bucket, limit, deps.config.RATE_LIMIT_WINDOW_MS);
    if (!state.allowed) {
      deps.rateLimitRejections.add(1, { scope: principal ? "key" : "address" });
      throw tooMany("rate_limited", "rate limit exceeded; retry after the number of seconds in Retry-After", state);
    }
    for (const [name, value] of Object.entries(rateLimitHeaders(state))) c.header(name, value);
    await next();
  };
}
