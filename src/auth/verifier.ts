import { eq } from "drizzle-orm";
import { createTtlCache } from "../cache/ttl-cache";
import { constantTimeEqualText } from "../crypto/hash";
import type { Database } from "../db/client";
import { type ApiKeyRow, apiKeys, operatorSessions } from "../db/schema";
import type { Clock } from "../deps";
import { ApiError } from "../http/errors";
import type { Logger } from "../observability/logger";
import { findApiKeyByHash, findApiKeyById } from "./api-keys";
import { hashApiKeySync, isWellFormedApiKey, KEY_PREFIX } from "./key-format";
import { effectivePermissions, type Permission, type Principal } from "./rbac";
import { type TokenClaims, TokenRejected, type TokenSigner } from "./tokens";

/** A 401 that also names the key involved (when one was identified), for the audit trail. */
export class AuthFailure extends ApiError {
  constructor(
    code: string,
    message: string,
    readonly actorKeyId?: string,
  ) {
    super(401, code, message, undefined, { "WWW-Authenticate": `Bearer realm="arbiter", error="invalid_token"` });
  }
}

/** `last_used_at` is written at most this often per key, off the request path. */
export const LAST_USED_INTERVAL_MS = 60_000;

type SessionRow = typeof operatorSessions.$inferSelect;

/** A principal that presented a credential (an API key or a service token). */
export type CredentialPrincipal = Principal & { via: "api_key" | "token" };

export interface CredentialVerifier {
  /**
   * An API key or a JWT service token → the principal, or an AuthFailure. `beforeSlowPath` runs
   * once before anything not answered from this replica's cache (a database lookup, a signature
   * check): failed-authentication throttling hooks in there, since guessing never hits the cache.
   */
  verify(raw: string, beforeSlowPath?: () => Promise<void>): Promise<CredentialPrincipal>;
  /** Drops a key from this replica's cache at once (revocation, rotation, or a broadcast of one). */
  forgetKey(id: string): void;
  forgetSession(jti: string): void;
}

/**
 * Credential verification with an in-process cache of key and session lookups. A cached entry
 * lives `ttlMs`: the bound on how long another replica may still accept a key revoked elsewhere
 * when the revocation broadcast (src/auth/revocations.ts) does not reach it.
 * Expiry and revocation times are checked on every request, so a future `revoked_at` (rotation
 * grace) ends exactly on time even for a cached key.
 */
export function createVerifier(deps: {
  db: Database;
  clock: Clock;
  logger: Logger;
  signer: TokenSigner;
  ttlMs: number;
  /** seconds of leeway on `exp`, as for a fresh verification */
  clockToleranceSeconds: number;
}): CredentialVerifier {
  const now = () => deps.clock.now().getTime();
  const keysByHash = createTtlCache<ApiKeyRow>({ ttlMs: deps.ttlMs, now });
  const keysById = createTtlCache<ApiKeyRow>({ ttlMs: deps.ttlMs, now });
  const sessions = createTtlCache<SessionRow>({ ttlMs: deps.ttlMs, now });
  // Verified token claims, keyed by the token's SHA-256 (the token itself is not kept).
  const verifiedTokens = createTtlCache<TokenClaims>({ ttlMs: deps.ttlMs, now });
  const lastTouched = new Map<string, number>();
  const keyPrincipals = new WeakMap<ApiKeyRow, CredentialPrincipal>();
  const tokenPrincipals = new WeakMap<SessionRow, { key: ApiKeyRow; principal: CredentialPrincipal }>();
  // Counts revocations seen. A row read before one arrived may predate it (the read raced the
  // revoking transaction), so it answers its own request but is not cached.
  let revocationsSeen = 0;

  const remember = (row: ApiKeyRow) => {
    keysByHash.set(row.keyHash, row);
    keysById.set(row.id, row);
  };

  const assertUsable = (row: ApiKeyRow) => {
    const at = now();
    if (row.revokedAt && row.revokedAt.getTime() <= at) throw new AuthFailure("key_revoked", "the API key has been revoked", row.id);
    if (row.expiresAt && row.expiresAt.getTime() <= at) throw new AuthFailure("key_expired", "the API key has expired", row.id);
  };

  /**
   * The session row, not the signed claims, bounds a token: a token signed with a leaked signing
   * key (stored in the database when TOKEN_SIGNING_KEY is unset) for an existing session cannot
   * name another key or outlive the row. Checked on every request, cached or not.
   */
  const assertMatchesSession = (claims: TokenClaims, session: SessionRow) => {
    if (session.keyId !== claims.sub || claims.exp * 1000 > session.expiresAt.getTime()) {
      throw new AuthFailure("invalid_token", "the token is not known to this server");
    }
    if (session.revokedAt && session.revokedAt.getTime() <= now()) {
      throw new AuthFailure("token_revoked", "the token has been revoked", session.keyId);
    }
    if (session.expiresAt.getTime() + deps.clockToleranceSeconds * 1000 <= now()) {
      throw new AuthFailure("token_expired", "the token has expired", session.keyId);
    }
  };

  const touch = (row: ApiKeyRow) => {
    const at = now();
    const last = lastTouched.get(row.id) ?? row.lastUsedAt?.getTime() ?? 0;
    if (at - last < LAST_USED_INTERVAL_MS) return;
    lastTouched.set(row.id, at);
    deps.db
      .update(apiKeys)
      .set({ lastUsedAt: new Date(at) })
      .where(eq(apiKeys.id, row.id))
      .catch((error: unknown) => deps.logger.warn("last_used_at update failed", { key_id: row.id, error: (error as Error).message }));
  };

  const principalFor = (row: ApiKeyRow, permissions: Set<Permission>, tokenId?: string): CredentialPrincipal => {
    const ends = [row.expiresAt, row.revokedAt].filter((at): at is Date => at !== null).map((at) => at.getTime());
    return {
      keyId: row.id,
      keyName: row.name,
      personId: row.operatorId ?? row.id,
      role: row.role,
      permissions,
      via: tokenId ? "token" : "api_key",
      ...(tokenId ? { tokenId } : {}),
      ...(ends.length > 0 ? { validUntil: new Date(Math.min(...ends)) } : {}),
    };
  };

  async function verifyApiKey(raw: string, slowPath: () => Promise<void>): Promise<CredentialPrincipal> {
    const hash = hashApiKeySync(raw);
    let row = keysByHash.get(hash);
    if (!row) {
      await slowPath();
      if (!isWellFormedApiKey(raw)) throw new AuthFailure("invalid_key", "the API key is malformed");
      const seen = revocationsSeen;
      row = await findApiKeyByHash(deps.db, hash);
      // Unknown and wrong keys end here alike; the comparison below is constant-time either way.
      if (!row) throw new AuthFailure("invalid_key", "the API key is not valid");
      if (seen === revocationsSeen) remember(row);
    }
    if (!constantTimeEqualText(row.keyHash, hash)) throw new AuthFailure("invalid_key", "the API key is not valid");
    assertUsable(row);
    touch(row);
    // One principal per cached row: a request by a cached key allocates no permission set.
    let principal = keyPrincipals.get(row);
    if (!principal) keyPrincipals.set(row, (principal = principalFor(row, effectivePermissions(row.role, row.permissions))));
    return principal;
  }

  async function verifyToken(raw: string, slowPath: () => Promise<void>): Promise<CredentialPrincipal> {
    const digest = hashApiKeySync(raw);
    let claims = verifiedTokens.get(digest);
    if (!claims) {
      await slowPath();
      try {
        claims = await deps.signer.verify(raw);
      } catch (error) {
        if (error instanceof TokenRejected) throw new AuthFailure(error.code, error.message);
        throw error;
      }
      verifiedTokens.set(digest, claims);
    } else if ((claims.exp + deps.clockToleranceSeconds) * 1000 <= now()) {
      verifiedTokens.delete(digest);
      throw new AuthFailure("token_expired", "the token has expired");
    }
    let session = sessions.get(claims.jti);
    if (!session) {
      await slowPath();
      const seen = revocationsSeen;
      [session] = await deps.db.select().from(operatorSessions).where(eq(operatorSessions.id, claims.jti)).limit(1);
      if (!session) throw new AuthFailure("invalid_token", "the token is not known to this server");
      if (seen === revocationsSeen) sessions.set(claims.jti, session);
    }
    assertMatchesSession(claims, session);
    let key = keysById.get(session.keyId);
    if (!key) {
      await slowPath();
      const seen = revocationsSeen;
      key = await findApiKeyById(deps.db, session.keyId);
      if (!key) throw new AuthFailure("invalid_token", "the token's key no longer exists");
      if (seen === revocationsSeen) remember(key);
    }
    // Revoking (or expiring) the parent key ends its tokens too.
    assertUsable(key);
    touch(key);
    // One principal per cached (session, key) pair, as for keys: no permission set built per request.
    const memo = tokenPrincipals.get(session);
    if (memo?.key === key) return memo.principal;
    const allowed = effectivePermissions(key.role, key.permissions);
    const granted = new Set(session.permissions.filter((p): p is Permission => allowed.has(p as Permission)));
    const principal = principalFor(key, granted, claims.jti);
    tokenPrincipals.set(session, { key, principal });
    return principal;
  }

  return {
    async verify(raw, beforeSlowPath) {
      let entered = false;
      const slowPath = async () => {
        if (entered) return;
        entered = true;
        await beforeSlowPath?.();
      };
      if (raw.startsWith(KEY_PREFIX)) return verifyApiKey(raw, slowPath);
      // A token already verified here answers from memory, as a cached key does: no throttle check.
      if (raw.split(".").length === 3) return verifyToken(raw, slowPath);
      await slowPath();
      throw new AuthFailure("invalid_key", "the credential is neither an API key nor a service token");
    },
    forgetKey(id) {
      revocationsSeen++;
      keysById.delete(id);
      // Broadcasts name the key by id only, so the by-hash entry is found by its row.
      keysByHash.deleteWhere((row) => row.id === id);
    },
    forgetSession(jti) {
      revocationsSeen++;
      sessions.delete(jti);
    },
  };
}
