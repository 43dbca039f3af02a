import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../../src/app";
import type { Cache } from "../../src/cache/types";
import { loadConfig } from "../../src/config";
import type { DatabaseHandle } from "../../src/db/client";
import { systemClock, VERSION } from "../../src/deps";
import { createLogger } from "../../src/observability/logger";
import { createMetricsRegistry } from "../../src/observability/metrics";

/** A local TCP port with nothing listening on it: connections to it are refused at once. */
export async function closedPort(): Promise<number> {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = listener;
  listener.stop(true);
  return port;
}

/** A TCP server that accepts connections and never answers: the worst kind of dependency. */
export function silentServer(): { port: number; stop(): void } {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  return { port: listener.port, stop: () => listener.stop(true) };
}

/** Polls `condition` until it holds; fails with `message` after `timeoutMs` (a bound against hangs, not a timing assertion). */
export async function waitFor(condition: () => boolean | Promise<boolean>, message: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${message}`);
    await Bun.sleep(10);
  }
}

/** Settles `promise`, or rejects after `timeoutMs` naming what hung. */
export async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, hang]);
  } finally {
    clearTimeout(timer);
  }
}

export const tempDir = (label: string) => mkdtempSync(join(tmpdir(), `arbiter-${label}-`));

/** The real servers every tier can reach (they always run beside the test suite). */
export const REAL_REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
export const REAL_POSTGRES_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/**
 * The real app over the given backends, answered in process (`app.request`), for dependencies a
 * full test app cannot run on: a database that is down cannot hold the test app's API keys.
 */
export function appOver(backends: { database: DatabaseHandle; cache: Cache; env?: Record<string, string> }) {
  const config = loadConfig({ LOG_LEVEL: "debug", ...backends.env });
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({ level: config.LOG_LEVEL, sink: (line) => logs.push(JSON.parse(line)) });
  const metrics = createMetricsRegistry({ version: VERSION });
  const app = createApp({ ...backends, config, logger, clock: systemClock, meter: metrics.meter, metrics, version: VERSION });
  return { app, logs };
}
