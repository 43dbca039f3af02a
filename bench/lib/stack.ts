/**
 * Everything the benchmark runs against, started by it and stopped by it: a throwaway PostgreSQL
 * cluster (initdb in a temp directory, a free port), its own redis-server, the ceiling servers and
 * Arbiter itself, spawned as `bun run <root>/src/main.ts` with the root as working directory.
 */
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { clusterAt, createWorkspace, freePort, initCluster, type Workspace } from "../../scripts/lib/cluster";
import { generateApiKey } from "../../src/auth/key-format";
import { createScratchDatabase } from "../../test/helpers/db";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A spawned server: its process, where it listens, how to stop it. */
export interface Server {
  name: string;
  pid: number;
  base: string;
  proc: Bun.Subprocess;
  logFile: string;
  stop(): Promise<void>;
}

/** The last lines a server wrote, for an error message. */
export function tail(server: Pick<Server, "logFile">, lines = 8): string {
  try {
    return readFileSync(server.logFile, "utf8").trim().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no output)";
  }
}

/** Spawns `argv` with exactly `env` (nothing inherited but PATH and HOME), output to `logFile`. */
export function spawnServer(
  name: string,
  argv: string[],
  options: { env: Record<string, string>; cwd: string; port: number; logFile: string },
) {
  const log = createWriteStream(options.logFile);
  const proc = Bun.spawn(argv, {
    cwd: options.cwd,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", TZ: "UTC", ...options.env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) log.write(chunk);
  };
  const drained = Promise.all([drain(proc.stdout), drain(proc.stderr)]).finally(() => log.end());
  const server: Server = {
    name,
    pid: proc.pid,
    base: `http://127.0.0.1:${options.port}`,
    proc,
    logFile: options.logFile,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill("SIGTERM");
        const exited = await Promise.race([proc.exited.then(() => true), sleep(15_000).then(() => false)]);
        if (!exited) proc.kill("SIGKILL");
      }
      await proc.exited;
      await drained;
    },
  };
  return server;
}

/** Polls `url` until it answers 2xx with `accept(body)`; fails when the server exits or after `timeoutMs`. */
export async function waitUntilReady(server: Server, path: string, timeoutMs = 120_000, accept: (body: string) => boolean = () => true) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (server.proc.exitCode !== null) throw new Error(`${server.name} exited with ${server.proc.exitCode}:\n${tail(server)}`);
    if (performance.now() > deadline) throw new Error(`${server.name} not ready within ${timeoutMs} ms:\n${tail(server)}`);
    try {
      const res = await fetch(server.base + path, { keepalive: false });
      if (res.ok && accept(await res.text())) return;
    } catch {
      // not listening yet
    }
    await sleep(10);
  }
}

export const readyPass = (body: string) => (JSON.parse(body) as { status?: string }).status === "pass";

/** Bootstrap API keys, one per role the scenarios need (a requester may not approve its own decision). */
export interface Keys {
  admin: string;
  operator: string;
  service: string;
}
export const newKeys = (): Keys => ({ admin: generateApiKey(), operator: generateApiKey(), service: generateApiKey() });

/** Arbiter's settings for a benchmark: bootstrap keys, no rate limits, warnings-only logs. */
export function arbiterEnv(keys: Keys, port: number, backends: Record<string, string>): Record<string, string> {
  const unlimited = "100000000";
  return {
    PORT: String(port),
    HOST: "127.0.0.1",
    ARBITER_API_KEYS: Object.entries(keys)
      .map(([role, key]) => `${role}:${key}`)
      .join(","),
    // Request logs would measure the pipe to this process; rate limits would cap the figures.
    LOG_LEVEL: "warn",
    RATE_LIMIT_ADMIN: unlimited,
    RATE_LIMIT_OPERATOR: unlimited,
    RATE_LIMIT_SERVICE: unlimited,
    RATE_LIMIT_ANONYMOUS: unlimited,
    // B4 holds 5,000 long-polls and B5 1,000 streams with one key each.
    STREAMS_PER_KEY_MAX: "100000",
    // A JWT obtained at the start stays valid for the whole run.
    TOKEN_TTL_SECONDS: "3600",
    ...backends,
  };
}

/** Spawns Arbiter from `root` (without waiting for it). */
export function spawnArbiter(name: string, root: string, env: Record<string, string>, logFile: string): Server {
  return spawnServer(name, ["bun", "run", join(root, "src/main.ts")], { env, cwd: root, port: Number(env.PORT), logFile });
}

export interface Postgres {
  url: string;
  /** the postmaster: its process tree is the database's CPU */
  pid: number;
  /** a new empty database on the cluster; returns its URL */
  createDatabase(): Promise<string>;
  stop(): Promise<void>;
}

/** initdb on a temp directory, started on a free port (as the `postgres` OS user when we are root). */
export async function startPostgres(): Promise<Postgres> {
  const initdb = Bun.which("initdb");
  if (!initdb) throw new Error("initdb not found: install the PostgreSQL server binaries");
  const ws: Workspace = await createWorkspace(dirname(initdb));
  try {
    const dataDir = await initCluster(ws, "data");
    // Defaults otherwise (fsync and synchronous_commit on): the figures are a durable database's.
    const cluster = await clusterAt(ws, dataDir, { max_connections: 300, shared_buffers: "256MB" });
    await cluster.start();
    const pid = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    return {
      url: cluster.url,
      pid,
      createDatabase: async () => (await createScratchDatabase(cluster.url)).url,
      async stop() {
        try {
          await cluster.stop("fast");
        } finally {
          ws.remove();
        }
      },
    };
  } catch (error) {
    ws.remove();
    throw error;
  }
}

/** A redis-server of our own on a free port, without persistence. */
export async function startRedis(dir: string): Promise<Server> {
  const binary = Bun.which("redis-server");
  if (!binary) throw new Error("redis-server not found: install redis");
  const port = await freePort();
  const server = spawnServer("redis", [binary, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    env: {},
    cwd: dir,
    port,
    logFile: join(dir, "redis.log"),
  });
  const deadline = performance.now() + 10_000;
  for (;;) {
    try {
      const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
      socket.end();
      break;
    } catch {
      if (server.proc.exitCode !== null || performance.now() > deadline) throw new Error(`redis-server did not start:\n${tail(server)}`);
      await sleep(20);
    }
  }
  return { ...server, base: `redis://127.0.0.1:${port}` };
}

/** The ceiling servers of bench/lib/ceiling-server.ts: bare Bun.serve, a bare Hono app, B1's answer, B4's held requests. */
export async function startCeiling(kind: "bun" | "hono" | "answer" | "hold", dir: string): Promise<Server> {
  const port = await freePort();
  const server = spawnServer(`ceiling-${kind}`, ["bun", "run", join(import.meta.dir, "ceiling-server.ts"), kind, String(port)], {
    env: {},
    cwd: dir,
    port,
    logFile: join(dir, `ceiling-${kind}.log`),
  });
  await waitUntilReady(server, kind === "hold" ? "/metrics" : "/", 30_000);
  return server;
}

export const tempDir = () => mkdtempSync(join(tmpdir(), "arbiter-bench-"));
export const removeDir = (dir: string) => rmSync(dir, { recursive: true, force: true });
export { freePort };
