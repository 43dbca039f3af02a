import type { Principal } from "../auth/rbac";
import type { DatabaseHandle } from "../db/client";
import { ApiError } from "../http/errors";

/**
 * Connections a key holds open in this process: long-polls (`?wait=`) and event streams, the API's
 * and the console's. Each costs a socket and memory for as long as it lasts, and the request rate
 * limit counts it once, so without this bound one key could pin the server's connections. The bound
 * is per process: N replicas allow N times as many.
 */
export interface HoldLimiter {
  /** Counts one more hold for the principal's key, or throws 429 `too_many_streams` at the bound; returns its release. */
  acquire(principal: Principal): () => void;
  /** holds currently counted for this key */
  held(keyId: string): number;
}

export function createHoldLimiter(maxPerKey: number): HoldLimiter {
  const counts = new Map<string, number>();
  return {
    acquire(principal) {
      const current = counts.get(principal.keyId) ?? 0;
      if (current >= maxPerKey) {
        throw new ApiError(
          429,
          "too_many_streams",
          `this key already holds ${maxPerKey} long-polls and event streams on this server; close one before opening another`,
          { limit: maxPerKey },
          { "Retry-After": "1" },
        );
      }
      counts.set(principal.keyId, current + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        const left = (counts.get(principal.keyId) ?? 1) - 1;
        if (left > 0) counts.set(principal.keyId, left);
        else counts.delete(principal.keyId);
      };
    },
    held: (keyId) => counts.get(keyId) ?? 0,
  };
}

// One limiter per database handle, as for the notifier: the API's routes and the console share it.
const limiters = new WeakMap<DatabaseHandle, HoldLimiter>();
export function holdLimiterOf(deps: { database: DatabaseHandle; config: { STREAMS_PER_KEY_MAX: number } }): HoldLimiter {
  let limiter = limiters.get(deps.database);
  if (!limiter) {
    limiter = createHoldLimiter(deps.config.STREAMS_PER_KEY_MAX);
    limiters.set(deps.database, limiter);
  }
  return limiter;
}
