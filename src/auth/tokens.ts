import { desc, gt, isNull, or, sql } from "drizzle-orm";
import {
  type CryptoKey,
  calculateJwkThumbprint,
  errors,
  exportJWK,
  generateKeyPair,
  importJWK,
  importPKCS8,
  importSPKI,
  type JWK,
  type JWTPayload,
  jwtVerify,
  SignJWT,
} from "jose";
import type { Config } from "../config";
import type { Database } from "../db/client";
import { signingKeys } from "../db/schema";
import type { Clock } from "../deps";

/**
 * JWT service tokens: short-lived, asymmetric (EdDSA/Ed25519 by default, ES256 accepted for
 * configured keys), with a `kid` so keys can rotate while older tokens still verify.
 */
export const TOKEN_ALGORITHMS = ["EdDSA", "ES256"] as const;
export type TokenAlgorithm = (typeof TOKEN_ALGORITHMS)[number];
export const TOKEN_TYPE = "at+jwt";

export interface SigningKey {
  kid: string;
  alg: TokenAlgorithm;
  /** null for keys that only verify (a previous configured key given as a public key) */
  privateKey: CryptoKey | null;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

export interface KeySet {
  signer: SigningKey;
  byKid: Map<string, SigningKey>;
}

export type TokenConfig = Pick<
  Config,
  | "TOKEN_ISSUER"
  | "TOKEN_AUDIENCE"
  | "TOKEN_TTL_SECONDS"
  | "TOKEN_MAX_TTL_SECONDS"
  | "TOKEN_CLOCK_TOLERANCE_SECONDS"
  | "TOKEN_SIGNING_KEY"
  | "TOKEN_PREVIOUS_SIGNING_KEY"
>;

/** How often a replica re-reads the stored signing keys, to pick up a rotation made elsewhere. */
export const KEY_SET_REFRESH_MS = 60_000;
// Only one replica generates or rotates at a time (PostgreSQL advisory lock, transaction-scoped).
const SIGNING_KEY_LOCK_ID = 7_281_944_211;

export class SigningKeyError extends Error {
  override name = "SigningKeyError";
}

const algorithmOf = (jwk: JWK): TokenAlgorithm => {
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") return "EdDSA";
  if (jwk.kty === "EC" && jwk.crv === "P-256") return "ES256";
  throw new SigningKeyError("signing keys must be Ed25519 (EdDSA) or P-256 (ES256)");
};

const publicPart = (jwk: JWK): JWK => {
  const { d: _d, ...rest } = jwk;
  const { kty, crv, x, y } = rest;
  return y === undefined ? { kty, crv, x } : { kty, crv, x, y };
};

async function fromJwk(jwk: JWK, kid?: string): Promise<SigningKey> {
  const alg = algorithmOf(jwk);
  const publicJwk = publicPart(jwk);
  const resolvedKid = kid ?? (await calculateJwkThumbprint(publicJwk));
  return {
    kid: resolvedKid,
    alg,
    privateKey: jwk.d ? ((await importJWK(jwk, alg)) as CryptoKey) : null,
    publicKey: (await importJWK(publicJwk, alg)) as CryptoKey,
    publicJwk: { ...publicJwk, kid: resolvedKid, alg, use: "sig" },
  };
}

/** A key from configuration: a PEM (PKCS#8 private or SPKI public) or a JWK as JSON. */
export async function parseConfiguredKey(text: string, variable: string): Promise<SigningKey> {
  const value = text.replaceAll("\\n", "\n").trim();
  try {
    if (value.startsWith("-----BEGIN")) {
      const isPublic = value.includes("PUBLIC KEY");
      for (const alg of TOKEN_ALGORITHMS) {
        try {
          const key = isPublic ? await importSPKI(value, alg, { extractable: true }) : await importPKCS8(value, alg, { extractable: true });
          return await fromJwk(await exportJWK(key));
        } catch {
          // try the next algorithm
        }
      }
      throw new SigningKeyError("not an Ed25519 or P-256 key");
    }
    return await fromJwk(JSON.parse(value) as JWK);
  } catch (error) {
    // The message names the variable, never its content: it is a secret.
    const why = error instanceof SigningKeyError ? error.message : "not a PEM key or a JSON Web Key";
    throw new SigningKeyError(`${variable}: ${why}`);
  }
}

async function generateStoredKey(db: Database, now: Date): Promise<void> {
  const { privateKey } = await generateKeyPair("EdDSA", { extractable: true });
  const jwk = await exportJWK(privateKey);
  const publicJwk = publicPart(jwk);
  await db.insert(signingKeys).values({
    kid: await calculateJwkThumbprint(publicJwk),
    alg: "EdDSA",
    privateJwk: jwk as Record<string, unknown>,
    publicJwk: publicJwk as Record<string, unknown>,
    createdAt: now,
  });
}

/** A retired key's public half stays published until every token it signed has expired. */
const retentionMs = (config: TokenConfig) =>
  (config.TOKEN_MAX_TTL_SECONDS + config.TOKEN_CLOCK_TOLERANCE_SECONDS) * 1000 + 2 * KEY_SET_REFRESH_MS;

/**
 * The signing key and every key that still verifies. With no configured key, the newest stored
 * active key signs; an empty table gets one generated key (once, whichever replica comes first).
 */
export async function loadKeySet(db: Database, config: TokenConfig, now: Date): Promise<KeySet> {
  const configured = config.TOKEN_SIGNING_KEY ? await parseConfiguredKey(config.TOKEN_SIGNING_KEY, "TOKEN_SIGNING_KEY") : undefined;
  if (configured && !configured.privateKey) throw new SigningKeyError("TOKEN_SIGNING_KEY: must be a private key");
  const previous = config.TOKEN_PREVIOUS_SIGNING_KEY
    ? await parseConfiguredKey(config.TOKEN_PREVIOUS_SIGNING_KEY, "TOKEN_PREVIOUS_SIGNING_KEY")
    : undefined;

  const readStored = () =>
    db
      .select()
      .from(signingKeys)
      .where(or(isNull(signingKeys.retiredAt), gt(signingKeys.retiredAt, new Date(now.getTime() - retentionMs(config)))))
      .orderBy(desc(signingKeys.createdAt));
  let stored = await readStored();
  if (!configured && !stored.some((row) => row.retiredAt === null)) {
    await db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(${SIGNING_KEY_LOCK_ID})`);
      const [active] = await tx.select({ kid: signingKeys.kid }).from(signingKeys).where(isNull(signingKeys.retiredAt)).limit(1);
      if (!active) await generateStoredKey(tx, now);
    });
    stored = await readStored();
  }

  const byKid = new Map<string, SigningKey>();
  const storedKeys = await Promise.all(stored.map((row) => fromJwk(row.privateJwk as JWK, row.kid)));
  for (const key of storedKeys) byKid.set(key.kid, key);
  if (previous) byKid.set(previous.kid, previous);
  if (configured) byKid.set(configured.kid, configured);
  const activeStored = stored.findIndex((row) => row.retiredAt === null);
  const signer = configured ?? storedKeys[activeStored];
  if (!signer) throw new SigningKeyError("no signing key available");
  return { signer, byKid };
}

/** Retires the active stored key(s) and generates a new one; returns the new kid. */
export async function rotateSigningKey(db: Database, now: Date): Promise<string> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${SIGNING_KEY_LOCK_ID})`);
    await tx.update(signingKeys).set({ retiredAt: now }).where(isNull(signingKeys.retiredAt));
    await generateStoredKey(tx, now);
    const [row] = await tx.select({ kid: signingKeys.kid }).from(signingKeys).where(isNull(signingKeys.retiredAt)).limit(1);
    return row!.kid;
  });
}

export interface TokenClaims {
  sub: string;
  jti: string;
  role: string;
  permissions: string[];
  exp: number;
}

/** Why a token was refused: the error code the client sees. */
export class TokenRejected extends Error {
  constructor(
    readonly code: "invalid_token" | "token_expired",
    message: string,
  ) {
    super(message);
    this.name = "TokenRejected";
  }
}

export interface TokenSigner {
  sign(claims: Omit<TokenClaims, "exp">, issuedAt: Date, expiresAt: Date): Promise<string>;
  /** Signature, algorithm allow-list, typ, iss, aud, exp, nbf (with the configured tolerance). */
  verify(token: string): Promise<TokenClaims>;
  /**
   * Signs other statements (decision receipts) with the same key set, under their own `typ` so that
   * neither kind can pass for the other. Only the claims given are set: the caller decides iat.
   */
  signStatement(typ: string, claims: JWTPayload): Promise<{ jws: string; kid: string }>;
  jwks(): Promise<{ keys: JWK[] }>;
}

export function createTokenSigner(deps: { db: Database; config: TokenConfig; clock: Clock }): TokenSigner {
  let current: Promise<KeySet> | undefined;
  let loadedAt = 0;
  let lastForcedAt = Number.NEGATIVE_INFINITY;
  const nowMs = () => deps.clock.now().getTime();

  const keySet = (force = false): Promise<KeySet> => {
    const stale = nowMs() - loadedAt >= KEY_SET_REFRESH_MS;
    if (!current || stale || force) {
      loadedAt = nowMs();
      const previous = current;
      current = loadKeySet(deps.db, deps.config, deps.clock.now()).catch((error: unknown) => {
        // Keep serving with the last good set when a refresh fails; fail only when there is none.
        current = previous;
        if (!previous) throw error;
        return previous;
      });
    }
    return current;
  };

  const keyFor = async (kid: string | undefined): Promise<SigningKey> => {
    if (!kid) throw new TokenRejected("invalid_token", "the token has no key id");
    let key = (await keySet()).byKid.get(kid);
    // An unknown kid may be a key another replica just generated; re-read at most every few seconds.
    if (!key && nowMs() - lastForcedAt > 5_000) {
      lastForcedAt = nowMs();
      key = (await keySet(true)).byKid.get(kid);
    }
    if (!key) throw new TokenRejected("invalid_token", "the token was signed with an unknown key");
    return key;
  };

  return {
    async sign(claims, issuedAt, expiresAt) {
      const { signer } = await keySet();
      const iat = Math.floor(issuedAt.getTime() / 1000);
      return new SignJWT({ role: claims.role, permissions: claims.permissions })
        .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: TOKEN_TYPE })
        .setIssuer(deps.config.TOKEN_ISSUER)
        .setAudience(deps.config.TOKEN_AUDIENCE)
        .setSubject(claims.sub)
        .setJti(claims.jti)
        .setIssuedAt(iat)
        .setNotBefore(iat)
        .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
        .sign(signer.privateKey!);
    },
    async verify(token) {
      try {
        const { payload } = await jwtVerify(
          token,
          async (header) => {
            const key = await keyFor(header.kid);
            if (header.alg !== key.alg) throw new TokenRejected("invalid_token", "the token's algorithm does not match its key");
            return key.publicKey;
          },
          {
            algorithms: [...TOKEN_ALGORITHMS],
            typ: TOKEN_TYPE,
            issuer: deps.config.TOKEN_ISSUER,
            audience: deps.config.TOKEN_AUDIENCE,
            clockTolerance: deps.config.TOKEN_CLOCK_TOLERANCE_SECONDS,
            currentDate: deps.clock.now(),
            requiredClaims: ["sub", "jti", "iat", "exp", "nbf"],
            maxTokenAge: deps.config.TOKEN_MAX_TTL_SECONDS + deps.config.TOKEN_CLOCK_TOLERANCE_SECONDS,
          },
        );
        const permissions = payload.permissions;
        if (!Array.isArray(permissions) || !permissions.every((p) => typeof p === "string") || typeof payload.role !== "string") {
          throw new TokenRejected("invalid_token", "the token's claims are malformed");
        }
        return { sub: payload.sub!, jti: payload.jti!, role: payload.role, permissions, exp: payload.exp! };
      } catch (error) {
        if (error instanceof TokenRejected) throw error;
        if (error instanceof errors.JWTExpired) throw new TokenRejected("token_expired", "the token has expired");
        if (error instanceof errors.JWTClaimValidationFailed) {
          throw new TokenRejected("invalid_token", `the token's ${error.claim} claim is not acceptable`);
        }
        throw new TokenRejected("invalid_token", "the token is malformed or its signature does not verify");
      }
    },
    async signStatement(typ, claims) {
      if (typ === TOKEN_TYPE) throw new TypeError("statements must not use the service token typ");
      const { signer } = await keySet();
      const jws = await new SignJWT(claims).setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ }).sign(signer.privateKey!);
      return { jws, kid: signer.kid };
    },
    async jwks() {
      const set = await keySet();
      return { keys: [...set.byKid.values()].map((key) => key.publicJwk) };
    },
  };
}
