import type { MiddlewareHandler } from "hono";
import type { Role } from "../db/schema";
import { ApiError } from "../http/errors";

/** The permissions; every route declares the one it needs (docs/api.md has the matrix). */
export const PERMISSIONS = [
  "decisions:create",
  "decisions:read",
  "decisions:resolve",
  "decisions:escalate",
  "decisions:cancel",
  "telemetry:write",
  "telemetry:read",
  "keys:create",
  "keys:read",
  "keys:revoke",
  "tokens:issue",
  "metrics:read",
  "audit:read",
  "notifications:manage",
  "policies:manage",
] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** The role × permission matrix (documented in the README; a test checks every route against it). */
export const ROLE_PERMISSIONS: Record<Role, readonly Permission[]> = {
  admin: PERMISSIONS,
  operator: ["decisions:read", "decisions:resolve", "decisions:escalate", "telemetry:read", "tokens:issue", "metrics:read"],
  readonly: ["decisions:read", "telemetry:read", "metrics:read"],
  service: ["decisions:create", "decisions:read", "decisions:cancel", "telemetry:write", "telemetry:read", "tokens:issue"],
};

/** Who is calling: set by the authentication middleware, read by requirePermission and services. */
export interface Principal {
  keyId: string;
  keyName: string;
  /**
   * The person behind the key (its operator), or the key itself when it is no person's: quorum
   * and the requester's exclusion are decided on this, so one person's keys count once.
   */
  personId: string;
  role: Role;
  permissions: ReadonlySet<Permission>;
  /** how the caller authenticated (`slack` and `email`: a person acting from a message); `tokenId` is the JWT's jti */
  via: "api_key" | "token" | "slack" | "email";
  tokenId?: string;
  /** when the key stops authenticating (its expiry, or the end of a rotation grace); absent when never */
  validUntil?: Date;
}

/** A key's effective permissions: its role's, narrowed to `narrowed` when given (never widened). */
export function effectivePermissions(role: Role, narrowed?: readonly string[] | null): Set<Permission> {
  const granted = ROLE_PERMISSIONS[role];
  if (!narrowed) return new Set(granted);
  return new Set(granted.filter((p) => narrowed.includes(p)));
}

export function requirePermission(permission: Permission): MiddlewareHandler<{ Variables: { principal?: Principal } }> {
  // Not async: a request that passes returns its inner chain's promise, with no frame of its own to resume on the way out.
  return (c, next) => {
    const principal = c.get("principal");
    if (!principal) {
      throw new ApiError(401, "unauthenticated", "send an API key (X-API-Key or Authorization: Bearer) or a service token", undefined, {
        "WWW-Authenticate": 'Bearer realm="arbiter"',
      });
    }
    if (!principal.permissions.has(permission)) {
      throw new ApiError(403, "forbidden", `this operation needs the ${permission} permission`, { required: permission });
    }
    return next();
  };
}
