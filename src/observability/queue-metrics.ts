import type { Meter } from "@opentelemetry/api";
import { eq, min } from "drizzle-orm";
import type { Database } from "../db/client";
import { decisions } from "../db/schema";
import type { Clock } from "../deps";

/**
 * `arbiter.decisions.pending.oldest_age` (s): how long the oldest pending decision has waited, read
 * from the database at scrape time (one index lookup on (status, created_at)), so every replica
 * reports the same figure. 0 when nothing is pending; no sample when the database is unreachable.
 */
export function observeDecisionQueue(deps: { db: Database; clock: Clock; meter: Meter }): void {
  deps.meter
    .createObservableGauge("arbiter.decisions.pending.oldest_age", {
      description: "Age of the oldest pending decision",
      unit: "s",
    })
    .addCallback(async (result) => {
      try {
        const [row] = await deps.db
          .select({ oldest: min(decisions.createdAt) })
          .from(decisions)
          .where(eq(decisions.status, "pending"));
        const oldest = row?.oldest ? new Date(row.oldest).getTime() : undefined;
        result.observe(oldest === undefined ? 0 : Math.max(0, (deps.clock.now().getTime() - oldest) / 1000));
      } catch {
        // An unreachable database shows as a missing sample (and in /health/ready), not a failed scrape.
      }
    });
}
