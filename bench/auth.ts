/**
 * Cost of authentication.
 *   In-process: API-key verification per second (cache hit, cache miss = database lookup) and JWT
 *   verification per second (signature and claims alone; and the full path with the session cached).
 *   Over HTTP: the same trivial handler mounted twice — unauthenticated at /bench/ping and behind
 *   authentication + rate limiting at /v1/bench/ping — called with no credential, an API key and a
 *   service token, interleaved in rounds within one run; the ratio of medians is the cost of auth.
 * Backends: PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set, otherwise embedded (PGlite, memory).
 * Writes bench/results/auth.json (or the file named by BENCH_OUTPUT).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { createApp } from "../src/app";
import { createApiKey } from "../src/auth/api-keys";
import { requirePermission } from "../src/auth/rbac";
import { createTokenSigner } from "../src/auth/tokens";
import { createVerifier } from "../src/auth/verifier";
import { createCache } from "../src/cache";
import { loadConfig } from "../src/config";
import { openDatabase, systemClock, VERSION } from "../src/deps";
import { createLogger } from "../src/observability/logger";
import { createMetricsRegistry } from "../src/observability/metrics";
import { requestsPerSecond as measureRequests, median } from "./lib/load";

const SECONDS_PER_SAMPLE = Number(process.env.BENCH_SECONDS ?? 1);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);

const round = (n: number) => Math.round(n);

/** Runs `op` back to back for the sample duration; returns operations per second. */
async function opsPerSecond(op: () => Promise<unknown>): Promise<number> {
  const end = performance.now() + SECONDS_PER_SAMPLE * 1000;
  let count = 0;
  while (performance.now() < end) {
    for (let i = 0; i < 50; i++) await op();
    count += 50;
  }
  return count / SECONDS_PER_SAMPLE;
}

/** `CONCURRENCY` clients issuing requests for the sample duration; returns requests per second. */
const requestsPerSecond = (url: string, headers: Record<string, string>) =>
  measureRequests(url, headers, { seconds: SECONDS_PER_SAMPLE, concurrency: CONCURRENCY });

const config = loadConfig({ ...process.env, LOG_LEVEL: "silent", DATA_DIR: process.env.DATA_DIR ?? "", RUN_MIGRATIONS: "true" });
const database = process.env.DATABASE_URL ? await openDatabase(config) : await (await import("../src/db/client")).openPglite();
await database.migrate();
const cache = createCache(config);
const logger = createLogger({ level: "silent" });
const metrics = createMetricsRegistry({ version: VERSION });
const deps = { config, database, cache, logger, clock: systemClock, meter: metrics.meter, metrics, version: VERSION };

const { key, row } = await createApiKey(database.db, { name: "bench", role: "admin" }, new Date());
const signer = createTokenSigner({ db: database.db, config, clock: systemClock });
const verifierOptions = { db: database.db, clock: systemClock, logger, signer, clockToleranceSeconds: 5 };
const cached = createVerifier({ ...verifierOptions, ttlMs: 60_000 });
const uncached = createVerifier({ ...verifierOptions, ttlMs: 0 });

const app = createApp(deps);
const ping = (c: { json: (body: unknown) => Response }) => c.json({ ok: true });
app.get("/bench/ping", ping);
app.get("/v1/bench/ping", requirePermission("metrics:read"), ping);
const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: app.fetch });
const base = server.url.toString().replace(/\/$/, "");

const issued = await fetch(`${base}/v1/auth/token`, { method: "POST", headers: { "X-API-Key": key } });
const token = ((await issued.json()) as { access_token: string }).access_token;

// Warm up every path once (JIT, caches, key set).
await cached.verify(key);
await cached.verify(token);
await signer.verify(token);
const credentials: Record<string, string>[] = [{}, { "X-API-Key": key }, { Authorization: `Bearer ${token}` }];
for (const headers of credentials) await requestsPerSecond(`${base}/v1/bench/ping`, headers).catch(() => 0);

const samples: Record<string, number[]> = {
  api_key_cache_hit: [],
  api_key_cache_miss: [],
  jwt_signature_and_claims: [],
  jwt_full_path_session_cached: [],
  http_unauthenticated: [],
  http_api_key: [],
  http_jwt: [],
};
for (let r = 0; r < ROUNDS; r++) {
  samples.api_key_cache_hit!.push(await opsPerSecond(() => cached.verify(key)));
  samples.api_key_cache_miss!.push(await opsPerSecond(() => uncached.verify(key)));
  samples.jwt_signature_and_claims!.push(await opsPerSecond(() => signer.verify(token)));
  samples.jwt_full_path_session_cached!.push(await opsPerSecond(() => cached.verify(token)));
  samples.http_unauthenticated!.push(await requestsPerSecond(`${base}/bench/ping`, {}));
  samples.http_api_key!.push(await requestsPerSecond(`${base}/v1/bench/ping`, { "X-API-Key": key }));
  samples.http_jwt!.push(await requestsPerSecond(`${base}/v1/bench/ping`, { Authorization: `Bearer ${token}` }));
}

const pairedRatio = (numerator: string, denominator: string) =>
  Number(median(samples[numerator]!.map((value, i) => value / samples[denominator]![i]!)).toFixed(3));
const medians = Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, round(median(values))]));
const results = {
  benchmark: "auth",
  at: new Date().toISOString(),
  runtime: `bun ${Bun.version}`,
  backends: { database: database.kind, cache: cache.kind },
  settings: { seconds_per_sample: SECONDS_PER_SAMPLE, rounds: ROUNDS, http_concurrency: CONCURRENCY },
  in_process_per_second: {
    api_key_cache_hit: medians.api_key_cache_hit,
    api_key_cache_miss: medians.api_key_cache_miss,
    jwt_signature_and_claims: medians.jwt_signature_and_claims,
    jwt_full_path_session_cached: medians.jwt_full_path_session_cached,
  },
  http_requests_per_second: {
    unauthenticated: medians.http_unauthenticated,
    api_key: medians.http_api_key,
    jwt: medians.http_jwt,
  },
  // Each round measures the variants back to back, so a ratio per round cancels most of the drift
  // of a shared machine's load; the median of those ratios is the figure to quote.
  ratios: {
    api_key_vs_unauthenticated: pairedRatio("http_api_key", "http_unauthenticated"),
    jwt_vs_unauthenticated: pairedRatio("http_jwt", "http_unauthenticated"),
    cache_hit_vs_miss: pairedRatio("api_key_cache_hit", "api_key_cache_miss"),
  },
  samples: Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, values.map(round)])),
  key_id: row.id,
};

mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
writeFileSync(new URL(`./results/${process.env.BENCH_OUTPUT ?? "auth.json"}`, import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
console.log(JSON.stringify(results, null, 2));
await server.stop(true);
await Promise.allSettled([cache.close(), database.close(), metrics.shutdown()]);
process.exit(0);
