import type { MiddlewareHandler } from "hono";
import type { Cache } from "../cache";
import type { Database } from "../db/client";
import type { ApiKeyRow } from "../db/schema";
import type { Clock } from "../deps";
import type { AppEnv } from "../http/env";
import { ApiError } from "../http/errors";
import { findApiKeyByHash, hashApiKey, isWellFormedApiKey } from "./api-keys";
import { effectivePermissions, type Principal } from "./rbac";

/** Reads the credential from `X-API-Key` or `Authorization: Bearer`; undefined when none was sent. */
export function presentedCredential(headers: Headers): string | undefined {
  const apiKey = headers.get("x-api-key");
  if (apiKey) return apiKey.trim();
  const authorization = headers.get("authorization");
  if (!authorization) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  return match ? match[1] : authorization.trim();
}

const unauthorized = (code: string, message: string) =>
  new ApiError(401, code, message, undefined, { "WWW-Authenticate": `Bearer realm="arbiter", error="invalid_token"` });

/**
 * Authenticates the caller when credentials are present and sets `principal`. Requests without
 * credentials pass through: routes that need a permission answer 401 through requirePermission.
 */
export function authenticate(deps: { db: Database; cache: Cache; clock: Clock }): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const raw = presentedCredential(c.req.raw.headers);
    if (raw === undefined) return next();
    if (!isWellFormedApiKey(raw)) throw unauthorized("invalid_key", "the API key is malformed");
    const row = await findApiKeyByHash(deps.db, await hashApiKey(raw));
    if (!row) throw unauthorized("invalid_key", "the API key is not valid");
    c.set("principal", principalFor(row, deps.clock.now()));
    await next();
  };
}

function principalFor(row: ApiKeyRow, now: Date): Principal {
  if (row.revokedAt && row.revokedAt <= now) throw unauthorized("key_revoked", "the API key has been revoked");
  if (row.expiresAt && row.expiresAt <= now) throw unauthorized("key_expired", "the API key has expired");
  return {
    keyId: row.id,
    keyName: row.name,
    role: row.role,
    permissions: effectivePermissions(row.role, row.permissions),
    via: "api_key",
  };
}
