/**
 * Driving a running Arbiter for the benchmarks: the request bodies of the scenarios, the HTTP calls
 * that set a scenario up, and the client process (holder.ts) that holds B4's long-polls and B5's
 * streams and times their answers. Shared by the full run (run.ts) and the profiler (profile.ts).
 */
import { join } from "node:path";
import postgres from "postgres";
import type { HoldConfig, HoldReport } from "./holder";
import { median, percentile } from "./load";
import { rssMiB, watch } from "./procstat";
import type { LatencyResult } from "./report";
import type { Keys, Server } from "./stack";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const round1 = (n: number) => Math.round(n * 10) / 10;

export const TELEMETRY_BATCH = 1000;
/**
 * B3's wrk connections: more than Arbiter's database pool (10), so the pool never idles; 64 would
 * hold 64,000 events in flight, and their queue (seconds long, gigabytes embedded) would be measured.
 */
export const TELEMETRY_CONNECTIONS = 16;
/** the longest long-poll the API accepts (src/decisions/schemas.ts MAX_WAIT_SECONDS) */
export const WAIT_SECONDS = 55;

export const decisionBody = {
  kind: "deploy",
  title: "Deploy api v1.2.3",
  payload: { service: "api", version: "1.2.3" },
  priority: "medium",
};

/** One telemetry batch of B3 (no ids: every request stores new rows), and the same events as rows. */
export function telemetryEvents(occurredAt: string) {
  return Array.from({ length: TELEMETRY_BATCH }, (_, i) => ({
    type: "agent.step",
    source: `agent-${i % 16}`,
    severity: "info" as const,
    occurred_at: occurredAt,
    attributes: { step: i, host: "bench-host", ok: true },
  }));
}

export async function call(server: Server, path: string, key: string, init: { method?: string; json?: unknown } = {}) {
  const res = await fetch(server.base + path, {
    method: init.method ?? "GET",
    headers: { "X-API-Key": key, ...(init.json === undefined ? {} : { "Content-Type": "application/json" }) },
    ...(init.json === undefined ? {} : { body: JSON.stringify(init.json) }),
  });
  const text = await res.text();
  return { status: res.status, text };
}

export async function createDecision(server: Server, keys: Keys): Promise<string> {
  const res = await call(server, "/v1/decisions", keys.service, { method: "POST", json: decisionBody });
  if (res.status !== 201) throw new Error(`POST /v1/decisions answered ${res.status}: ${res.text.slice(0, 300)}`);
  return (JSON.parse(res.text) as { id: string }).id;
}

export async function createDecisions(server: Server, keys: Keys, n: number): Promise<string[]> {
  const ids: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next++ < n) ids.push(await createDecision(server, keys));
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  return ids;
}

/** `n` pending decisions of the service key: the ones B2 created, topped up through the API. */
export async function pendingDecisions(server: Server, keys: Keys, databaseUrl: string, n: number): Promise<string[]> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql<{ id: string }[]>`select id::text as id from decisions where status = 'pending' order by created_at limit ${n}`;
    const ids = rows.map((r) => r.id);
    return [...ids, ...(await createDecisions(server, keys, n - ids.length))];
  } finally {
    await sql.end({ timeout: 5 });
  }
}

export async function serviceToken(server: Server, keys: Keys): Promise<string> {
  const res = await call(server, "/v1/auth/token", keys.service, { method: "POST" });
  if (res.status !== 200) throw new Error(`POST /v1/auth/token answered ${res.status}: ${res.text.slice(0, 300)}`);
  return (JSON.parse(res.text) as { access_token: string }).access_token;
}

export async function parkedWaiters(server: Server, keys: Keys): Promise<number> {
  const res = await call(server, "/metrics", keys.admin);
  return Number(/^arbiter_decisions_waiters(?:\{[^}]*\})? (\d+)/m.exec(res.text)?.[1] ?? 0);
}

export async function hold(
  config: HoldConfig,
  server: Server,
  whenOpen: () => Promise<void>,
): Promise<{ report: HoldReport; rss: number[] }> {
  const clients = config.mode === "waiters" ? config.waiters : config.streams;
  const holder = Bun.spawn(["bun", "run", join(import.meta.dir, "holder.ts")], {
    env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: String(clients * 2 + 100) },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const reader = holder.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const nextLine = async (timeoutMs: number): Promise<string> => {
    const deadline = performance.now() + timeoutMs;
    while (!buffered.includes("\n")) {
      const timer = sleep(Math.max(0, deadline - performance.now())).then(() => "timeout" as const);
      const chunk = await Promise.race([reader.read(), timer]);
      if (chunk === "timeout") throw new Error(`the client process said nothing within ${timeoutMs} ms`);
      if (chunk.done) throw new Error(`the client process exited (${await holder.exited}) early`);
      buffered += chunk.value;
    }
    const line = buffered.slice(0, buffered.indexOf("\n"));
    buffered = buffered.slice(buffered.indexOf("\n") + 1);
    return line;
  };
  try {
    const rssBefore = rssMiB(server.pid);
    const usage = watch([{ pid: server.pid }], 100);
    holder.stdin.write(`${JSON.stringify(config)}\n`);
    await holder.stdin.flush();
    if ((await nextLine(120_000)) !== "ready") throw new Error("the client process did not open its requests");
    await whenOpen();
    holder.stdin.write("go\n");
    await holder.stdin.flush();
    const report = JSON.parse(await nextLine(120_000)) as HoldReport;
    const [peak] = usage.stop();
    return { report, rss: [rssBefore, peak!.rss_mib!] };
  } finally {
    holder.kill();
    await holder.exited;
  }
}

export function latencyResult(id: string, name: string, clients: number, decisions: number): LatencyResult {
  return { id, name, clients, decisions, errors: [] };
}

export function recordLatencies(result: LatencyResult, report: HoldReport, rss: number[]) {
  const latencies = report.latencies_ms;
  result.outcomes = report.outcomes;
  result.trigger_ms = round1(report.trigger_ms);
  if (latencies.length) {
    result.p50_ms = round1(median(latencies));
    result.p99_ms = round1(percentile(latencies, 0.99));
    result.max_ms = round1(Math.max(...latencies));
  }
  result.rss_before_mib = round1(rss[0]!);
  result.rss_peak_mib = round1(rss[1]!);
  result.extra_rss_mib = round1(rss[1]! - rss[0]!);
  result.kib_per_client = round1(((rss[1]! - rss[0]!) * 1024) / result.clients);
}

/**
 * A latency scenario's timings are those of its round with the median p99 (the lower middle one of
 * an even count), with every round's p99 kept beside them. Its memory is that of the round that
 * grew the most: a round that follows another starts with the server's heap already grown, so its
 * own growth understates what the scenario needs.
 */
export function adoptMedianRound(result: LatencyResult, runs: LatencyResult[]) {
  const measured = runs.filter((run) => run.p99_ms !== undefined);
  if (measured.length === 0) return;
  const byP99 = [...measured].sort((a, b) => a.p99_ms! - b.p99_ms!);
  const { errors: _, ...median } = byP99[Math.floor((byP99.length - 1) / 2)]!;
  const grewMost = measured.reduce((most, run) => ((run.extra_rss_mib ?? 0) > (most.extra_rss_mib ?? 0) ? run : most));
  const { rss_before_mib, rss_peak_mib, extra_rss_mib, kib_per_client } = grewMost;
  Object.assign(result, median, {
    rss_before_mib,
    rss_peak_mib,
    extra_rss_mib,
    kib_per_client,
    p99_rounds_ms: measured.map((run) => run.p99_ms!),
  });
}

export async function longPoll(server: Server, keys: Keys, ids: string[], result: LatencyResult) {
  const { report, rss } = await hold(
    {
      mode: "waiters",
      base: server.base,
      ids,
      waiters: result.clients,
      waitSeconds: WAIT_SECONDS,
      key: keys.service,
      approveKey: keys.operator,
    },
    server,
    async () => {
      const deadline = performance.now() + 120_000;
      while ((await parkedWaiters(server, keys)) < result.clients) {
        if (performance.now() > deadline) throw new Error(`only ${await parkedWaiters(server, keys)} of ${result.clients} waiters parked`);
        await sleep(100);
      }
    },
  );
  recordLatencies(result, report, rss);
  const approved = report.outcomes["200:approved"] ?? 0;
  if (approved !== result.clients)
    throw new Error(`${approved} of ${result.clients} waiters answered approved: ${JSON.stringify(report.outcomes)}`);
  if ((report.trigger_statuses["200"] ?? 0) !== result.decisions)
    throw new Error(`approvals answered ${JSON.stringify(report.trigger_statuses)}`);
}

export async function sse(server: Server, keys: Keys, result: LatencyResult) {
  const { report, rss } = await hold(
    { mode: "streams", base: server.base, streams: result.clients, key: keys.operator, creatorKey: keys.service },
    server,
    async () => {},
  );
  recordLatencies(result, report, rss);
  if (report.latencies_ms.length !== result.clients) {
    throw new Error(`${report.latencies_ms.length} of ${result.clients} streams delivered the change: ${JSON.stringify(report.outcomes)}`);
  }
  if ((report.trigger_statuses["201"] ?? 0) !== 1) throw new Error(`the create answered ${JSON.stringify(report.trigger_statuses)}`);
}
