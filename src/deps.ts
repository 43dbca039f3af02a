import type { Meter } from "@opentelemetry/api";
import { bootstrapIdentity } from "./auth/bootstrap";
import { type Cache, createCache } from "./cache";
import type { Config } from "./config";
import { type DatabaseHandle, openPglite, openPostgres } from "./db/client";
import { instrumentDatabase } from "./observability/database";
import type { Logger } from "./observability/logger";
import { createMetricsRegistry, type MetricsRegistry } from "./observability/metrics";

/** A source of time, injected so expiry and token tests need no sleeping. */
export interface Clock {
  now(): Date;
}
export const systemClock: Clock = { now: () => new Date() };

/** Everything the app touches, passed in: nothing is opened at import time. */
export interface AppDeps {
  config: Config;
  database: DatabaseHandle;
  cache: Cache;
  logger: Logger;
  clock: Clock;
  /** every module instruments with this OpenTelemetry meter: `metrics.meter`, from this app's own MeterProvider */
  meter: Meter;
  /** the meter's Prometheus exposition, served at GET /metrics */
  metrics: MetricsRegistry;
  version: string;
}

export const VERSION = "0.1.0";

export class StartupError extends Error {
  override name = "StartupError";
}

/** The configured database: PostgreSQL when DATABASE_URL is set, embedded PGlite otherwise (not yet pinged). */
export async function openDatabase(
  config: Pick<Config, "DATABASE_URL" | "DATABASE_POOL_MAX" | "DATA_DIR">,
  options: { statementTimeoutMs?: number } = {},
): Promise<DatabaseHandle> {
  return config.DATABASE_URL
    ? openPostgres({ url: config.DATABASE_URL, poolMax: config.DATABASE_POOL_MAX, statementTimeoutMs: options.statementTimeoutMs })
    : openPglite({ dataDir: config.DATA_DIR });
}

/** Opens the backends the configuration names: real servers when configured, embedded otherwise. */
export async function openDeps(config: Config, logger: Logger): Promise<AppDeps> {
  // The server's statements are bounded; operations scripts (backups, retention) open without a bound.
  const database = await openDatabase(config, { statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS });
  try {
    await database.ping();
  } catch (error) {
    await database.close().catch(() => {});
    throw new StartupError(`database unreachable: ${(error as Error).message}`);
  }
  if (config.RUN_MIGRATIONS) await database.migrate();
  try {
    await bootstrapIdentity({ db: database.db, config, logger, now: new Date(), announce: (text) => console.error(text) });
  } catch (error) {
    await database.close().catch(() => {});
    throw new StartupError(`identity bootstrap failed: ${(error as Error).message}`);
  }

  const cache = createCache(config);
  try {
    await cache.ping();
  } catch (error) {
    // A cache outage must not stop the service: it starts degraded and /health/ready says so.
    logger.warn("cache unreachable at start; serving degraded", { cache: cache.kind, error: (error as Error).message });
  }
  const metrics = createMetricsRegistry({ version: VERSION, releaseId: config.RELEASE_ID });
  instrumentDatabase(database, metrics.meter, config.DATABASE_POOL_MAX);
  return { config, database, cache, logger, clock: systemClock, meter: metrics.meter, metrics, version: VERSION };
}

export async function closeDeps(deps: Pick<AppDeps, "database" | "cache">): Promise<void> {
  await Promise.allSettled([deps.cache.close(), deps.database.close()]);
}
