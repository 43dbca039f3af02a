import type { Context, MiddlewareHandler } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { RequestMeta } from "../auth/audit";
import { requestMeta } from "../auth/middleware";
import { hitWindow, peekWindow } from "../auth/rate-limit";
import type { Permission, Principal } from "../auth/rbac";
import type { AuthRuntime } from "../auth/runtime";
import { issueToken, revokeToken } from "../auth/sessions";
import { AuthFailure } from "../auth/verifier";
import { hmacSha256Hex, secretsEqual } from "../crypto/hash";
import type { AppEnv } from "../http/env";
import { ApiError } from "../http/errors";

/**
 * Console sessions are the API's own service tokens (EdDSA JWT + a revocable `operator_sessions`
 * row), kept in an HttpOnly, SameSite=Strict cookie: the browser's script never sees the credential,
 * and signing out revokes the token on every replica as `POST /v1/auth/revoke` does.
 */
export const SESSION_COOKIE = "arbiter_console";
export const CONSOLE_PATH = "/console";

/** A session carries only what the console does, whatever else its key may do. */
const CONSOLE_PERMISSIONS: readonly Permission[] = ["decisions:read", "decisions:resolve", "decisions:escalate"];

/** The same counter as the API's failed-authentication throttle, so guessing here spends the same budget. */
const failureKey = (address: string) => `authfail:${address}`;

const LOOPBACK_HOST = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/;

/**
 * The cookie is Secure unless the console is reached over plain HTTP on a loopback address (a trial
 * on one's own machine). Served over HTTPS directly, or (with TRUST_PROXY_HOPS) behind a proxy that
 * terminated TLS, it is Secure too; on plain HTTP elsewhere the browser then refuses the session.
 */
const isSecure = (c: Context, trustedHops: number) => {
  const url = new URL(c.req.url);
  const forwardedHttps = trustedHops > 0 && c.req.header("x-forwarded-proto")?.split(",")[0]?.trim() === "https";
  return url.protocol === "https:" || forwardedHttps || !LOOPBACK_HOST.test(url.hostname);
};

/**
 * API key → console session. The key must belong to a person's role (admin, operator, readonly): a
 * service key asks for decisions, it does not decide them. Failures are audited and throttled per
 * address like every other authentication.
 */
export async function signIn(auth: AuthRuntime, c: Context<AppEnv>, rawKey: string): Promise<void> {
  const { guard } = auth;
  const meta = requestMeta(c, guard.config.TRUST_PROXY_HOPS);
  const address = meta.address ?? "unknown";
  const { AUTH_FAILURE_LIMIT: limit, AUTH_FAILURE_WINDOW_MS: windowMs } = guard.config;
  const nowMs = guard.clock.now().getTime();
  const throttled = await peekWindow(guard.cache, failureKey(address), limit, windowMs, nowMs).catch(() => undefined);
  if (throttled && !throttled.allowed) {
    throw new ApiError(429, "too_many_failed_attempts", "too many failed sign-in attempts from this address; retry later");
  }
  let principal: Principal;
  try {
    await guard.revocations.listen();
    principal = await auth.verifier.verify(rawKey);
    if (principal.via !== "api_key") throw new AuthFailure("invalid_key", "sign in with an API key");
    if (principal.role === "service") throw new AuthFailure("invalid_key", "service keys cannot sign in to the console", principal.keyId);
  } catch (error) {
    if (!(error instanceof AuthFailure)) throw error;
    guard.authFailures.add(1, { reason: error.code });
    guard.audit.record({ ...meta, action: "authenticate", outcome: "failure", reason: error.code, actorKeyId: error.actorKeyId });
    await hitWindow(guard.cache, failureKey(address), limit, windowMs, nowMs).catch(() => undefined);
    throw error;
  }
  // A sign-in is kept in the audit trail (per-request use is only counted, as for the API).
  guard.audit.record({ ...meta, action: "authenticate", outcome: "success", actorKeyId: principal.keyId });
  guard.usage.count(principal.keyId, principal.via);
  if (!principal.permissions.has("decisions:read")) {
    throw new ApiError(403, "forbidden", "the console needs the decisions:read permission", { required: "decisions:read" });
  }
  const permissions = CONSOLE_PERMISSIONS.filter((p) => principal.permissions.has(p));
  const ttlSeconds = auth.deps.config.CONSOLE_SESSION_TTL_SECONDS;
  const issued = await issueToken(auth.sessions, principal, { ttlSeconds, permissions }, meta);
  setCookie(c, SESSION_COOKIE, issued.token, {
    path: CONSOLE_PATH,
    httpOnly: true,
    sameSite: "Strict",
    secure: isSecure(c, guard.config.TRUST_PROXY_HOPS),
    maxAge: issued.ttlSeconds,
  });
}

/** Revokes the session's token (on every replica) and clears the cookie. */
export async function signOut(auth: AuthRuntime, c: Context<AppEnv>, principal: Principal): Promise<void> {
  const meta: RequestMeta = requestMeta(c, auth.guard.config.TRUST_PROXY_HOPS);
  await revokeToken(auth.sessions, principal, principal.tokenId!, meta).catch((error: unknown) => {
    // Already revoked elsewhere: signing out still succeeds.
    if (!(error instanceof ApiError && error.status === 409)) throw error;
  });
  deleteCookie(c, SESSION_COOKIE, { path: CONSOLE_PATH, secure: isSecure(c, auth.guard.config.TRUST_PROXY_HOPS) });
}

/**
 * Sets `principal` from the session cookie when it holds a valid, unrevoked console token; leaves it
 * unset otherwise (pages then send the browser to the sign-in form).
 */
export function consoleSession(auth: AuthRuntime): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const token = getCookie(c, SESSION_COOKIE);
    if (token) {
      try {
        const principal = await auth.verifier.verify(token, () => auth.guard.revocations.listen());
        if (principal.via === "token") {
          c.set("principal", principal);
          auth.guard.usage.count(principal.keyId, principal.via);
        }
      } catch (error) {
        if (!(error instanceof AuthFailure)) throw error;
        deleteCookie(c, SESSION_COOKIE, { path: CONSOLE_PATH, secure: isSecure(c, auth.guard.config.TRUST_PROXY_HOPS) });
      }
    }
    await next();
  };
}

/**
 * Cross-site request forgery: besides the SameSite=Strict cookie, every state-changing request must
 * come from a page of this origin (Sec-Fetch-Site, or Origin for browsers that do not send it).
 */
export function sameOrigin(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (c.req.method !== "GET" && c.req.method !== "HEAD") {
      const site = c.req.header("sec-fetch-site");
      const origin = c.req.header("origin");
      const allowed = site ? site === "same-origin" : origin === new URL(c.req.url).origin;
      if (!allowed) throw new ApiError(403, "cross_site_request", "console forms are accepted only from the console itself");
    }
    await next();
  };
}

/** The form field that carries a session's CSRF token. */
export const CSRF_FIELD = "csrf";

/**
 * The session's CSRF token: an HMAC keyed by the session cookie's value, which only the browser
 * holding the cookie knows (HttpOnly: not even the page's script), so another site cannot compute
 * it, every replica can check it without shared state, and it ends with the session.
 */
export const csrfToken = (c: Context): string | undefined => {
  const session = getCookie(c, SESSION_COOKIE);
  return session ? hmacSha256Hex(session, "arbiter console csrf") : undefined;
};

/**
 * A signed-in session's state-changing form must carry the session's CSRF token (checked in
 * constant time) on top of the same-origin check; the sign-in form (shown without a session, and
 * replacing any) relies on that check alone.
 */
export function csrfCheck(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (c.req.method !== "GET" && c.req.method !== "HEAD" && c.get("principal") && c.req.path !== `${CONSOLE_PATH}/login`) {
      const expected = csrfToken(c);
      const form = await c.req.formData().catch(() => undefined);
      const presented = form?.get(CSRF_FIELD);
      if (!expected || typeof presented !== "string" || !secretsEqual(presented, expected)) {
        throw new ApiError(403, "csrf_token_invalid", "the form's CSRF token is missing or wrong; reload the page and try again");
      }
    }
    await next();
  };
}
