import type { AppDeps } from "../deps";
import { type AuthAudit, createAuthAudit } from "./audit";
import type { KeyServiceDeps } from "./keys-service";
import { failOpen, type GuardDeps } from "./middleware";
import { createRateLimiter } from "./rate-limit";
import { createRevocationListener, publishRevocation } from "./revocations";
import type { SessionDeps } from "./sessions";
import { createTokenSigner, type TokenSigner } from "./tokens";
import { type AuthUsage, createAuthUsage } from "./usage";
import { type CredentialVerifier, createVerifier } from "./verifier";

/** Everything identity keeps per app instance: caches, the audit buffer, the signing keys. */
export interface AuthRuntime {
  deps: AppDeps;
  audit: AuthAudit;
  usage: AuthUsage;
  signer: TokenSigner;
  verifier: CredentialVerifier;
  keyService: KeyServiceDeps;
  sessions: SessionDeps;
  guard: GuardDeps;
}

export function createAuthRuntime(deps: AppDeps): AuthRuntime {
  const db = deps.database.db;
  const audit = createAuthAudit({ db, clock: deps.clock, logger: deps.logger });
  const usage = createAuthUsage({ db, clock: deps.clock, logger: deps.logger });
  const signer = createTokenSigner({ db, config: deps.config, clock: deps.clock });
  const verifier = createVerifier({
    db,
    clock: deps.clock,
    logger: deps.logger,
    signer,
    ttlMs: deps.config.AUTH_CACHE_TTL_MS,
    clockToleranceSeconds: deps.config.TOKEN_CLOCK_TOLERANCE_SECONDS,
  });
  // Revocations apply here at once and reach the other replicas through the cache's pub/sub.
  const revocations = createRevocationListener({
    cache: deps.cache,
    logger: deps.logger,
    now: () => deps.clock.now().getTime(),
    onRevocation: (revocation) => (revocation.kind === "key" ? verifier.forgetKey(revocation.id) : verifier.forgetSession(revocation.jti)),
  });
  const forgetKey = async (row: { id: string }) => {
    verifier.forgetKey(row.id);
    await publishRevocation(deps, { kind: "key", id: row.id });
  };
  const forgetSession = async (jti: string) => {
    verifier.forgetSession(jti);
    await publishRevocation(deps, { kind: "session", jti });
  };
  return {
    deps,
    audit,
    usage,
    signer,
    verifier,
    keyService: { db, clock: deps.clock, audit, forgetKey },
    sessions: { db, clock: deps.clock, audit, signer, config: deps.config, forgetSession },
    guard: {
      config: deps.config,
      cache: deps.cache,
      clock: deps.clock,
      logger: deps.logger,
      verifier,
      revocations,
      audit,
      usage,
      // One limiter per app: its local counts are what keep a request off the cache's round trip.
      limiter: createRateLimiter({ cache: deps.cache, now: () => deps.clock.now().getTime(), onError: failOpen(deps) }),
      authFailures: deps.meter.createCounter("arbiter.auth.failures", { description: "Failed authentication attempts, by reason" }),
      rateLimitRejections: deps.meter.createCounter("arbiter.rate_limit.rejections", {
        description: "Requests refused by a rate limit, by scope (key or address)",
      }),
    },
  };
}
