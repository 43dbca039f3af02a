/**
 * Decisions under load, against the real server process (src/main.ts) on real PostgreSQL.
 *   Create throughput: BENCH_CONCURRENCY clients POSTing /v1/decisions, interleaved in rounds with a
 *   baseline measured in the same run — reading one decision by id (cache hit, no database write);
 *   the ratio of medians is what a create costs relative to a cached read.
 *   Long-poll waiters: BENCH_WAITERS concurrent `GET /v1/decisions/:id?wait=55` on one decision, held
 *   by a separate client process; the server's resident memory before and with them parked, then the
 *   time from sending the approval to every waiter answered. Baseline in the same run: one waiter.
 * Needs DATABASE_URL (a scratch database is created beside it and dropped); REDIS_URL is passed on.
 * Writes bench/results/decisions.json (or BENCH_OUTPUT).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { generateApiKey } from "../src/auth/key-format";
import { createScratchDatabase } from "../test/helpers/db";
import { median, percentile } from "./lib/load";

const SECONDS_PER_SAMPLE = Number(process.env.BENCH_SECONDS ?? 1);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const WAITERS = Number(process.env.BENCH_WAITERS ?? 5000);

if (!process.env.DATABASE_URL) {
  console.error("bench/decisions.ts measures real PostgreSQL: set DATABASE_URL (a scratch database is created beside it)");
  process.exit(2);
}

const epochMs = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** resident memory of a process in MiB (Linux) */
const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;

const scratch = await createScratchDatabase(process.env.DATABASE_URL);
const keys = { admin: generateApiKey(), operator: generateApiKey(), service: generateApiKey() };
const probe = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
const port = probe.port;
await probe.stop(true);
const base = `http://127.0.0.1:${port}`;
const unlimited = "100000000";
const server = Bun.spawn(["bun", "run", "src/main.ts"], {
  env: {
    ...process.env,
    PORT: String(port),
    HOST: "127.0.0.1",
    DATABASE_URL: scratch.url,
    ARBITER_API_KEYS: Object.entries(keys)
      .map(([role, key]) => `${role}:${key}`)
      .join(","),
    LOG_LEVEL: "warn",
    RATE_LIMIT_ADMIN: unlimited,
    RATE_LIMIT_OPERATOR: unlimited,
    RATE_LIMIT_SERVICE: unlimited,
  },
  stdout: "ignore",
  stderr: "ignore",
});

const call = (path: string, role: keyof typeof keys, init: { method?: string; json?: unknown } = {}) =>
  fetch(base + path, {
    method: init.method ?? "GET",
    headers: { "X-API-Key": keys[role], ...(init.json === undefined ? {} : { "Content-Type": "application/json" }) },
    ...(init.json === undefined ? {} : { body: JSON.stringify(init.json) }),
  });
const decisionBody = (i: number) => ({
  kind: "deploy",
  title: `bench ${i}`,
  payload: { service: "checkout", version: `1.0.${i}`, rollout: { percent: 10, regions: ["eu-west-1"] } },
  priority: "high",
});
async function createOne(i: number): Promise<string> {
  const res = await call("/v1/decisions", "service", { method: "POST", json: decisionBody(i) });
  if (res.status !== 201) throw new Error(`create answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

/** `CONCURRENCY` clients running `op` for the sample duration; returns operations per second. */
async function perSecond(op: (i: number) => Promise<unknown>): Promise<number> {
  const end = performance.now() + SECONDS_PER_SAMPLE * 1000;
  let count = 0;
  const worker = async () => {
    while (performance.now() < end) {
      await op(count);
      count++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return count / SECONDS_PER_SAMPLE;
}

async function waiterCount(): Promise<number> {
  const text = await (await call("/metrics", "admin")).text();
  return Number(/^arbiter_decisions_waiters (\d+)/m.exec(text)?.[1] ?? 0);
}

/** Parks `n` waiters on a fresh decision, approves it, and times every answer. */
async function waitersRun(n: number) {
  const id = await createOne(-n);
  await sleep(500);
  Bun.gc(true);
  const rssBefore = rssMiB(server.pid);
  const client = Bun.spawn(["bun", "run", "bench/decisions-waiters.ts", base, id, keys.service, String(n)], {
    env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: String(n + 100) },
    stdout: "pipe",
    stderr: "inherit",
  });
  const parkDeadline = Date.now() + 60_000;
  while ((await waiterCount()) < n) {
    if (Date.now() > parkDeadline) throw new Error(`only ${await waiterCount()} of ${n} waiters parked`);
    await sleep(100);
  }
  const rssParked = rssMiB(server.pid);
  const approvedAt = epochMs();
  const approve = await call(`/v1/decisions/${id}/approve`, "operator", { method: "POST", json: { reason: "bench" } });
  const approveMs = epochMs() - approvedAt;
  if (approve.status !== 200) throw new Error(`approve answered ${approve.status}`);
  const report = JSON.parse(await new Response(client.stdout).text()) as { answered_at: number[]; statuses: Record<string, number> };
  await client.exited;
  const latencies = report.answered_at.map((at) => at - approvedAt);
  if (report.statuses[`200:approved`] !== n) throw new Error(`waiters answered ${JSON.stringify(report.statuses)}`);
  // One waiter's memory is below the noise of a resident-set reading: memory is reported for many.
  const memory =
    n > 1
      ? {
          server_rss_mib_before: Number(rssBefore.toFixed(1)),
          server_rss_mib_parked: Number(rssParked.toFixed(1)),
          server_kib_per_waiter: Number((((rssParked - rssBefore) * 1024) / n).toFixed(2)),
        }
      : {};
  return {
    waiters: n,
    ...memory,
    approve_request_ms: Number(approveMs.toFixed(1)),
    approval_to_first_answer_ms: Number(Math.min(...latencies).toFixed(1)),
    approval_to_median_answer_ms: Number(median(latencies).toFixed(1)),
    approval_to_p99_answer_ms: Number(percentile(latencies, 0.99).toFixed(1)),
    approval_to_all_answered_ms: Number(Math.max(...latencies).toFixed(1)),
  };
}

try {
  const readyDeadline = Date.now() + 30_000;
  while (
    !(await fetch(`${base}/health/ready`).then(
      (r) => r.ok,
      () => false,
    ))
  ) {
    if (Date.now() > readyDeadline) throw new Error("server did not become ready");
    await sleep(100);
  }
  const readTarget = await createOne(0);
  // Warm up both paths (JIT, connection pool, cache).
  await perSecond(createOne);
  await perSecond(() => call(`/v1/decisions/${readTarget}`, "operator").then((r) => r.arrayBuffer()));

  const creates: number[] = [];
  const reads: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    creates.push(await perSecond(createOne));
    reads.push(await perSecond(() => call(`/v1/decisions/${readTarget}`, "operator").then((res) => res.arrayBuffer())));
  }
  const single = await waitersRun(1);
  const many = await waitersRun(WAITERS);

  const results = {
    benchmark: "decisions",
    at: new Date().toISOString(),
    runtime: `bun ${Bun.version}`,
    backends: { database: "postgres", cache: process.env.REDIS_URL ? "redis" : "memory" },
    settings: { seconds_per_sample: SECONDS_PER_SAMPLE, rounds: ROUNDS, http_concurrency: CONCURRENCY, waiters: WAITERS },
    create: {
      creates_per_second_median: Math.round(median(creates)),
      baseline_cached_reads_per_second_median: Math.round(median(reads)),
      create_to_cached_read_ratio: Number((median(creates) / median(reads)).toFixed(3)),
      samples: { creates: creates.map(Math.round), reads: reads.map(Math.round) },
    },
    long_poll: {
      baseline_one_waiter: single,
      many_waiters: many,
      all_answered_vs_one_waiter_ratio: Number((many.approval_to_all_answered_ms / single.approval_to_all_answered_ms).toFixed(1)),
    },
  };
  const output = process.env.BENCH_OUTPUT ?? "bench/results/decisions.json";
  mkdirSync("bench/results", { recursive: true });
  writeFileSync(output, `${JSON.stringify(results, null, 2)}\n`);
  console.log(JSON.stringify(results, null, 2));
} finally {
  server.kill("SIGTERM");
  await server.exited;
  await scratch.drop();
}
