import { type Meter, metrics } from "@opentelemetry/api";
import { type Cache, createCache } from "./cache";
import type { Config } from "./config";
import { type DatabaseHandle, openPglite, openPostgres } from "./db/client";
import type { Logger } from "./observability/logger";

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
  /** every module instruments with this OpenTelemetry meter (no-op until a MeterProvider backs it) */
  meter: Meter;
  version: string;
}

export const VERSION = "0.1.0";

export class StartupError extends Error {
  override name = "StartupError";
}

/** Opens the backends the configuration names: real servers when configured, embedded otherwise. */
export async function openDeps(config: Config, logger: Logger): Promise<AppDeps> {
  const database = config.DATABASE_URL
    ? await openPostgres({ url: config.DATABASE_URL, poolMax: config.DATABASE_POOL_MAX })
    : await openPglite({ dataDir: config.DATA_DIR });
  try {
    await database.ping();
  } catch (error) {
    await database.close().catch(() => {});
    throw new StartupError(`database unreachable: ${(error as Error).message}`);
  }
  if (config.RUN_MIGRATIONS) await database.migrate();

  const cache = createCache(config);
  try {
    await cache.ping();
  } catch (error) {
    // A cache outage must not stop the service: it starts degraded and /health/ready says so.
    logger.warn("cache unreachable at start; serving degraded", { cache: cache.kind, error: (error as Error).message });
  }
  return { config, database, cache, logger, clock: systemClock, meter: metrics.getMeter("arbiter", VERSION), version: VERSION };
}

export async function closeDeps(deps: Pick<AppDeps, "database" | "cache">): Promise<void> {
  await Promise.allSettled([deps.cache.close(), deps.database.close()]);
}
