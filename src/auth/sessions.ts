import { and, eq, isNull } from "drizzle-orm";
import type { Database } from "../db/client";
import { uuidv7 } from "../db/ids";
import { operatorSessions } from "../db/schema";
import type { Clock } from "../deps";
import { ApiError, conflict, notFound } from "../http/errors";
import type { AuthAudit, RequestMeta } from "./audit";
import type { Permission, Principal } from "./rbac";
import type { TokenConfig, TokenSigner } from "./tokens";

/** Service tokens: one `operator_sessions` row per jti, so each can be revoked before it expires. */
export interface SessionDeps {
  db: Database;
  clock: Clock;
  audit: AuthAudit;
  signer: TokenSigner;
  config: TokenConfig;
  /** as KeyServiceDeps.forgetKey, for a revoked token */
  forgetSession?: (jti: string) => Promise<void>;
}

export interface IssueInput {
  ttlSeconds?: number;
  /** narrows the token below the caller's own permissions; never widens */
  permissions?: Permission[];
}

export async function issueToken(deps: SessionDeps, principal: Principal, input: IssueInput, meta: RequestMeta) {
  if (principal.via === "token") {
    // A token cannot mint tokens: otherwise one leaked token could be extended forever.
    throw new ApiError(403, "api_key_required", "service tokens are issued only to API keys");
  }
  const requested = input.permissions ? [...new Set(input.permissions)] : [...principal.permissions];
  const missing = requested.filter((p) => !principal.permissions.has(p));
  if (missing.length > 0) {
    throw new ApiError(403, "privilege_escalation", "a token cannot carry permissions its key does not hold", { missing });
  }
  const issuedAt = new Date(Math.floor(deps.clock.now().getTime() / 1000) * 1000);
  // A token never outlives its key: it ends at the key's expiry or rotation grace, whichever is first.
  const keyLeftSeconds = principal.validUntil
    ? Math.max(0, Math.floor((principal.validUntil.getTime() - issuedAt.getTime()) / 1000))
    : Number.POSITIVE_INFINITY;
  const ttlSeconds = Math.min(input.ttlSeconds ?? deps.config.TOKEN_TTL_SECONDS, deps.config.TOKEN_MAX_TTL_SECONDS, keyLeftSeconds);
  const expiresAt = new Date(issuedAt.getTime() + ttlSeconds * 1000);
  const jti = uuidv7(issuedAt.getTime());
  const token = await deps.signer.sign({ sub: principal.keyId, jti, role: principal.role, permissions: requested }, issuedAt, expiresAt);
  await deps.db.transaction(async (tx) => {
    await tx.insert(operatorSessions).values({
      id: jti,
      keyId: principal.keyId,
      permissions: requested,
      createdAt: issuedAt,
      expiresAt,
      address: meta.address ?? null,
      userAgent: meta.userAgent?.slice(0, 512) ?? null,
    });
    await deps.audit.write(tx, { ...meta, action: "token.issue", outcome: "success", actorKeyId: principal.keyId, targetId: jti });
  });
  return { token, jti, expiresAt, ttlSeconds, permissions: requested };
}

/**
 * Revokes a token by jti. Its own key may revoke it; so may a holder of keys:revoke. Anyone else
 * gets the same 404 as for a token that does not exist.
 */
export async function revokeToken(deps: SessionDeps, actor: Principal, jti: string, meta: RequestMeta) {
  const now = deps.clock.now();
  const row = await deps.db.transaction(async (tx) => {
    const [session] = await tx.select().from(operatorSessions).where(eq(operatorSessions.id, jti)).limit(1);
    if (!session || (session.keyId !== actor.keyId && !actor.permissions.has("keys:revoke"))) throw notFound("no such token");
    const [updated] = await tx
      .update(operatorSessions)
      .set({ revokedAt: now })
      .where(and(eq(operatorSessions.id, jti), isNull(operatorSessions.revokedAt)))
      .returning();
    if (!updated) throw conflict("token_revoked", "the token is already revoked");
    await deps.audit.write(tx, { ...meta, action: "token.revoke", outcome: "success", actorKeyId: actor.keyId, targetId: jti });
    return updated;
  });
  await deps.forgetSession?.(jti);
  return row;
}
