import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { createApp } from "../../src/app";
import { createRedisCache } from "../../src/cache/redis";
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

/** Whether the real Redis answers; tests that need it say so and skip when it does not. */
export async function redisReachable(url = REAL_REDIS_URL): Promise<boolean> {
  const probe = createRedisCache({ url, prefix: "probe:", connectTimeoutMs: 2_000 });
  try {
    await probe.ping();
    return true;
  } catch (error) {
    console.warn(`skipping tests that need Redis: ${url} unreachable (${(error as Error).message})`);
    return false;
  } finally {
    await probe.close();
  }
}

/** Whether the real PostgreSQL answers; tests that need it say so and skip when it does not. */
export async function postgresReachable(url = REAL_POSTGRES_URL): Promise<boolean> {
  const probe = postgres(url, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await probe`select 1`;
    return true;
  } catch (error) {
    console.warn(`skipping tests that need PostgreSQL: ${url} unreachable (${(error as Error).message})`);
    return false;
  } finally {
    await probe.end({ timeout: 1 });
  }
}

const PROJECT_ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** An Arbiter entry point (by default `bun run src/main.ts`) as a child process, its output collected line by line. */
export interface ArbiterProcess {
  proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  stdout: string[];
  stderr: string[];
  /** stdout lines parsed as JSON log records (non-JSON lines skipped) */
  logs(): Record<string, unknown>[];
  /** waits for a log record with this `msg` */
  waitForLog(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<number>;
}

/** `command` runs another entry point (the Deno and Node ones) the same way. */
export function spawnArbiter(env: Record<string, string>, command = ["bun", "run", "src/main.ts"]): ArbiterProcess {
  const proc = Bun.spawn(command, {
    cwd: PROJECT_ROOT,
    // Only what the test names: the tier's DATABASE_URL or REDIS_URL must not leak in.
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", TZ: "UTC", ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const collect = async (stream: ReadableStream<Uint8Array>, lines: string[]) => {
    let partial = "";
    const decoder = new TextDecoder();
    for await (const bytes of stream) {
      const parts = (partial + decoder.decode(bytes, { stream: true })).split("\n");
      partial = parts.pop() ?? "";
      lines.push(...parts);
    }
    partial += decoder.decode();
    if (partial) lines.push(partial);
  };
  const drained = Promise.all([collect(proc.stdout, stdout), collect(proc.stderr, stderr)]);
  const logs = () =>
    stdout.flatMap((line) => {
      try {
        return [JSON.parse(line) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  return {
    proc,
    stdout,
    stderr,
    logs,
    async waitForLog(msg, timeoutMs = 60_000) {
      let found: Record<string, unknown> | undefined;
      await waitFor(
        () => {
          found = logs().find((record) => record.msg === msg);
          if (!found && proc.exitCode !== null)
            throw new Error(`arbiter exited (${proc.exitCode}) before logging "${msg}": ${stderr.join(" | ")}`);
          return found !== undefined;
        },
        `log line "${msg}"`,
        timeoutMs,
      );
      return found as Record<string, unknown>;
    },
    exited: proc.exited.then(async (code) => {
      await drained;
      return code;
    }),
  };
}

/**
 * A TCP proxy to a real server that can be frozen: while frozen, replies are held back (as from a
 * server that stopped answering) and delivered, in order, once thawed.
 */
export async function freezableProxy(target: { hostname: string; port: number }, listenPort = 0) {
  let frozen = false;
  const held: { client: Bun.Socket<unknown>; data: Uint8Array }[] = [];
  const upstreams = new Set<Bun.Socket<unknown>>();
  const listener = Bun.listen<{ upstream?: Bun.Socket<unknown>; pending: Uint8Array[] }>({
    hostname: "127.0.0.1",
    port: listenPort,
    socket: {
      async open(client) {
        client.data = { pending: [] };
        const upstream = await Bun.connect({
          ...target,
          socket: {
            data(_, data) {
              if (frozen) held.push({ client, data: new Uint8Array(data) });
              else client.write(data);
            },
            close() {
              client.end();
            },
          },
        });
        upstreams.add(upstream);
        client.data.upstream = upstream;
        for (const chunk of client.data.pending) upstream.write(chunk);
      },
      data(client, data) {
        if (client.data.upstream) client.data.upstream.write(data);
        else client.data.pending.push(new Uint8Array(data));
      },
      close(client) {
        client.data.upstream?.end();
      },
    },
  });
  return {
    port: listener.port,
    freeze() {
      frozen = true;
    },
    thaw() {
      frozen = false;
      for (const { client, data } of held.splice(0)) client.write(data);
    },
    stop() {
      for (const upstream of upstreams) upstream.end();
      listener.stop(true);
    },
  };
}
