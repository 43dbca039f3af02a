import { and, desc, eq, gt, isNotNull, isNull, ne, or, type SQL } from "drizzle-orm";
import type { RequestMeta } from "../auth/audit";
import { type Actor, type KeyServiceDeps, keyStatus } from "../auth/keys-service";
import { effectivePermissions, type Permission, ROLE_PERMISSIONS } from "../auth/rbac";
import type { Database } from "../db/client";
import { errorCodes } from "../db/errors";
import { uuidv7 } from "../db/ids";
import { type ApiKeyRow, apiKeys, type OperatorRow, operators, type Role } from "../db/schema";
import { ApiError, conflict, notFound } from "../http/errors";
import { afterCursor, toPage } from "../http/pagination";

export const OPERATOR_STATUSES = ["active", "disabled"] as const;
export type OperatorStatus = (typeof OPERATOR_STATUSES)[number];

/** The public shape of a person. */
export function operatorView(row: OperatorRow) {
  return {
    id: row.id,
    name: row.name,
    email: row.email,
    slack_user_id: row.slackUserId,
    role: row.role,
    status: (row.disabledAt ? "disabled" : "active") as OperatorStatus,
    created_by: row.createdBy,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
    disabled_at: row.disabledAt?.toISOString() ?? null,
  };
}

/** The permissions in `granted` that the person's role does not include: a key of theirs may hold none. */
export function permissionsBeyondPerson(person: Pick<OperatorRow, "role">, granted: Iterable<Permission>): Permission[] {
  const allowed: readonly Permission[] = ROLE_PERMISSIONS[person.role];
  return [...granted].filter((p) => !allowed.includes(p));
}

/** A key may be given to a person only when it is active, they are, and it holds nothing their role does not. */
export function assertKeyFitsPerson(person: OperatorRow, key: Pick<ApiKeyRow, "role" | "permissions">) {
  if (person.disabledAt)
    throw conflict("operator_disabled", "the person is disabled; their keys are revoked and no key can be given to them");
  const beyond = permissionsBeyondPerson(person, effectivePermissions(key.role, key.permissions));
  if (beyond.length > 0) {
    throw new ApiError(422, "key_exceeds_person_role", `the key holds permissions a ${person.role} person does not have`, { beyond });
  }
}

/** Nobody records a person as holding more than they hold themselves. */
function assertRoleWithinActor(actor: Actor, role: Role) {
  if (!actor) return;
  const missing = ROLE_PERMISSIONS[role].filter((p) => !actor.permissions.has(p));
  if (missing.length > 0) {
    throw new ApiError(403, "privilege_escalation", `a ${role} person holds permissions you do not hold`, { missing });
  }
}

interface ContactFields {
  email?: string | null | undefined;
  slackUserId?: string | null | undefined;
}

/**
 * Runs a write that may clash with another person's email or Slack id: the clash is a 409 naming
 * the field, whether seen before the write or raised by the unique index in a race.
 */
async function withUniqueContacts<T>(db: Database, fields: ContactFields, self: string | null, write: () => Promise<T>): Promise<T> {
  const clash = async () => {
    const same = [
      fields.email ? eq(operators.email, fields.email) : undefined,
      fields.slackUserId ? eq(operators.slackUserId, fields.slackUserId) : undefined,
    ].filter((c): c is SQL => c !== undefined);
    if (same.length === 0) return undefined;
    const [row] = await db
      .select()
      .from(operators)
      .where(and(or(...same), self ? ne(operators.id, self) : undefined))
      .limit(1);
    if (!row) return undefined;
    const field = fields.email && row.email === fields.email ? "email" : "slack_user_id";
    return conflict("operator_exists", `another person already has this ${field}`, { field, operator_id: row.id });
  };
  const before = await clash();
  if (before) throw before;
  try {
    return await write();
  } catch (error) {
    if (!errorCodes(error).includes("23505")) throw error;
    throw (await clash()) ?? conflict("operator_exists", "another person already has this email or Slack id");
  }
}

export interface CreateOperatorInput {
  name: string;
  role: Role;
  email?: string | undefined;
  slackUserId?: string | undefined;
}

export async function createOperator(deps: KeyServiceDeps, actor: Actor, input: CreateOperatorInput, meta: RequestMeta) {
  assertRoleWithinActor(actor, input.role);
  const now = deps.clock.now();
  return withUniqueContacts(deps.db, input, null, () =>
    deps.db.transaction(async (tx) => {
      const [row] = await tx
        .insert(operators)
        .values({
          id: uuidv7(now.getTime()),
          name: input.name,
          role: input.role,
          email: input.email ?? null,
          slackUserId: input.slackUserId ?? null,
          createdBy: actor?.keyId ?? null,
          createdAt: now,
          updatedAt: now,
        })
        .returning();
      await deps.audit.write(tx, { ...meta, action: "operator.create", outcome: "success", actorKeyId: actor?.keyId, targetId: row!.id });
      return row!;
    }),
  );
}

export interface OperatorListQuery {
  limit: number;
  cursor?: string | undefined;
  role?: Role | undefined;
  status?: OperatorStatus | undefined;
}

export async function listOperators(db: Database, query: OperatorListQuery) {
  const rows = await db
    .select()
    .from(operators)
    .where(
      and(
        afterCursor(operators.createdAt, operators.id, query.cursor),
        query.role ? eq(operators.role, query.role) : undefined,
        query.status === "active"
          ? isNull(operators.disabledAt)
          : query.status === "disabled"
            ? isNotNull(operators.disabledAt)
            : undefined,
      ),
    )
    .orderBy(desc(operators.createdAt), desc(operators.id))
    .limit(query.limit + 1);
  return toPage(rows, query.limit, operatorView);
}

export async function getOperator(db: Database, id: string): Promise<OperatorRow> {
  const [row] = await db.select().from(operators).where(eq(operators.id, id)).limit(1);
  if (!row) throw notFound("no such person");
  return row;
}

export interface UpdateOperatorInput {
  name?: string | undefined;
  role?: Role | undefined;
  /** null clears it */
  email?: string | null | undefined;
  slackUserId?: string | null | undefined;
}

/**
 * Changes a person's details. Lowering their role is refused while one of their active keys holds
 * a permission the new role lacks: revoke or replace that key first, so no key outranks its holder.
 */
export async function updateOperator(deps: KeyServiceDeps, actor: Actor, id: string, input: UpdateOperatorInput, meta: RequestMeta) {
  if (input.role) assertRoleWithinActor(actor, input.role);
  const now = deps.clock.now();
  return withUniqueContacts(deps.db, input, id, () =>
    deps.db.transaction(async (tx) => {
      const [current] = await tx.select().from(operators).where(eq(operators.id, id)).for("update").limit(1);
      if (!current) throw notFound("no such person");
      assertRoleWithinActor(actor, current.role);
      if (input.role && input.role !== current.role) {
        const keys = await tx.select().from(apiKeys).where(eq(apiKeys.operatorId, id));
        const outranking = keys
          .filter((key) => keyStatus(key, now) !== "revoked" && keyStatus(key, now) !== "expired")
          .filter((key) => permissionsBeyondPerson({ role: input.role! }, effectivePermissions(key.role, key.permissions)).length > 0)
          .map((key) => key.id);
        if (outranking.length > 0) {
          throw conflict("keys_exceed_role", `some of this person's keys hold permissions a ${input.role} does not have`, {
            key_ids: outranking,
          });
        }
      }
      const [row] = await tx
        .update(operators)
        .set({
          ...(input.name !== undefined ? { name: input.name } : {}),
          ...(input.role !== undefined ? { role: input.role } : {}),
          ...(input.email !== undefined ? { email: input.email } : {}),
          ...(input.slackUserId !== undefined ? { slackUserId: input.slackUserId } : {}),
          updatedAt: now,
        })
        .where(eq(operators.id, id))
        .returning();
      const changed = Object.keys(input).filter((field) => input[field as keyof UpdateOperatorInput] !== undefined);
      await deps.audit.write(tx, {
        ...meta,
        action: "operator.update",
        outcome: "success",
        actorKeyId: actor?.keyId,
        targetId: id,
        reason: `changed: ${changed.join(", ") || "nothing"}`,
      });
      return row!;
    }),
  );
}

/** Disables a person and revokes every key they hold (and with the keys, their tokens and console sessions) at once. */
export async function disableOperator(deps: KeyServiceDeps, actor: Actor, id: string, meta: RequestMeta) {
  const now = deps.clock.now();
  const { row, revoked } = await deps.db.transaction(async (tx) => {
    const [current] = await tx.select().from(operators).where(eq(operators.id, id)).for("update").limit(1);
    if (!current) throw notFound("no such person");
    if (current.disabledAt) throw conflict("operator_disabled", "the person is already disabled");
    assertRoleWithinActor(actor, current.role);
    const [row] = await tx.update(operators).set({ disabledAt: now, updatedAt: now }).where(eq(operators.id, id)).returning();
    const revoked = await tx
      .update(apiKeys)
      .set({ revokedAt: now })
      .where(and(eq(apiKeys.operatorId, id), or(isNull(apiKeys.revokedAt), gt(apiKeys.revokedAt, now))))
      .returning();
    await deps.audit.write(tx, { ...meta, action: "operator.disable", outcome: "success", actorKeyId: actor?.keyId, targetId: id });
    for (const key of revoked) {
      await deps.audit.write(tx, {
        ...meta,
        action: "key.revoke",
        outcome: "success",
        actorKeyId: actor?.keyId,
        targetId: key.id,
        reason: `its person ${id} was disabled`,
      });
    }
    return { row: row!, revoked };
  });
  for (const key of revoked) await deps.forgetKey?.(key);
  return { row, revokedKeyIds: revoked.map((key) => key.id) };
}

/**
 * Gives an existing key to a person, e.g. after the upgrade that made every person-held key its own
 * person: approvals recorded afterwards count for the person. Already recorded approvals keep the
 * person they were made as.
 */
export async function assignKey(deps: KeyServiceDeps, actor: Actor, operatorId: string, keyId: string, meta: RequestMeta) {
  const now = deps.clock.now();
  const row = await deps.db.transaction(async (tx) => {
    const [person] = await tx.select().from(operators).where(eq(operators.id, operatorId)).for("update").limit(1);
    if (!person) throw notFound("no such person");
    const [key] = await tx.select().from(apiKeys).where(eq(apiKeys.id, keyId)).for("update").limit(1);
    if (!key) throw notFound("no such key");
    const status = keyStatus(key, now);
    if (status !== "active") throw conflict(`key_${status}`, `only an active key can be given to a person; this one is ${status}`);
    assertKeyFitsPerson(person, key);
    if (actor) {
      const missing = [...effectivePermissions(key.role, key.permissions)].filter((p) => !actor.permissions.has(p));
      if (missing.length > 0) throw new ApiError(403, "privilege_escalation", "the key holds permissions you do not hold", { missing });
    }
    const [updated] = await tx.update(apiKeys).set({ operatorId }).where(eq(apiKeys.id, keyId)).returning();
    await deps.audit.write(tx, {
      ...meta,
      action: "key.assign",
      outcome: "success",
      actorKeyId: actor?.keyId,
      targetId: keyId,
      reason: `to person ${operatorId}${key.operatorId ? ` (was ${key.operatorId})` : ""}`,
    });
    return updated!;
  });
  // Cached principals carry the person: every replica must read the key again.
  await deps.forgetKey?.(row);
  return row;
}
