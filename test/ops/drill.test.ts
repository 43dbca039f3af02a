import { expect, setDefaultTimeout, test } from "bun:test";
import { type DrillReport, drillFailures, runDrill } from "../../scripts/lib/drill";
import { findServerBinDir } from "../../scripts/lib/pg-bin";
import { usingRealPostgres } from "../helpers/db";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * The point-in-time recovery drill on a throwaway cluster of its own. It does not use the tier's
 * database, so it runs once per CI run (in the embedded tier) and needs the server binaries.
 */
const bin = await findServerBinDir();
const skipReason = !bin
  ? "no PostgreSQL server binaries (initdb, pg_ctl, postgres, pg_basebackup) on this machine"
  : usingRealPostgres()
    ? "runs once per CI run, in the embedded tier"
    : undefined;
if (skipReason) console.warn(`drill.test: skipped: ${skipReason}`);

test.skipIf(Boolean(skipReason))(
  "PITR drill: exactly the rows committed before the target come back; RPO and RTO are within objectives",
  async () => {
    const result = await runDrill({ writeSeconds: 4, archiveTimeoutSeconds: 2, writeIntervalMs: 20 });
    expect("skipped" in result).toBe(false);
    const report = result as DrillReport;
    expect(report.pitr.expected_rows).toBeGreaterThan(0);
    expect(report.pitr.expected_rows).toBeLessThan(report.rows_written);
    expect(report.pitr.exact).toBe(true);
    expect(report.crash.prefix_intact).toBe(true);
    // What the crash lost is bounded by what was written after the last archived segment.
    expect(report.crash.recovered_rows).toBeGreaterThanOrEqual(report.pitr.expected_rows);
    // A commit whose acknowledgement the crash swallowed may come back too, so this is at least, not exactly.
    expect(report.crash.recovered_rows + report.crash.lost_rows).toBeGreaterThanOrEqual(report.crash.acknowledged_rows);
    expect(drillFailures(report)).toEqual([]);
  },
  180_000,
);
