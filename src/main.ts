/**
 * Bun entry point: config → dependencies → migrations → serve → graceful shutdown.
 * The only file that knows it runs on Bun.
 */
import { createApp } from "./app";
import { type Config, ConfigError, loadConfig, redactUrl } from "./config";
import { startDecisionWorkers } from "./decisions/background";
import { closeDeps, openDeps, StartupError } from "./deps";
import { createLogger } from "./observability/logger";
import { metricsListener } from "./observability/metrics-routes";
import { startTelemetryRetention } from "./telemetry/retention";
import { serverTlsOptions, TlsSetupError } from "./tls";

function fail(message: string): never {
  console.error(`arbiter: ${message}`);
  process.exit(2);
}

let config: Config;
try {
  config = loadConfig(process.env);
  // The config holds only hashes of these keys; drop the raw values from the environment too.
  delete process.env.ARBITER_API_KEYS;
} catch (error) {
  if (error instanceof ConfigError) fail(error.message);
  throw error;
}

let tls: ReturnType<typeof serverTlsOptions>;
try {
  tls = serverTlsOptions(config);
} catch (error) {
  if (error instanceof TlsSetupError) fail(error.message);
  throw error;
}

const logger = createLogger({ level: config.LOG_LEVEL, base: { service: "arbiter" } });
const started = performance.now();
const deps = await openDeps(config, logger).catch((error: unknown) => {
  if (error instanceof StartupError) fail(error.message);
  fail(`startup failed: ${(error as Error).message}`);
});
const app = createApp(deps);
const decisionWorkers = startDecisionWorkers(deps);

const server = Bun.serve({
  port: config.PORT,
  hostname: config.HOST,
  fetch: app.fetch,
  tls,
  // Long-poll waits run up to 55 s; the idle timeout must outlast them.
  idleTimeout: 60,
});

logger.info("listening", {
  url: server.url.toString(),
  database: config.DATABASE_URL ? redactUrl(config.DATABASE_URL) : `pglite:${config.DATA_DIR}`,
  cache: deps.cache.kind,
  tls: tls ? (tls.requestCert ? "mutual" : "server") : "off",
  startup_ms: Math.round(performance.now() - started),
});

// Background work lives here, not in createApp, so an app built by a test starts no timers.
const stopRetention = startTelemetryRetention(deps);
// Optional second listener serving only GET /metrics, for a scrape network the API port is not on.
const metricsServer =
  config.METRICS_PORT === undefined
    ? undefined
    : Bun.serve({
        port: config.METRICS_PORT,
        hostname: config.METRICS_HOST ?? config.HOST,
        fetch: metricsListener(deps.metrics, config.METRICS_TOKEN),
      });
if (metricsServer) logger.info("metrics listening", { url: new URL("/metrics", metricsServer.url).toString() });

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  logger.info("shutting down", { signal, in_flight: server.pendingRequests });
  // Parked long-polls answer and event streams end first, or the drain would wait for them.
  await decisionWorkers.stop();
  // Stop accepting, let in-flight requests finish, but never wait longer than the configured bound.
  const drained = server.stop(false).then(() => true);
  const timedOut = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), config.SHUTDOWN_TIMEOUT_MS));
  if (!(await Promise.race([drained, timedOut]))) {
    logger.warn("drain timed out; closing remaining connections", { in_flight: server.pendingRequests });
    await server.stop(true);
  }
  await Promise.allSettled([stopRetention(), metricsServer?.stop(true)]);
  await closeDeps(deps);
  logger.info("stopped", { signal });
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));
