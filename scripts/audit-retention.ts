/**
 * bun run audit:retention [--days N] [--batch-size N]
 * Deletes authentication events older than AUTH_EVENTS_RETENTION_DAYS (or --days) from the
 * configured database (DATABASE_URL, else the embedded one in DATA_DIR; stop the embedded server
 * first). The application role cannot delete audit rows: run this as the admin role (app_admin),
 * e.g. daily from cron or a scheduled job.
 */
import { deleteExpiredAuthEvents } from "../src/auth/audit";
import { redactUrl } from "../src/config";
import { errorCodes } from "../src/db/errors";
import { openDatabase } from "../src/deps";
import { parseScriptArgs, scriptConfig } from "./lib/cli";
import { OpsError, runScript } from "./lib/process";

const INSUFFICIENT_PRIVILEGE = "42501";

await runScript("audit:retention", async () => {
  const { values } = parseScriptArgs({ days: { type: "string" }, "batch-size": { type: "string", default: "5000" } });
  const config = scriptConfig();
  const positive = (name: string, value: string) => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n <= 0) throw new OpsError(`--${name} must be a positive integer`, 2);
    return n;
  };
  const retentionDays = values.days === undefined ? config.AUTH_EVENTS_RETENTION_DAYS : positive("days", values.days);
  const batchSize = positive("batch-size", values["batch-size"]);
  const target = config.DATABASE_URL ? redactUrl(config.DATABASE_URL) : `pglite:${config.DATA_DIR}`;

  const database = await openDatabase(config);
  try {
    const started = performance.now();
    const { deleted, cutoff } = await deleteExpiredAuthEvents(database.db, new Date(), {
      retentionDays,
      batchSize,
      maxBatches: Number.MAX_SAFE_INTEGER,
    });
    console.log(
      `audit:retention: deleted ${deleted} auth events older than ${cutoff.toISOString()} (${retentionDays} days) from ${target} in ${Math.round(performance.now() - started)} ms`,
    );
  } catch (error) {
    if (errorCodes(error).includes(INSUFFICIENT_PRIVILEGE))
      throw new OpsError(
        "permission denied on auth_events: the application role may only append to the audit trail; run this as the admin role (app_admin)",
      );
    throw error;
  } finally {
    await database.close();
  }
});
