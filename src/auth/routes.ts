import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { ROLES } from "../db/schema";
import type { AppEnv } from "../http/env";
import { badRequest, errorResponses } from "../http/errors";
import { IsoInstant } from "../http/instant";
import { createRouter, defineRoute } from "../http/openapi";
import { PaginationQuery, pageSchema } from "../http/pagination";
import { AUTH_ACTIONS, listAuthEvents } from "./audit";
import { createKey, getKey, KEY_STATUSES, keyView, listKeys, revokeKey, rotateKey } from "./keys-service";
import { requestMeta } from "./middleware";
import { PERMISSIONS } from "./rbac";
import type { AuthRuntime } from "./runtime";
import { issueToken, revokeToken } from "./sessions";
import { listKeyUsage } from "./usage";

const MAX_GRACE_SECONDS = 30 * 86_400;
const Timestamp = IsoInstant;
const IdParam = z.object({ id: z.uuid().openapi({ param: { name: "id", in: "path" }, example: "01938f4e-7c1a-7b3e-9d2f-5a6b7c8d9e0f" }) });
const Permission = z.enum(PERMISSIONS);
const Metadata = z
  .record(z.string().max(64), z.unknown())
  .refine((value) => JSON.stringify(value).length <= 4096, "metadata must serialise to at most 4096 bytes");

export const KeySchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    role: z.enum(ROLES),
    permissions: z.array(Permission).describe("effective permissions: the role's, or the narrower set the key was created with"),
    narrowed: z.boolean(),
    display_prefix: z.string().describe("first characters of the key, to tell keys apart; not a secret"),
    status: z.enum(KEY_STATUSES),
    metadata: z.record(z.string(), z.unknown()),
    created_by: z.uuid().nullable(),
    operator_id: z.uuid().nullable().describe("the person who holds the key; null for a key that is no person's (a service)"),
    rotated_from: z.uuid().nullable(),
    created_at: z.string(),
    expires_at: z.string().nullable(),
    revoked_at: z.string().nullable().describe("in the future while a rotated key is in its grace period"),
    last_used_at: z.string().nullable().describe("updated at most once a minute"),
  })
  .openapi("ApiKey");
export const CreatedKeySchema = KeySchema.extend({
  key: z.string().describe("the raw key: shown once, never stored, never retrievable"),
}).openapi("CreatedApiKey");

export const RotatedKeySchema = CreatedKeySchema.extend({ previous: KeySchema });

/**
 * Request and response shapes of keys and tokens, exported for the SDK's types. Request bodies refuse
 * unknown fields instead of dropping them: a misspelt `permissions` would otherwise mint a full-role key.
 */
export const CreateKeyBody = z.strictObject({
  name: z.string().trim().min(1).max(128),
  role: z.enum(ROLES),
  permissions: z.array(Permission).min(1).optional().describe("narrow the key to these of its role's permissions"),
  metadata: Metadata.optional(),
  expires_at: Timestamp.optional(),
  operator_id: z.uuid().optional().describe("the person who will hold the key; their role must include every permission of the key"),
});
export const ListKeysQuery = PaginationQuery.extend({
  role: z.enum(ROLES).optional(),
  status: z.enum(KEY_STATUSES).optional(),
  operator_id: z.uuid().optional(),
});
export const RotateKeyBody = z.strictObject({
  grace_seconds: z.number().int().min(0).max(MAX_GRACE_SECONDS).optional(),
  expires_at: Timestamp.nullable().optional().describe("the new key's expiry; defaults to the old key's"),
});
export const IssueTokenBody = z.strictObject({
  ttl_seconds: z.number().int().min(1).max(86_400).optional().describe("capped by the server's maximum"),
  permissions: z.array(Permission).min(1).optional().describe("narrow the token to these of the key's permissions"),
});
export const ServiceTokenSchema = z
  .object({
    access_token: z.string(),
    token_type: z.literal("Bearer"),
    expires_in: z.number().int(),
    expires_at: z.string(),
    jti: z.uuid(),
    permissions: z.array(Permission),
  })
  .openapi("ServiceToken");
export const RevokeTokenBody = z.strictObject({ jti: z.uuid().optional() });
export const RevokedTokenSchema = z.object({ jti: z.uuid(), revoked_at: z.string() });

const createKeyRoute = defineRoute("keys:create", {
  operationId: "createKey",
  method: "post",
  path: "/v1/keys",
  tags: ["keys"],
  summary: "Create an API key (the raw key is returned once)",
  request: {
    body: {
      required: true,
      content: {
        "application/json": {
          schema: CreateKeyBody,
        },
      },
    },
  },
  responses: {
    201: { description: "Created", content: { "application/json": { schema: CreatedKeySchema } } },
  },
});

const listKeysRoute = defineRoute("keys:read", {
  operationId: "listKeys",
  method: "get",
  path: "/v1/keys",
  tags: ["keys"],
  summary: "List API keys (never hashes or raw keys)",
  request: {
    query: ListKeysQuery,
  },
  responses: {
    200: { description: "A page of keys", content: { "application/json": { schema: pageSchema(KeySchema) } } },
  },
});

const getKeyRoute = defineRoute("keys:read", {
  operationId: "getKey",
  method: "get",
  path: "/v1/keys/{id}",
  tags: ["keys"],
  summary: "One API key",
  request: { params: IdParam },
  responses: { 200: { description: "The key", content: { "application/json": { schema: KeySchema } } } },
});

const revokeKeyRoute = defineRoute("keys:revoke", {
  operationId: "revokeKey",
  method: "post",
  path: "/v1/keys/{id}/revoke",
  tags: ["keys"],
  summary: "Revoke an API key (and every token issued to it) at once",
  request: { params: IdParam },
  responses: { 200: { description: "Revoked", content: { "application/json": { schema: KeySchema } } }, ...errorResponses(409) },
});

const rotateKeyRoute = defineRoute("keys:create", {
  operationId: "rotateKey",
  method: "post",
  path: "/v1/keys/{id}/rotate",
  tags: ["keys"],
  summary: "Replace a key; the old one stays valid for grace_seconds (default 0). Also needs keys:revoke.",
  request: {
    params: IdParam,
    body: {
      required: false,
      content: {
        "application/json": {
          schema: RotateKeyBody,
        },
      },
    },
  },
  responses: {
    201: {
      description: "The new key (raw, once) and the old key's new state",
      content: { "application/json": { schema: RotatedKeySchema } },
    },
    ...errorResponses(409),
  },
});

const issueTokenRoute = defineRoute("tokens:issue", {
  operationId: "issueToken",
  method: "post",
  path: "/v1/auth/token",
  tags: ["auth"],
  summary: "Exchange an API key for a short-lived JWT service token",
  request: {
    body: {
      required: false,
      content: {
        "application/json": {
          schema: IssueTokenBody,
        },
      },
    },
  },
  responses: {
    200: {
      description: "A signed token",
      content: {
        "application/json": {
          schema: ServiceTokenSchema,
        },
      },
    },
  },
});

const revokeTokenRoute = defineRoute("tokens:issue", {
  operationId: "revokeToken",
  method: "post",
  path: "/v1/auth/revoke",
  tags: ["auth"],
  summary: "Revoke a service token by jti (your own, or any with keys:revoke); no jti revokes the token presented",
  request: {
    body: { required: false, content: { "application/json": { schema: RevokeTokenBody } } },
  },
  responses: {
    200: { description: "Revoked", content: { "application/json": { schema: RevokedTokenSchema } } },
    ...errorResponses(404, 409),
  },
});

const AuthEventSchema = z
  .object({
    id: z.uuid(),
    created_at: z.string(),
    action: z.string(),
    outcome: z.enum(["success", "failure"]),
    reason: z.string().nullable(),
    actor_key_id: z.uuid().nullable(),
    target_id: z.string().nullable(),
    address: z.string().nullable(),
    user_agent: z.string().nullable(),
    request_id: z.string().nullable(),
  })
  .openapi("AuthEvent");

const listAuditRoute = defineRoute("audit:read", {
  operationId: "listAuthEvents",
  method: "get",
  path: "/v1/audit/auth",
  tags: ["audit"],
  summary: "Authentication audit trail, newest first",
  request: {
    query: PaginationQuery.extend({
      actor_key_id: z.uuid().optional(),
      action: z.enum(AUTH_ACTIONS).optional(),
      outcome: z.enum(["success", "failure"]).optional(),
      since: Timestamp.optional(),
      until: Timestamp.optional(),
    }),
  },
  responses: {
    200: { description: "A page of events", content: { "application/json": { schema: pageSchema(AuthEventSchema) } } },
  },
});

const KeyUsageSchema = z
  .object({
    key_id: z.uuid(),
    window_start: z.string().describe("start of the one-minute window counted"),
    via: z.enum(["api_key", "token"]).describe("whether the key itself or one of its service tokens was presented"),
    requests: z.number().int(),
  })
  .openapi("KeyUsage");

const listUsageRoute = defineRoute("audit:read", {
  operationId: "listKeyUsage",
  method: "get",
  path: "/v1/audit/auth/usage",
  tags: ["audit"],
  summary: "Successful authentications of one key, counted per minute, newest first",
  request: {
    query: PaginationQuery.extend({
      key_id: z.uuid().openapi({ param: { name: "key_id", in: "query" } }),
      since: Timestamp.optional(),
      until: Timestamp.optional(),
    }),
  },
  responses: {
    200: { description: "A page of per-minute counters", content: { "application/json": { schema: pageSchema(KeyUsageSchema) } } },
  },
});

const jwksRoute = defineRoute("public", {
  operationId: "getJwks",
  method: "get",
  path: "/.well-known/jwks.json",
  tags: ["auth"],
  summary: "Public keys that verify service tokens",
  responses: {
    200: {
      description: "JSON Web Key Set",
      content: { "application/json": { schema: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }).openapi("JWKS") } },
    },
    // Public, but rate limited per address like every /.well-known path.
    ...errorResponses(429),
  },
});

/** Keys, tokens, the auth audit trail and the JWKS: parse → service → shape. */
export function authRoutes(auth: AuthRuntime) {
  const { deps } = auth;
  const now = () => deps.clock.now();
  const meta = (c: Context<AppEnv>) => requestMeta(c, deps.config.TRUST_PROXY_HOPS);
  const date = (value: string | null | undefined): Date | null | undefined => (value ? new Date(value) : value === null ? null : undefined);
  const timeRange = <Q extends { since?: string; until?: string }>(query: Q) => ({
    ...query,
    since: date(query.since) ?? undefined,
    until: date(query.until) ?? undefined,
  });
  return (
    createRouter()
      .openapi(createKeyRoute, async (c) => {
        const body = c.req.valid("json");
        const { key, row } = await createKey(
          auth.keyService,
          c.get("principal")!,
          { ...body, expiresAt: body.expires_at ? new Date(body.expires_at) : undefined, operatorId: body.operator_id },
          meta(c),
        );
        return c.json({ ...keyView(row, now()), key }, 201);
      })
      .openapi(listKeysRoute, async (c) => {
        const { operator_id, ...query } = c.req.valid("query");
        return c.json(await listKeys(deps.database.db, { ...query, operatorId: operator_id }, now()), 200);
      })
      .openapi(getKeyRoute, async (c) => c.json(keyView(await getKey(deps.database.db, c.req.valid("param").id), now()), 200))
      .openapi(revokeKeyRoute, async (c) => {
        const row = await revokeKey(auth.keyService, c.get("principal")!, c.req.valid("param").id, meta(c));
        return c.json(keyView(row, now()), 200);
      })
      .openapi(rotateKeyRoute, async (c) => {
        const body = c.req.valid("json");
        const { key, row, old } = await rotateKey(
          auth.keyService,
          c.get("principal")!,
          c.req.valid("param").id,
          { graceSeconds: body.grace_seconds ?? 0, expiresAt: date(body.expires_at) },
          meta(c),
        );
        return c.json({ ...keyView(row, now()), key, previous: keyView(old, now()) }, 201);
      })
      .openapi(issueTokenRoute, async (c) => {
        const body = c.req.valid("json");
        const issued = await issueToken(
          auth.sessions,
          c.get("principal")!,
          { ttlSeconds: body.ttl_seconds, permissions: body.permissions },
          meta(c),
        );
        c.header("Cache-Control", "no-store");
        return c.json(
          {
            access_token: issued.token,
            token_type: "Bearer" as const,
            expires_in: issued.ttlSeconds,
            expires_at: issued.expiresAt.toISOString(),
            jti: issued.jti,
            permissions: issued.permissions,
          },
          200,
        );
      })
      .openapi(revokeTokenRoute, async (c) => {
        const principal = c.get("principal")!;
        const jti = c.req.valid("json").jti ?? principal.tokenId;
        if (!jti) throw badRequest("jti_required", "give the jti of the token to revoke (or call with the token itself)");
        const row = await revokeToken(auth.sessions, principal, jti, meta(c));
        return c.json({ jti: row.id, revoked_at: row.revokedAt!.toISOString() }, 200);
      })
      // Reads flush this replica's buffered events and counts first, so they are visible.
      .openapi(listAuditRoute, async (c) => {
        await auth.audit.flush();
        return c.json(await listAuthEvents(deps.database.db, timeRange(c.req.valid("query"))), 200);
      })
      .openapi(listUsageRoute, async (c) => {
        await auth.usage.flush();
        return c.json(await listKeyUsage(deps.database.db, timeRange(c.req.valid("query"))), 200);
      })
      .openapi(jwksRoute, async (c) => {
        c.header("Cache-Control", "public, max-age=300");
        return c.json(await auth.signer.jwks(), 200);
      })
  );
}
