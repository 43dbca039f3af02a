import type { AppDeps } from "../deps";
import { type AuthAudit, createAuthAudit } from "./audit";
import type { KeyServiceDeps } from "./keys-service";
import type { GuardDeps } from "./middleware";
import type { SessionDeps } from "./sessions";
import { createTokenSigner, type TokenSigner } from "./tokens";
import { type CredentialVerifier, createVerifier } from "./verifier";

/** Everything identity keeps per app instance: caches, the audit buffer, the signing keys. */
export interface AuthRuntime {
  deps: AppDeps;
  audit: AuthAudit;
  signer: TokenSigner;
  verifier: CredentialVerifier;
  keyService: KeyServiceDeps;
  sessions: SessionDeps;
  guard: GuardDeps;
}

export function createAuthRuntime(deps: AppDeps): AuthRuntime {
  const db = deps.database.db;
  const audit = createAuthAudit({ db, clock: deps.clock, logger: deps.logger });
  const signer = createTokenSigner({ db, config: deps.config, clock: deps.clock });
  const verifier = createVerifier({
    db,
    clock: deps.clock,
    logger: deps.logger,
    signer,
    ttlMs: deps.config.AUTH_CACHE_TTL_MS,
    clockToleranceSeconds: deps.config.TOKEN_CLOCK_TOLERANCE_SECONDS,
  });
  return {
    deps,
    audit,
    signer,
    verifier,
    keyService: { db, clock: deps.clock, audit, forgetKey: (row) => verifier.forgetKey(row) },
    sessions: { db, clock: deps.clock, audit, signer, config: deps.config, forgetSession: (jti) => verifier.forgetSession(jti) },
    guard: {
      config: deps.config,
      cache: deps.cache,
      clock: deps.clock,
      logger: deps.logger,
      verifier,
      audit,
      authFailures: deps.meter.createCounter("arbiter.auth.failures", { description: "Failed authentication attempts, by reason" }),
      rateLimitRejections: deps.meter.createCounter("arbiter.rate_limit.rejections", {
        description: "Requests refused by a rate limit, by scope (key or address)",
      }),
    },
  };
}
