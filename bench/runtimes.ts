/**
 * Throughput of the same app served by each runtime's entry point: Bun (src/main.ts), Deno
 * (src/deno.ts) and Node 20 (src/node.ts through tsx), all started at once as real processes on
 * the embedded tier (each its own PGlite directory), or with DATABASE_URL/REDIS_URL set sharing a
 * scratch database on that server and the Redis, measured in interleaved rounds within one run.
 *   bare:          GET /health/live — routing, middleware, JSON; no authentication, no I/O
 *   authenticated: GET /v1/keys/<id> as admin — API-key check (cached) + rate limit + one row read
 * The load comes from this Bun process: BENCH_CONCURRENCY keep-alive clients for BENCH_SECONDS per
 * sample. Figures are medians over BENCH_ROUNDS; ratios are against Bun in the same run.
 * Writes bench/results/runtimes.json (or the file named by BENCH_OUTPUT).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname } from "node:path";
import { generateApiKey } from "../src/auth/key-format";
import { type ArbiterProcess, spawnArbiter, tempDir, waitFor, within } from "../test/foundation/support";
import { createScratchDatabase } from "../test/helpers/db";

const SECONDS_PER_SAMPLE = Number(process.env.BENCH_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const OUTPUT = process.env.BENCH_OUTPUT ?? "bench/results/runtimes.json";

const RUNTIMES = {
  bun: ["bun", "run", "src/main.ts"],
  deno: ["deno", "run", "--allow-net", "--allow-env", "--allow-read", "--allow-write", "--allow-sys", "src/deno.ts"],
  node: ["node", "--import", "tsx", "src/node.ts"],
} as const;
type RuntimeName = keyof typeof RUNTIMES;

const LOAD_AT_START = loadavg().map((n) => Number(n.toFixed(2)));

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function freePort(): Promise<number> {
  const probe = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const port = probe.port!;
  await probe.stop(true);
  return port;
}

/** `CONCURRENCY` clients issuing requests for the sample duration; returns requests per second. */
async function requestsPerSecond(url: string, headers: Record<string, string>): Promise<number> {
  const end = performance.now() + SECONDS_PER_SAMPLE * 1000;
  let count = 0;
  const worker = async () => {
    while (performance.now() < end) {
      const res = await fetch(url, { headers });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
      count++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return count / SECONDS_PER_SAMPLE;
}

interface Served {
  process: ArbiterProcess;
  base: string;
  keyId: string;
}

const adminKey = generateApiKey();
const scratch = process.env.DATABASE_URL ? await createScratchDatabase(process.env.DATABASE_URL) : undefined;

async function start(name: RuntimeName): Promise<Served> {
  const port = await freePort();
  const env: Record<string, string> = {
    PORT: String(port),
    HOST: "127.0.0.1",
    ARBITER_API_KEYS: `admin:${adminKey}`,
    // Request logging would measure the pipe to this process; rate limits would cap the figures.
    LOG_LEVEL: "warn",
    RATE_LIMIT_ADMIN: "100000000",
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
  const res = await fetch(`${base}/v1/keys`, { headers: { "X-API-Key": adminKey } });
  const { data } = (await res.json()) as { data: { id: string }[] };
  return { process: child, base, keyId: data[0]!.id };
}

const names = Object.keys(RUNTIMES) as RuntimeName[];
const served = {} as Record<RuntimeName, Served>;
try {
  for (const name of names) served[name] = await start(name);
  const samples = Object.fromEntries(names.map((name) => [name, { bare: [] as number[], authenticated: [] as number[] }])) as Record<
    RuntimeName,
    { bare: number[]; authenticated: number[] }
  >;
  // Warm each server (JIT, key cache, connection pool) before measuring.
  for (const name of names) {
    await requestsPerSecond(`${served[name].base}/health/live`, {});
    await requestsPerSecond(`${served[name].base}/v1/keys/${served[name].keyId}`, { "X-API-Key": adminKey });
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of names) {
      const { base, keyId } = served[name];
      samples[name].bare.push(await requestsPerSecond(`${base}/health/live`, {}));
      samples[name].authenticated.push(await requestsPerSecond(`${base}/v1/keys/${keyId}`, { "X-API-Key": adminKey }));
    }
  }

  const bun = { bare: median(samples.bun.bare), authenticated: median(samples.bun.authenticated) };
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
        const bare = Math.round(median(samples[name].bare));
        const authenticated = Math.round(median(samples[name].authenticated));
        return [
          name,
          {
            bare_route: bare,
            authenticated_get: authenticated,
            bare_vs_bun: Number((bare / bun.bare).toFixed(2)),
            authenticated_vs_bun: Number((authenticated / bun.authenticated).toFixed(2)),
            samples: { bare_route: samples[name].bare.map(Math.round), authenticated_get: samples[name].authenticated.map(Math.round) },
          },
        ];
      }),
    ),
  };
  mkdirSync(dirname(OUTPUT), { recursive: true });
  writeFileSync(OUTPUT, `${JSON.stringify(results, null, 2)}\n`);
  console.log(JSON.stringify(results, null, 2));
} finally {
  for (const { process: child } of Object.values(served)) {
    child.proc.kill("SIGTERM");
    await within(child.exited, 20_000, "a benchmarked server to stop").catch(() => child.proc.kill("SIGKILL"));
  }
  await scratch?.drop();
}
