import type { Cache } from "../cache/types";
import type { Logger } from "../observability/logger";

/** The cache channel every replica listens on; the backend adds the configured prefix. */
export const REVOCATION_CHANNEL = "auth:revocations";

/** After a failed subscribe, requests do not wait on another attempt for this long. */
const RESUBSCRIBE_INTERVAL_MS = 10_000;

/** What is broadcast: identifiers only, never a raw key or token (nor a key's hash). */
export type Revocation = { kind: "key"; id: string } | { kind: "session"; jti: string };

const IDENTIFIER = /^[0-9a-zA-Z-]{1,64}$/;

function parseRevocation(message: string): Revocation | undefined {
  try {
    const value = JSON.parse(message) as Record<string, unknown>;
    if (value.kind === "key" && typeof value.id === "string" && IDENTIFIER.test(value.id)) return { kind: "key", id: value.id };
    if (value.kind === "session" && typeof value.jti === "string" && IDENTIFIER.test(value.jti)) return { kind: "session", jti: value.jti };
  } catch {
    // not JSON: ignored below like any other unknown message
  }
  return undefined;
}

/**
 * Sends a revocation to every replica sharing the cache. Never throws: a lost broadcast leaves
 * AUTH_CACHE_TTL_MS as the bound, which is no reason to fail the revocation itself.
 */
export async function publishRevocation(deps: { cache: Cache; logger: Logger }, revocation: Revocation): Promise<void> {
  try {
    await deps.cache.publish(REVOCATION_CHANNEL, JSON.stringify(revocation));
  } catch (error) {
    deps.logger.warn("revocation broadcast failed; other replicas stop accepting within AUTH_CACHE_TTL_MS", {
      kind: revocation.kind,
      error: (error as Error).message,
    });
  }
}

export interface RevocationListener {
  /**
   * Makes sure this replica listens for revocations: the first call subscribes, later ones wait for
   * that attempt or return at once. Never throws; after a failure it tries again at most every
   * RESUBSCRIBE_INTERVAL_MS, and in between credentials are cached with the TTL as the only bound.
   */
  listen(): Promise<void>;
}

/** Applies every revocation broadcast (this replica's own included, harmlessly) with `onRevocation`. */
export function createRevocationListener(deps: {
  cache: Cache;
  logger: Logger;
  now: () => number;
  onRevocation: (revocation: Revocation) => void;
}): RevocationListener {
  let subscribed: Promise<void> | undefined;
  let failedAt = Number.NEGATIVE_INFINITY;
  const onMessage = (message: string) => {
    const revocation = parseRevocation(message);
    if (revocation) deps.onRevocation(revocation);
    else deps.logger.warn("ignored a malformed revocation broadcast", { channel: REVOCATION_CHANNEL });
  };
  return {
    listen() {
      if (subscribed) return subscribed;
      if (deps.now() - failedAt < RESUBSCRIBE_INTERVAL_MS) return Promise.resolve();
      subscribed = deps.cache.subscribe(REVOCATION_CHANNEL, onMessage).then(
        () => deps.logger.debug("listening for revocations", { channel: REVOCATION_CHANNEL }),
        (error: unknown) => {
          subscribed = undefined;
          failedAt = deps.now();
          deps.logger.warn("cannot listen for revocations; other replicas' revocations reach this one within AUTH_CACHE_TTL_MS", {
            error: (error as Error).message,
          });
        },
      );
      return subscribed;
    },
  };
}
