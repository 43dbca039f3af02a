/**
 * Throughput of the same app served by each runtime's entry point: Bun (src/main.ts), Deno
 * (src/deno.ts) and Node 20 (src/node.ts through tsx), all started at once as real processes on
 * the embedded tier (each its own PGlite directory), or with DATABASE_URL/REDIS_URL set sharing a
 * scratch database on that server and the Redis, measured in interleaved rounds within one run.
 *   bare:          GET /health/live — routing, middleware, JSON; no authentication, no I/O
 *   authenticated: GET /v1/decisions/<id> as admin — API-key check (cached) + rate limit + RBAC +
 *                  the decision from the cache (no database round trip)
 *   authenticated + database: GET /v1/keys/<id> as admin — the same, plus one row read
 * The load comes from this Bun process: BENCH_CONCURRENCY keep-alive clients for BENCH_SECONDS per
 * sample. Figures are medians over BENCH_ROUNDS; ratios are against Bun in the same run.
 * Writes bench/results/runtimes.json (or bench/results/$BENCH_OUTPUT).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { generateApiKey } from "../src/auth/key-format";
import { type ArbiterProcess, closedPort, spawnArbiter, tempDir, waitFor, within } from "../test/foundation/support";
import { createScratchDatabase } from "../test/helpers/db";
import { requestsPerSecond as measureRequests, median } from "./lib/load";

const SECONDS_PER_SAMPLE = Number(process.env.BENCH_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const RESULTS = new URL("./results/", import.meta.url);
const OUTPUT = new URL(process.env.BENCH_OUTPUT ?? "runtimes.json", RESULTS);

const RUNTIMES = {
  bun: ["bun", "run", "src/main.ts"],
  deno: ["deno", "run", "--allow-net", "--allow-env", "--allow-read", "--allow-write", "--allow-sys", "src/deno.ts"],
  node: ["node", "--import", "tsx", "src/node.ts"],
} as const;
type RuntimeName = keyof typeof RUNTIMES;

const LOAD_AT_START = loadavg().map((n) => Number(n.toFixed(2)));

const requestsPerSecond = (url: string, headers: Record<string, string>) =>
  measureRequests(url, headers, { seconds: SECONDS_PER_SAMPLE, concurrency: CONCURRENCY });

interface Served {
  process: ArbiterProcess;
  base: string;
  keyId: string;
  decisionId: string;
}

const adminKey = generateApiKey();
const scratch = process.env.DATABASE_URL ? await createScratchDatabase(process.env.DATABASE_URL) : undefined;

async function start(name: RuntimeName): Promise<Served> {
  const port = await closedPort();
  const env: Record<string, string> = {
    PORT: String(port),
    HOST: "127.0.0.1",
    ARBITER_API_KEYS: `admin:${adminKey}`,
    // Request logging would measure the pipe to this process; rate limits would cap the figures.
    LOG_LEVEL: "warn",
    RATE_LIMIT_ADMIN: "100000000",
    // The decision read stays in the cache for the whole run.
    DECISION_CACHE_TTL_MS: "3600000",
    CACHE_PREFIX: `bench-rt-${name}-${crypto.randomUUID().slice(0, 8)}:`,
  };
  if (scratch) env.DATABASE_URL = scratch.url;
  else env.DATA_DIR = tempDir(`bench-${name}`);
  if (process.env.REDIS_URL) env.REDIS_URL = process.env.REDIS_URL;
  const child = spawnArbiter(env, [...RUNTIMES[name]]);
  const base = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (child.proc.exitCode !== null) throw new Error(`${name} exited: ${child.stderr.join(" | ")}`);
      return (await fetch(`${base}/health/live`).catch(() => undefined))?.status === 200;
    },
    `${name} to answer`,
    90_000,
  );
  const headers = { "X-API-Key": adminKey, "Content-Type": "application/json" };
  const keys = (await (await fetch(`${base}/v1/keys`, { headers })).json()) as { data: { id: string }[] };
  const decision = (await (
    await fetch(`${base}/v1/decisions`, { method: "POST", headers, body: JSON.stringify({ kind: "bench", title: "bench", payload: {} }) })
  ).json()) as { id: string };
  return { process: child, base, keyId: keys.data[0]!.id, decisionId: decision.id };
}

const names = Object.keys(RUNTIMES) as RuntimeName[];
const served = {} as Record<RuntimeName, Served>;
try {
  for (const name of names) served[name] = await start(name);
  const auth = { "X-API-Key": adminKey };
  const targets = {
    bare_route: (s: Served) => requestsPerSecond(`${s.base}/health/live`, {}),
    authenticated_get: (s: Served) => requestsPerSecond(`${s.base}/v1/decisions/${s.decisionId}`, auth),
    authenticated_get_database: (s: Served) => requestsPerSecond(`${s.base}/v1/keys/${s.keyId}`, auth),
  };
  type Target = keyof typeof targets;
  const targetNames = Object.keys(targets) as Target[];
  const samples = Object.fromEntries(
    names.map((name) => [name, Object.fromEntries(targetNames.map((t) => [t, [] as number[]]))]),
  ) as Record<RuntimeName, Record<Target, number[]>>;
  // Warm each server (JIT, key and decision caches, connection pool) before measuring.
  for (const name of names) for (const target of targetNames) await targets[target](served[name]);
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of names) for (const target of targetNames) samples[name][target].push(await targets[target](served[name]));
  }

  const results = {
    benchmark: "runtimes",
    recorded_at: new Date().toISOString(),
    tier: scratch ? "postgres" : "embedded",
    load_average_at_start: LOAD_AT_START,
    cache: process.env.REDIS_URL ? "redis" : "memory",
    settings: { seconds_per_sample: SECONDS_PER_SAMPLE, rounds: ROUNDS, concurrency: CONCURRENCY, load_generator: `bun ${Bun.version}` },
    versions: {
      bun: Bun.version,
      deno: Bun.spawnSync(["deno", "--version"]).stdout.toString().split("\n")[0],
      node: Bun.spawnSync(["node", "--version"]).stdout.toString().trim(),
    },
    requests_per_second: Object.fromEntries(
      names.map((name) => {
        const figures = targetNames.flatMap((target) => {
          const value = median(samples[name][target]);
          return [
            [target, Math.round(value)],
            [`${target}_vs_bun`, Number((value / median(samples.bun[target])).toFixed(2))],
          ];
        });
        const raw = Object.fromEntries(targetNames.map((target) => [target, samples[name][target].map(Math.round)]));
        return [name, { ...Object.fromEntries(figures), samples: raw }];
      }),
    ),
  };
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(OUTPUT, `${JSON.stringify(results, null, 2)}\n`);
  console.log(JSON.stringify(results, null, 2));
} finally {
  for (const { process: child } of Object.values(served)) {
    child.proc.kill("SIGTERM");
    await within(child.exited, 20_000, "a benchmarked server to stop").catch(() => child.proc.kill("SIGKILL"));
  }
  await scratch?.drop();
}
