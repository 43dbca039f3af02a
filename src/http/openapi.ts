import { createRoute, OpenAPIHono, type RouteConfig } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { type Permission, requirePermission } from "../auth/rbac";
import type { AppEnv } from "./env";
import { errorResponses, issueDetails, validationFailed } from "./errors";
import { inputGuard } from "./input-guard";
import { asOneLayer } from "./one-layer";

/**
 * Declares a route with the permission it needs. The permission is enforced (requirePermission runs
 * before validation, so a caller without it learns nothing about the schema) and published in the
 * OpenAPI document as `x-permission`, which the route × role test reads: a route cannot be added
 * without saying who may call it. The `operationId` is required: generated clients name their
 * methods after it, so it must be stable rather than invented from the path.
 */
export function defineRoute<const R extends RouteConfig & { operationId: string }>(access: Permission | "public", config: R): R {
  // Input that no schema should have to think of (NUL, invalid UTF-8, deep nesting) is refused after
  // the permission check, before the route's own middleware and schemas.
  const own = config.middleware ? [config.middleware].flat() : [];
  const isPublic = access === "public";
  // The permission check and the input guard act only on the way in: one layer between them.
  const guard = isPublic
    ? inputGuard()
    : asOneLayer<AppEnv>(requirePermission(access) as unknown as MiddlewareHandler<AppEnv>, inputGuard());
  return createRoute({
    ...config,
    middleware: [guard, ...own],
    security: isPublic ? [] : [{ ApiKey: [] }, { BearerAuth: [] }],
    "x-permission": access,
    responses: { ...errorResponses(...answeredByMiddleware(isPublic, config)), ...config.responses },
  }) as R;
}

/**
 * The error statuses every route can answer whatever its handler does, so the document declares each
 * status an operation can answer: 400 from the input guard and validation, 401/403/429 from
 * authentication, permission and rate limiting, 404 for an unknown id, 413/415 for a body over the
 * limit or of the wrong type, 500 for a fault, 503 when the database cannot be reached, has no storage
 * left for a write, or the request outlives REQUEST_TIMEOUT_MS.
 */
function answeredByMiddleware(isPublic: boolean, config: RouteConfig): ContentfulStatusCode[] {
  const statuses: ContentfulStatusCode[] = [400];
  if (!isPublic) statuses.push(401, 403, 429);
  if (config.path.includes("{")) statuses.push(404);
  if (config.request?.body) statuses.push(413, 415);
  return [...statuses, 500, 503];
}

/** A JSON request or response body for a route config: `content: json(Schema)`. */
export const json = <T>(schema: T) => ({ "application/json": { schema } });

/** A router whose validation failures all answer 400 `validation_failed` with field paths. */
export function createRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        throw validationFailed(issueDetails(result.error.issues, result.target));
      }
    },
  });
}
