/**
 * Entry for fetch-only edge platforms (Cloudflare Workers style): the module's default export is
 * `{ fetch(request, env) }`. Configuration comes from the platform's environment bindings (`env`),
 * read on the first request; the app is built once per isolate and reused.
 *
 * What the edge gets and what it does not (the README's "Edge deployment" says the same):
 * - the database must be PostgreSQL reachable from the edge (DATABASE_URL); embedded PGlite needs a
 *   disk and a long-lived process, so it is refused;
 * - the cache must be Upstash REST (UPSTASH_REDIS_REST_URL/TOKEN): TCP Redis is refused, and an
 *   in-process cache would split rate limits and wake-ups across isolates;
 * - migrations are not run here (they read the migrations folder from disk): run `db:migrate` first;
 * - no background workers: the expiry sweeper, webhook deliveries and telemetry retention run in a
 *   long-running Arbiter (Bun, Deno or Node) against the same database. Reads stay correct without
 *   it, since a read settles an overdue decision itself.
 */
import { type App, createApp } from "./app";
import { type Config, ConfigError, loadConfig } from "./config";
import { openDeps, StartupError } from "./deps";
import { errorBody } from "./http/errors";
import { createLogger } from "./observability/logger";

type Bindings = Record<string, unknown>;

/** The configuration from the platform's bindings, or a StartupError naming what the edge cannot do. */
export function edgeConfig(bindings: Bindings): Config {
  const env = Object.fromEntries(Object.entries(bindings).filter((entry): entry is [string, string] => typeof entry[1] === "string"));
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) throw new StartupError(error.message);
    throw error;
  }
  if (!config.DATABASE_URL) {
    throw new StartupError("DATABASE_URL is required on the edge: embedded PGlite needs a local disk and a long-lived process");
  }
  if (config.REDIS_URL) {
    throw new StartupError(
      "REDIS_URL (Redis over TCP) is not available on the edge; set UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN",
    );
  }
  if (!config.UPSTASH_REDIS_REST_URL || !config.UPSTASH_REDIS_REST_TOKEN) {
    throw new StartupError(
      "UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN are required on the edge: isolates share rate limits and wake-ups through them",
    );
  }
  return { ...config, RUN_MIGRATIONS: false };
}

/** Opens the backends named by the bindings and builds the app; no background work is started. */
async function openEdgeApp(bindings: Bindings): Promise<App> {
  const config = edgeConfig(bindings);
  const deps = await openDeps(config, createLogger({ level: config.LOG_LEVEL, base: { service: "arbiter", runtime: "edge" } }));
  return createApp(deps);
}

/** A fetch handler that builds the app on its first request, and tries again on the next one if that failed. */
export function createEdgeHandler(): (request: Request, bindings?: Bindings) => Promise<Response> {
  let opening: Promise<App> | undefined;
  return async (request, bindings = {}) => {
    opening ??= openEdgeApp(bindings).catch((error: unknown) => {
      opening = undefined;
      throw error;
    });
    let app: App;
    try {
      app = await opening;
    } catch (error) {
      // The reason goes to the platform's log, not to the caller: it may name hosts and settings.
      console.error(`arbiter: ${error instanceof StartupError ? error.message : `startup failed: ${(error as Error).message}`}`);
      return Response.json(errorBody("unavailable", "the service could not start; its log says why"), {
        status: 503,
        headers: { "Retry-After": "5" },
      });
    }
    return app.fetch(request, bindings);
  };
}

export default { fetch: createEdgeHandler() };
