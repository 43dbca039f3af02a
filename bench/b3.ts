/**
 * `bun run bench/b3.ts`: scenario B3 alone (telemetry ingest, 1,000-event batches without ids, 16
 * wrk connections, a pool of 10), for comparing checkouts of the server against each other and
 * against the COPY ceiling, in interleaved rounds, on an existing PostgreSQL and Redis.
 *
 *   B3_PG_URL=postgres://postgres@127.0.0.1:5432/postgres   a server to create scratch databases on,
 *                                                           or `own` for a throwaway cluster like bench/run.ts's
 *   B3_REDIS_URL=redis://127.0.0.1:6379
 *   B3_ROOTS=before=/tmp/b3-before,after=.                   checkouts to measure (label=path)
 *   B3_ROUNDS=3 B3_SECONDS=8 B3_WARMUP=2
 *
 * Each checkout gets its own database (its own migrations); the table is truncated before every
 * window, so each starts from the same size. CPU is reported per 1,000 events stored: the server's
 * process, and PostgreSQL's backends connected to that database (the shared cluster's other
 * databases are not counted), plus the cluster's WAL writer, checkpointer and background writer.
 * For the COPY ceiling the "server" column is its client (this process: building and sending the
 * text). The machine is 2 cores; `machine busy` and `busiest` say how much else ran in the window.
 */
import { readdirSync, readFileSync } from "node:fs";
import { cpus } from "node:os";
import { join, resolve } from "node:path";
import { finished } from "node:stream/promises";
import postgres from "postgres";
import { createScratchDatabase } from "../test/helpers/db";
import { TELEMETRY_BATCH, TELEMETRY_CONNECTIONS, telemetryEvents } from "./lib/drive";
import { cpuSeconds, reapedChildrenSeconds } from "./lib/procstat";
import {
  arbiterEnv,
  freePort,
  newKeys,
  readyPass,
  removeDir,
  type Server,
  spawnArbiter,
  startPostgres,
  tempDir,
  waitUntilReady,
} from "./lib/stack";
import { postScript, runWrk } from "./lib/wrk";

/** `own`: a throwaway cluster like bench/run.ts starts (initdb, shared_buffers 256MB) */
const PG_SETTING = process.env.B3_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const REDIS_URL = process.env.B3_REDIS_URL ?? "redis://127.0.0.1:6379";
const ROUNDS = Number(process.env.B3_ROUNDS ?? 3);
const SECONDS = Number(process.env.B3_SECONDS ?? 8);
const WARMUP = Number(process.env.B3_WARMUP ?? 2);
const POOL = 10;
const ROOTS = (process.env.B3_ROOTS ?? "current=.").split(",").map((entry) => {
  const [label, path] = entry.split("=");
  return { label: label!, root: resolve(path!) };
});

const log = (line: string) => console.error(`b3 ${new Date().toISOString().slice(11, 19)} ${line}`);

function cmdline(pid: number) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
  } catch {
    return "";
  }
}
/** PostgreSQL processes: backends of `database`, and the cluster's writers (shared by every database). */
function postgresPids(database: string) {
  const backends: number[] = [];
  const writers: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const line = cmdline(Number(entry));
    if (!line.startsWith("postgres:")) continue;
    if (line.includes(` ${database} `)) backends.push(Number(entry));
    else if (/walwriter|checkpointer|background writer/.test(line)) writers.push(Number(entry));
  }
  return { backends, writers };
}
/** all cores' busy and total jiffies since boot (/proc/stat) */
function machineTicks() {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = fields[3]! + fields[4]!;
  const total = fields.reduce((sum, n) => sum + n, 0);
  return { busy: total - idle, total };
}
/** CPU seconds of every process now, with its command line (who else is busy in a window) */
function allProcesses(): Map<number, { seconds: number; name: string }> {
  const seen = new Map<number, { seconds: number; name: string }>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const seconds = cpuSeconds(pid);
    if (seconds > 0) seen.set(pid, { seconds, name: cmdline(pid).slice(0, 60) });
  }
  return seen;
}
/** CPU seconds over a window: the server, the database's backends (their set read at both ends), the writers. */
function cpuWindow(serverPid: number | undefined, database: string) {
  const before = new Map<number, number>();
  const read = () => {
    const { backends, writers } = postgresPids(database);
    return { backends, writers, server: serverPid ? cpuSeconds(serverPid) : 0 };
  };
  const start = read();
  for (const pid of [...start.backends, ...start.writers]) before.set(pid, cpuSeconds(pid));
  const t0 = performance.now();
  const machine0 = machineTicks();
  const all0 = allProcesses();
  return () => {
    const all1 = allProcesses();
    const busiest = [...all1]
      .map(([pid, p]) => ({ pid, name: p.name, seconds: p.seconds - (all0.get(pid)?.seconds ?? 0) }))
      .filter((p) => p.seconds > 0)
      .sort((a, b) => b.seconds - a.seconds)
      .slice(0, 4);
    const end = read();
    const machine1 = machineTicks();
    const seconds = (performance.now() - t0) / 1000;
    const delta = (pids: number[]) => pids.reduce((sum, pid) => sum + cpuSeconds(pid) - (before.get(pid) ?? 0), 0);
    return {
      seconds,
      server: end.server - start.server,
      backends: delta(end.backends),
      writers: delta(end.writers),
      /** the whole machine's busy share, every process on it (2 cores = 200%) */
      machine_pct: Math.round(((machine1.busy - machine0.busy) / (machine1.total - machine0.total)) * 100 * cpus().length),
      busiest: busiest.map((p) => `${p.pid} ${Math.round((p.seconds / ((performance.now() - t0) / 1000)) * 100)}% ${p.name}`),
    };
  };
}

interface Row {
  round: number;
  label: string;
  events_per_s: number;
  server_ms_per_1k: number;
  pg_ms_per_1k: number;
  writers_ms_per_1k: number;
  server_cpu_pct: number;
  pg_cpu_pct: number;
  machine_pct: number;
  busiest?: string[];
  /** the load generator's CPU per 1,000 events (wrk) */
  wrk_ms_per_1k?: number;
  p50_ms?: number;
  p99_ms?: number;
}

async function main() {
  const dir = tempDir();
  const occurredAt = new Date().toISOString();
  const body = JSON.stringify({ events: telemetryEvents(occurredAt) });
  const script = postScript(dir, "b3", body);
  const targets: { label: string; server: Server; db: string; url: string; drop(): Promise<void>; key: string }[] = [];
  const rows: Row[] = [];
  const cluster = PG_SETTING === "own" ? await startPostgres() : undefined;
  const pgUrl = cluster?.url ?? PG_SETTING;
  try {
    for (const { label, root } of ROOTS) {
      const scratch = await createScratchDatabase(pgUrl);
      const keys = newKeys();
      const port = await freePort();
      const env = arbiterEnv(keys, port, { DATABASE_URL: scratch.url, REDIS_URL, DATABASE_POOL_MAX: String(POOL) });
      const server = spawnArbiter(`arbiter-${label}`, root, env, join(dir, `${label}.log`));
      targets.push({ label, server, db: scratch.name, url: scratch.url, drop: scratch.drop, key: keys.service });
      await waitUntilReady(server, "/health/ready", 120_000, readyPass);
      const res = await fetch(`${server.base}/v1/telemetry/events`, {
        method: "POST",
        headers: { "X-API-Key": keys.service, "Content-Type": "application/json" },
        body,
      });
      if (res.status !== 202) throw new Error(`${label}: ${res.status} ${await res.text()}`);
      log(`${label} ready (${root}) on ${scratch.name}`);
    }
    const admin = new Map(targets.map((t) => [t.label, postgres(t.url, { max: 1, onnotice: () => {} })]));
    const copySql = postgres(targets[0]!.url, { max: POOL, onnotice: () => {} });
    const truncate = async (label: string) => {
      const sql = admin.get(label)!;
      await sql`truncate telemetry_events`;
      await sql`checkpoint`.catch(() => {});
    };
    const copyEvents = telemetryEvents(occurredAt);
    const columns = ["id", "type", "source", "severity", "occurred_at", "attributes"] as const;
    let batch = 0;
    const copyWindow = async (seconds: number) => {
      const end = performance.now() + seconds * 1000;
      let stored = 0;
      const worker = async () => {
        while (performance.now() < end) {
          const prefix = `ceiling-${++batch}-${crypto.randomUUID()}`;
          const text = copyEvents
            .map((e, i) => {
              const row = { ...e, id: `${prefix}-${i}`, attributes: JSON.stringify(e.attributes) };
              return columns.map((c) => row[c]).join("\t");
            })
            .join("\n");
          const writable = await copySql`copy telemetry_events (id, type, source, severity, occurred_at, attributes) from stdin`.writable();
          writable.end(`${text}\n`);
          await finished(writable);
          stored += TELEMETRY_BATCH;
        }
      };
      await Promise.all(Array.from({ length: POOL }, worker));
      return stored;
    };
    const record = (round: number, label: string, stored: number, cpu: ReturnType<ReturnType<typeof cpuWindow>>, extra = {}) => {
      const k = stored / 1000;
      const row: Row = {
        round,
        label,
        events_per_s: Math.round(stored / cpu.seconds),
        server_ms_per_1k: Math.round((cpu.server / k) * 1e4) / 10,
        pg_ms_per_1k: Math.round((cpu.backends / k) * 1e4) / 10,
        writers_ms_per_1k: Math.round((cpu.writers / k) * 1e4) / 10,
        server_cpu_pct: Math.round((cpu.server / cpu.seconds) * 100),
        pg_cpu_pct: Math.round((cpu.backends / cpu.seconds) * 100),
        machine_pct: cpu.machine_pct,
        busiest: cpu.busiest,
        ...extra,
      };
      rows.push(row);
      log(JSON.stringify(row));
    };
    for (let round = 1; round <= ROUNDS; round++) {
      // COPY ceiling into the first checkout's database
      await truncate(targets[0]!.label);
      if (WARMUP) await copyWindow(WARMUP);
      const copyCpu = cpuWindow(undefined, targets[0]!.db);
      const client = process.cpuUsage();
      const stored = await copyWindow(SECONDS);
      const clientUsage = process.cpuUsage(client);
      // The COPY's "server" is its client, this process: building the text and sending it.
      record(round, "COPY", stored, { ...copyCpu(), server: (clientUsage.user + clientUsage.system) / 1e6 });
      for (const t of targets) {
        await truncate(t.label);
        const target = { url: `${t.server.base}/v1/telemetry/events`, headers: { "X-API-Key": t.key }, body };
        if (WARMUP) await runWrk(target, { seconds: WARMUP, connections: TELEMETRY_CONNECTIONS, script });
        await Bun.sleep(300); // what the warm-up left queued drains
        const cpu = cpuWindow(t.server.pid, t.db);
        const wrk0 = reapedChildrenSeconds(process.pid);
        const run = await runWrk(target, { seconds: SECONDS, connections: TELEMETRY_CONNECTIONS, script });
        const usage = cpu();
        const wrkSeconds = reapedChildrenSeconds(process.pid) - wrk0;
        if (run.non_2xx || run.socket_errors) throw new Error(`${t.label}: ${run.non_2xx} non-2xx, ${run.socket_errors} socket errors`);
        // wrk's own rate (requests completed in its window), the CPU over the same window.
        record(
          round,
          t.label,
          run.requests * TELEMETRY_BATCH,
          { ...usage, seconds: run.requests / run.requests_per_second },
          {
            wrk_ms_per_1k: Math.round((wrkSeconds / run.requests) * 1e4) / 10,
            p50_ms: run.p50_ms,
            p99_ms: run.p99_ms,
          },
        );
        await Bun.sleep(500);
      }
    }
    await copySql.end({ timeout: 5 });
    for (const sql of admin.values()) await sql.end({ timeout: 5 });
  } finally {
    for (const t of targets) await t.server.stop();
    for (const t of targets) await t.drop().catch(() => {});
    await cluster?.stop();
    removeDir(dir);
  }
  // Summary: medians per label
  const labels = [...new Set(rows.map((r) => r.label))];
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const copyMedian = median(rows.filter((r) => r.label === "COPY").map((r) => r.events_per_s));
  // On a machine of its own the cores are shared by the server, PostgreSQL and the load generator
  // only: events/s ≈ cores × 1,000 CPU-ms per second / CPU-ms per 1,000 events. Unlike the measured
  // rate, this does not move with what other processes on a shared machine take.
  const cores = cpus().length;
  const projected = (of: Row[]) => {
    const m = (key: keyof Row) => median(of.map((r) => Number(r[key] ?? 0)));
    return (cores * 1000 * 1000) / (m("server_ms_per_1k") + m("pg_ms_per_1k") + m("writers_ms_per_1k") + m("wrk_ms_per_1k"));
  };
  const copyProjected = projected(rows.filter((r) => r.label === "COPY"));
  console.log(
    "| what | events/s (median; rounds) | of COPY | server ms/1k | PG backends ms/1k | PG writers ms/1k | wrk ms/1k | CPU-bound events/s | of COPY | machine busy % |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const label of labels) {
    const of = rows.filter((r) => r.label === label);
    const m = (key: keyof Row) => median(of.map((r) => Number(r[key] ?? 0)));
    const rates = of.map((r) => r.events_per_s.toLocaleString("en")).join(" / ");
    console.log(
      `| ${label} | ${Math.round(m("events_per_s")).toLocaleString("en")} (${rates}) | ${(m("events_per_s") / copyMedian).toFixed(2)} | ${m("server_ms_per_1k").toFixed(1)} | ${m("pg_ms_per_1k").toFixed(1)} | ${m("writers_ms_per_1k").toFixed(1)} | ${m("wrk_ms_per_1k").toFixed(1)} | ${Math.round(projected(of)).toLocaleString("en")} | ${(projected(of) / copyProjected).toFixed(2)} | ${m("machine_pct")} |`,
    );
  }
}

await main();
