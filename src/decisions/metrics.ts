import type { Counter, Histogram, Meter } from "@opentelemetry/api";
import { count, eq } from "drizzle-orm";
import type { Database } from "../db/client";
import { decisions } from "../db/schema";

export interface DecisionMetrics {
  created: Counter;
  resolved: Counter;
  duration: Histogram;
}

/** Time-to-decision buckets in seconds: from an instant automated verdict to a week-long wait. */
const DURATION_BUCKETS = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86_400, 3 * 86_400, 7 * 86_400];

// One set of instruments per meter: the request path and the background workers share them, and the
// pending gauge is observed once per scrape however many modules ask for the instruments.
const byMeter = new WeakMap<Meter, DecisionMetrics>();

export function decisionMetrics(meter: Meter, db: Database): DecisionMetrics {
  let instruments = byMeter.get(meter);
  if (instruments) return instruments;
  instruments = {
    created: meter.createCounter("arbiter.decisions.created", { description: "Decisions created, by kind and priority" }),
    resolved: meter.createCounter("arbiter.decisions.resolved", {
      description: "Decisions that left pending, by outcome (approved, rejected, expired, cancelled)",
    }),
    duration: meter.createHistogram("arbiter.decision.duration", {
      description: "Time from a decision's creation to its resolution",
      unit: "s",
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    }),
  };
  meter
    .createObservableGauge("arbiter.decisions.pending", { description: "Decisions waiting for a verdict" })
    .addCallback(async (result) => {
      try {
        const [row] = await db.select({ n: count() }).from(decisions).where(eq(decisions.status, "pending"));
        result.observe(row?.n ?? 0);
      } catch {
        // An unreachable database shows as a missing sample (and in /health/ready), not a failed scrape.
      }
    });
  byMeter.set(meter, instruments);
  return instruments;
}
