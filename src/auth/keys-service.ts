import { and, desc, eq, gt, isNotNull, isNull, lte, or, type SQL } from "drizzle-orm";
import type { Database } from "../db/client";
import { type ApiKeyRow, apiKeys, operators, type Role } from "../db/schema";
import type { Clock } from "../deps";
import { ApiError, badRequest, conflict, notFound } from "../http/errors";
import { afterCursor, toPage } from "../http/pagination";
import { assertKeyFitsPerson } from "../people/service";
import { createApiKey, findApiKeyById } from "./api-keys";
import type { AuthAudit, RequestMeta } from "./audit";
import { effectivePermissions, type Permission, type Principal, ROLE_PERMISSIONS } from "./rbac";

export interface KeyServiceDeps {
  db: Database;
  clock: Clock;
  audit: AuthAudit;
  /** drops a changed key from the verification caches: this replica's at once, the others' by broadcast */
  forgetKey?: (row: ApiKeyRow) => Promise<void>;
}

/** Who asks for a change: an authenticated principal, or null for the local `keys` script (full power). */
export type Actor = Principal | null;

export const KEY_STATUSES = ["active", "expired", "revoked", "rotating"] as const;
export type KeyStatus = (typeof KEY_STATUSES)[number];

export function keyStatus(row: ApiKeyRow, now: Date): KeyStatus {
  if (row.revokedAt && row.revokedAt <= now) return "revoked";
  if (row.expiresAt && row.expiresAt <= now) return "expired";
  if (row.revokedAt) return "rotating";
  return "active";
}

/** The public shape of a key: never the hash, never the raw key. */
export function keyView(row: ApiKeyRow, now: Date) {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    permissions: [...effectivePermissions(row.role, row.permissions)],
    narrowed: row.permissions !== null,
    display_prefix: row.displayPrefix,
    status: keyStatus(row, now),
    metadata: row.metadata,
    created_by: row.createdBy,
    operator_id: row.operatorId,
    rotated_from: row.rotatedFrom,
    created_at: row.createdAt.toISOString(),
    expires_at: row.expiresAt?.toISOString() ?? null,
    revoked_at: row.revokedAt?.toISOString() ?? null,
    last_used_at: row.lastUsedAt?.toISOString() ?? null,
  };
}

/** Nobody hands out more than they hold: every permission of the new key must be the actor's. */
function assertWithinActor(actor: Actor, granted: Set<Permission>) {
  if (!actor) return;
  const missing = [...granted].filter((p) => !actor.permissions.has(p));
  if (missing.length > 0) {
    throw new ApiError(403, "privilege_escalation", "a key cannot be given permissions its creator does not hold", { missing });
  }
}

export interface CreateKeyInput {
  name: string;
  role: Role;
  permissions?: Permission[];
  metadata?: Record<string, unknown>;
  expiresAt?: Date;
  /** the person who will hold the key */
  operatorId?: string;
}

export async function createKey(deps: KeyServiceDeps, actor: Actor, input: CreateKeyInput, meta: RequestMeta) {
  const now = deps.clock.now();
  const roleGrants = ROLE_PERMISSIONS[input.role];
  if (input.permissions) {
    const outside = input.permissions.filter((p) => !roleGrants.includes(p));
    if (outside.length > 0) {
      throw badRequest("permissions_not_in_role", `a ${input.role} key can only be narrowed to the role's permissions`, { outside });
    }
  }
  if (input.expiresAt && input.expiresAt <= now) throw badRequest("invalid_expiry", "expires_at must be in the future");
  const permissions = input.permissions ? [...new Set(input.permissions)] : null;
  assertWithinActor(actor, effectivePermissions(input.role, permissions));
  return deps.db.transaction(async (tx) => {
    if (input.operatorId) {
      // Locked so the person cannot be disabled between this check and the key's insert.
      const [person] = await tx.select().from(operators).where(eq(operators.id, input.operatorId)).for("update").limit(1);
      if (!person) throw new ApiError(422, "unknown_operator", "no person has this operator_id", { operator_id: input.operatorId });
      assertKeyFitsPerson(person, { role: input.role, permissions });
    }
    const created = await createApiKey(
      tx,
      {
        name: input.name,
        role: input.role,
        permissions,
        metadata: input.metadata ?? {},
        createdBy: actor?.keyId ?? null,
        expiresAt: input.expiresAt ?? null,
        operatorId: input.operatorId ?? null,
      },
      now,
    );
    await deps.audit.write(tx, { ...meta, action: "key.create", outcome: "success", actorKeyId: actor?.keyId, targetId: created.row.id });
    return created;
  });
}

export interface KeyListQuery {
  limit: number;
  cursor?: string;
  role?: Role;
  status?: KeyStatus;
  operatorId?: string;
}

export async function listKeys(db: Database, query: KeyListQuery, now: Date) {
  const byStatus: Record<KeyStatus, SQL | undefined> = {
    revoked: and(isNotNull(apiKeys.revokedAt), lte(apiKeys.revokedAt, now)),
    expired: and(or(isNull(apiKeys.revokedAt), gt(apiKeys.revokedAt, now)), isNotNull(apiKeys.expiresAt), lte(apiKeys.expiresAt, now)),
    rotating: and(gt(apiKeys.revokedAt, now), or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, now))),
    active: and(isNull(apiKeys.revokedAt), or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, now))),
  };
  const rows = await db
    .select()
    .from(apiKeys)
    .where(
      and(
        afterCursor(apiKeys.createdAt, apiKeys.id, query.cursor),
        query.role ? eq(apiKeys.role, query.role) : undefined,
        query.status ? byStatus[query.status] : undefined,
        query.operatorId ? eq(apiKeys.operatorId, query.operatorId) : undefined,
      ),
    )
    .orderBy(desc(apiKeys.createdAt), desc(apiKeys.id))
    .limit(query.limit + 1);
  return toPage(rows, query.limit, (row) => keyView(row, now));
}

export async function getKey(db: Database, id: string): Promise<ApiKeyRow> {
  const row = await findApiKeyById(db, id);
  if (!row) throw notFound("no such key");
  return row;
}

/** Revokes at once; a key still in its rotation grace period is cut short. */
export async function revokeKey(deps: KeyServiceDeps, actor: Actor, id: string, meta: RequestMeta): Promise<ApiKeyRow> {
  const now = deps.clock.now();
  const row = await deps.db.transaction(async (tx) => {
    const [updated] = await tx
      .update(apiKeys)
      .set({ revokedAt: now })
      .where(and(eq(apiKeys.id, id), or(isNull(apiKeys.revokedAt), gt(apiKeys.revokedAt, now))))
      .returning();
    if (!updated) {
      await getKey(tx, id); // 404 when it does not exist
      throw conflict("key_revoked", "the key is already revoked");
    }
    await deps.audit.write(tx, { ...meta, action: "key.revoke", outcome: "success", actorKeyId: actor?.keyId, targetId: id });
    return updated;
  });
  await deps.forgetKey?.(row);
  return row;
}

export interface RotateInput {
  /** how long the old key keeps working; 0 ends it at once */
  graceSeconds: number;
  /** the new key's expiry; defaults to the old key's */
  expiresAt?: Date | null;
}

/** A new key with the same name, role, permissions and metadata; the old one ends after the grace period. */
export async function rotateKey(deps: KeyServiceDeps, actor: Actor, id: string, input: RotateInput, meta: RequestMeta) {
  const now = deps.clock.now();
  if (actor && !actor.permissions.has("keys:revoke")) {
    throw new ApiError(403, "forbidden", "rotating a key also revokes it: this needs the keys:revoke permission", {
      required: "keys:revoke",
    });
  }
  if (input.expiresAt && input.expiresAt <= now) throw badRequest("invalid_expiry", "expires_at must be in the future");
  const result = await deps.db.transaction(async (tx) => {
    const [old] = await tx.select().from(apiKeys).where(eq(apiKeys.id, id)).for("update").limit(1);
    if (!old) throw notFound("no such key");
    const status = keyStatus(old, now);
    if (status !== "active") throw conflict(`key_${status}`, `only an active key can be rotated; this one is ${status}`);
    assertWithinActor(actor, effectivePermissions(old.role, old.permissions));
    const created = await createApiKey(
      tx,
      {
        name: old.name,
        role: old.role,
        permissions: old.permissions,
        metadata: old.metadata,
        createdBy: actor?.keyId ?? null,
        expiresAt: input.expiresAt === undefined ? old.expiresAt : input.expiresAt,
        rotatedFrom: old.id,
        operatorId: old.operatorId,
      },
      now,
    );
    const [retired] = await tx
      .update(apiKeys)
      .set({ revokedAt: new Date(now.getTime() + input.graceSeconds * 1000) })
      .where(eq(apiKeys.id, old.id))
      .returning();
    await deps.audit.write(tx, {
      ...meta,
      action: "key.rotate",
      outcome: "success",
      actorKeyId: actor?.keyId,
      targetId: old.id,
      reason: `replaced by ${created.row.id}`,
    });
    return { ...created, old: retired! };
  });
  await deps.forgetKey?.(result.old);
  return result;
}
