import { createApp } from "../../src/app";
import { createApiKey } from "../../src/auth/api-keys";
import type { Cache } from "../../src/cache/types";
import { type Config, loadConfig } from "../../src/config";
import type { DatabaseHandle } from "../../src/db/client";
import type { Role } from "../../src/db/schema";
import { type AppDeps, type Clock, systemClock, VERSION } from "../../src/deps";
import { instrumentDatabase } from "../../src/observability/database";
import { createLogger } from "../../src/observability/logger";
import { createMetricsRegistry } from "../../src/observability/metrics";
import { openTestCache } from "./cache";
import { openTestDatabase } from "./db";

export interface TestApp {
  url: string;
  deps: AppDeps;
  app: ReturnType<typeof createApp>;
  /** one raw API key per role, created in this app's database */
  keys: Record<Role, string>;
  keyIds: Record<Role, string>;
  /** every log line the app wrote, parsed */
  logs: Record<string, unknown>[];
  /** fetch against the app's URL; `as` adds that role's key */
  request(path: string, init?: RequestInit & { as?: Role; json?: unknown }): Promise<Response>;
  close(): Promise<void>;
}

export interface TestAppOptions {
  env?: Record<string, string>;
  clock?: Clock;
  database?: DatabaseHandle;
  cache?: Cache;
}

/** Starts the real app on an ephemeral port over the tier's database and cache. */
export async function startTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const config: Config = loadConfig({ LOG_LEVEL: "debug", ...options.env });
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({ level: config.LOG_LEVEL, sink: (line) => logs.push(JSON.parse(line)) });
  const database = options.database ?? (await openTestDatabase());
  const cache = options.cache ?? openTestCache();
  const clock = options.clock ?? systemClock;
  // Each test app has its own MeterProvider, so its /metrics shows only its own traffic.
  const metrics = createMetricsRegistry({ version: VERSION });
  instrumentDatabase(database, metrics.meter, config.DATABASE_POOL_MAX);
  const deps: AppDeps = { config, database, cache, logger, clock, meter: metrics.meter, metrics, version: VERSION };
  const app = createApp(deps);
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: app.fetch, idleTimeout: 60 });
  const url = server.url.toString().replace(/\/$/, "");

  const keys = {} as Record<Role, string>;
  const keyIds = {} as Record<Role, string>;
  for (const role of ["admin", "operator", "readonly", "service"] as const) {
    const created = await createApiKey(database.db, { name: `test-${role}`, role }, clock.now());
    keys[role] = created.key;
    keyIds[role] = created.row.id;
  }

  return {
    url,
    deps,
    app,
    keys,
    keyIds,
    logs,
    request(path, init = {}) {
      const { as, json, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (as) headers.set("X-API-Key", keys[as]);
      if (json !== undefined) {
        headers.set("Content-Type", "application/json");
        rest.body = JSON.stringify(json);
      }
      return fetch(url + path, { ...rest, headers });
    },
    async close() {
      await server.stop(true);
      await Promise.allSettled([cache.close(), database.close()]);
    },
  };
}
