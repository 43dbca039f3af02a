/**
 * Starting and stopping a long-running Arbiter process, the same on every runtime:
 * config → dependencies → migrations → serve → background workers → graceful shutdown.
 * What differs between Bun, Deno and Node (how to listen, signals, exiting) arrives as a
 * RuntimeAdapter from the entry point (src/main.ts, src/deno.ts, src/node.ts).
 */
import { createApp } from "./app";
import { type Config, ConfigError, loadConfig, redactUrl } from "./config";
import { startDecisionWorkers } from "./decisions/background";
import { closeDeps, openDeps, StartupError } from "./deps";
import { startNotificationWorkers } from "./notify/workers";
import { createLogger } from "./observability/logger";
import { metricsListener } from "./observability/metrics-routes";
import { startTelemetryRetention } from "./telemetry/retention";
import { type ServerTlsOptions, serverTlsOptions, TlsSetupError } from "./tls";

/** What the app reads from the connection; Bun's server has this method, the other entries provide it. */
export interface ConnectionInfo {
  requestIP(request: Request): { address: string } | null;
  /** Bun only: a per-request idle timeout (see src/http/connection.ts) */
  timeout?(request: Request, seconds: number): void;
}

export type FetchHandler = (request: Request, connection: ConnectionInfo) => Response | Promise<Response>;

export interface ListenOptions {
  port: number;
  hostname: string;
  tls?: ServerTlsOptions;
  /** a keep-alive connection with no request in progress is closed after this long */
  idleTimeoutSeconds: number;
  /** a request head (request line and headers) larger than this is refused with 431 */
  maxHeaderBytes: number;
}

/**
 * A request's head must arrive within this long of the connection opening, or the connection is
 * closed (slow clients). Bun has this built in and not configurable (measured: about 12 s); the
 * Node entry sets the same bound. Deno.serve has no such option.
 */
export const HEADER_READ_TIMEOUT_S = 10;

export interface Listener {
  url: URL;
  /** stops accepting; `force` also closes open connections. Settles when the server has closed. */
  stop(force: boolean): Promise<void>;
}

export interface RuntimeAdapter {
  /** named in log lines and startup errors */
  name: string;
  env: Record<string, string | undefined>;
  /** removes a variable from the process environment once it has been read */
  unsetEnv(name: string): void;
  /** throws StartupError for an option this runtime cannot serve (e.g. mutual TLS) */
  listen(fetch: FetchHandler, options: ListenOptions): Promise<Listener>;
  onSignal(signal: "SIGTERM" | "SIGINT", handler: () => void): void;
  exit(code: number): never;
}

function failWith(runtime: RuntimeAdapter, message: string): never {
  console.error(`arbiter: ${message}`);
  return runtime.exit(2);
}

/** The configuration or one clear line on stderr and exit code 2: no stack trace, no secret. */
function loadOrExit(runtime: RuntimeAdapter): { config: Config; tls: ServerTlsOptions | undefined } {
  try {
    const config = loadConfig(runtime.env);
    // The config holds only hashes of these keys; drop the raw values from the environment too.
    runtime.unsetEnv("ARBITER_API_KEYS");
    return { config, tls: serverTlsOptions(config) };
  } catch (error) {
    if (error instanceof ConfigError || error instanceof TlsSetupError) failWith(runtime, error.message);
    throw error;
  }
}

export async function startServer(runtime: RuntimeAdapter): Promise<void> {
  const { config, tls } = loadOrExit(runtime);
  const logger = createLogger({ level: config.LOG_LEVEL, base: { service: "arbiter" } });
  const started = performance.now();
  const deps = await openDeps(config, logger).catch((error: unknown) =>
    failWith(runtime, error instanceof StartupError ? error.message : `startup failed: ${(error as Error).message}`),
  );
  const app = createApp(deps);
  const decisionWorkers = startDecisionWorkers(deps);
  const notificationWorkers = startNotificationWorkers(deps);

  // Counted here rather than asked of the server, so every runtime reports the same number.
  let inFlight = 0;
  const fetch: FetchHandler = async (request, connection) => {
    inFlight++;
    try {
      return await app.fetch(request, connection);
    } finally {
      inFlight--;
    }
  };
  const listen = async (handler: FetchHandler, options: ListenOptions) => {
    try {
      return await runtime.listen(handler, options);
    } catch (error) {
      await closeDeps(deps);
      const reason =
        error instanceof StartupError ? error.message : `cannot listen on ${options.hostname}:${options.port}: ${(error as Error).message}`;
      return failWith(runtime, `${runtime.name}: ${reason}`);
    }
  };
  const server = await listen(fetch, {
    port: config.PORT,
    hostname: config.HOST,
    tls,
    idleTimeoutSeconds: config.HTTP_IDLE_TIMEOUT_S,
    maxHeaderBytes: config.HTTP_MAX_HEADER_BYTES,
  });
  logger.info("listening", {
    url: server.url.toString(),
    runtime: runtime.name,
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
      : await listen(metricsListener(deps.metrics, config.METRICS_TOKEN), {
          port: config.METRICS_PORT,
          hostname: config.METRICS_HOST ?? config.HOST,
          idleTimeoutSeconds: 10,
          maxHeaderBytes: config.HTTP_MAX_HEADER_BYTES,
        });
  if (metricsServer) logger.info("metrics listening", { url: new URL("/metrics", metricsServer.url).toString() });

  let stopping = false;
  async function shutdown(signal: string) {
    if (stopping) return;
    stopping = true;
    logger.info("shutting down", { signal, in_flight: inFlight });
    // Parked long-polls answer and event streams end first, or the drain would wait for them.
    await Promise.all([decisionWorkers.stop(), notificationWorkers.stop()]);
    // Stop accepting, let in-flight requests finish, but never wait longer than the configured bound.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const drained = server.stop(false).then(() => true);
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), config.SHUTDOWN_TIMEOUT_MS);
    });
    const clean = await Promise.race([drained, timedOut]);
    clearTimeout(timer);
    if (!clean) {
      logger.warn("drain timed out; closing remaining connections", { in_flight: inFlight });
      await server.stop(true);
    }
    await Promise.allSettled([stopRetention(), metricsServer?.stop(true), app.flush()]);
    await closeDeps(deps);
    logger.info("stopped", { signal });
    runtime.exit(0);
  }
  runtime.onSignal("SIGTERM", () => void shutdown("SIGTERM"));
  runtime.onSignal("SIGINT", () => void shutdown("SIGINT"));
}
