/**
 * `bun run bench`: Arbiter's benchmark harness, one command. It starts everything it measures (a
 * throwaway PostgreSQL cluster, its own redis-server, the ceiling servers, Arbiter from the working
 * tree or from ARBITER_ROOT), drives every scenario with wrk in interleaved rounds, samples the
 * server's CPU and memory, and writes bench/results/<date>.json and .md. See bench/README.md.
 *
 *   bun run bench                      full run (under 10 minutes on 2 cores)
 *   bun run bench --smoke              every scenario once, briefly; fails only on errors
 *   bun run bench --label=baseline     writes bench/results/<date>-baseline.{json,md}
 *   ARBITER_ROOT=<checkout> bun run bench   measures another checkout of the server
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join, resolve } from "node:path";
import { finished } from "node:stream/promises";
import postgres from "postgres";
import {
  adoptMedianRound,
  createDecision,
  decisionBody,
  latencyResult,
  longPoll,
  pendingDecisions,
  serviceToken,
  sse,
  TELEMETRY_BATCH,
  TELEMETRY_CONNECTIONS,
  telemetryEvents,
  WAIT_SECONDS,
} from "./lib/drive";
import { median } from "./lib/load";
import { watch } from "./lib/procstat";
import {
  type LatencyResult,
  markdown,
  type Results,
  type Sample,
  type StartupResult,
  type StartupRun,
  type ThroughputResult,
} from "./lib/report";
import {
  arbiterEnv,
  freePort,
  newKeys,
  type Postgres,
  readyPass,
  removeDir,
  type Server,
  spawnArbiter,
  startCeiling,
  startPostgres,
  startRedis,
  tempDir,
  waitUntilReady,
} from "./lib/stack";
import { postScript, runWrk, type WrkTarget, wrkPath } from "./lib/wrk";

const args = process.argv.slice(2);
const SMOKE = args.includes("--smoke") || process.env.BENCH_SMOKE === "1";
const LABEL = args.find((a) => a.startsWith("--label="))?.slice("--label=".length) ?? process.env.BENCH_LABEL;
const HARNESS_ROOT = resolve(import.meta.dir, "..");
const ROOT = resolve(process.env.ARBITER_ROOT ?? HARNESS_ROOT);

const SETTINGS = SMOKE
  ? // Fewer connections: 64 telemetry batches in flight would all finish together, after the short window.
    { wrk_threads: 1, connections: 16, warmup_s: 0, measure_s: 1, rounds: 1, waiters: 200, streams: 200, startup_runs: 1, copy_streams: 10 }
  : {
      wrk_threads: 1,
      connections: 64,
      warmup_s: 2,
      measure_s: 8,
      rounds: 3,
      waiters: 5000,
      streams: 1000,
      startup_runs: 3,
      copy_streams: 10,
    };
/** the FastAPI stack's decision creates per second, the figure B2 was set against */
const FASTAPI_CREATES_PER_SECOND = 1465;

const began = performance.now();
const log = (line: string) => console.error(`bench [${((performance.now() - began) / 1000).toFixed(0).padStart(3)} s] ${line}`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const round1 = (n: number) => Math.round(n * 10) / 10;
const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));

// ————— Preconditions —————

function preflight() {
  if (!wrkPath()) {
    const hint = "wrk is not installed: apt-get install wrk (Debian/Ubuntu), brew install wrk (macOS)";
    throw new Error(process.env.CI === "true" ? `${hint}; CI installs it in .ci/tools` : hint);
  }
  for (const tool of ["pgbench", "initdb", "pg_ctl", "redis-server"]) {
    if (!Bun.which(tool)) throw new Error(`${tool} is not installed (PostgreSQL server binaries and redis-server are needed)`);
  }
  // Server and client each hold a socket per waiter, and the burst as many approvals again.
  const needed = SETTINGS.waiters * 2 + 1000;
  const limit = Number(execFileSync("sh", ["-c", "ulimit -n"]).toString().trim());
  if (Number.isFinite(limit) && limit < needed)
    throw new Error(`open-file limit ${limit} is below ${needed}: run \`ulimit -n ${needed}\` first`);
}

function gitState(root: string) {
  try {
    const commit = execFileSync("git", ["-C", root, "rev-parse", "HEAD"]).toString().trim();
    const dirty =
      execFileSync("git", ["-C", root, "status", "--porcelain", "--", "src", "package.json", "bun.lock"]).toString().trim() !== "";
    return { root_commit: commit, root_dirty: dirty };
  } catch {
    return { root_commit: "unknown", root_dirty: false };
  }
}

// ————— Throughput scenarios (wrk, pgbench, COPY) —————

type CeilingRef = { id: string; section: ThroughputResult["section"] };
const ceilingOf = (id: string, section: ThroughputResult["section"] = "ceilings"): CeilingRef => ({ id, section });

interface Throughput {
  result: ThroughputResult;
  /** one request like the load's, before any is measured: throws unless it succeeds */
  check?(): Promise<void>;
  /** one measurement of `seconds` (a warm-up when `warmup`); throws on errors */
  measure(seconds: number, warmup: boolean): Promise<Sample>;
}

function throughput(
  id: string,
  section: ThroughputResult["section"],
  name: string,
  unit: ThroughputResult["unit"],
  measure: Throughput["measure"],
  extra: Partial<ThroughputResult> = {},
  check?: Throughput["check"],
): Throughput {
  return { result: { id, section, name, unit, samples: [], errors: [], ...extra }, measure, check };
}

/** One request like wrk's; returns its status and the start of its body. */
async function probe(target: WrkTarget): Promise<{ status: number; text: string }> {
  const res = await fetch(target.url, {
    method: target.body ? "POST" : "GET",
    headers: { ...target.headers, ...(target.body ? { "Content-Type": "application/json" } : {}) },
    ...(target.body ? { body: target.body } : {}),
  });
  return { status: res.status, text: (await res.text()).slice(0, 300) };
}

/** A wrk scenario: the server's (and the database's) CPU and the server's peak RSS over the window. */
function wrkScenario(
  id: string,
  section: ThroughputResult["section"],
  name: string,
  options: {
    server: Server;
    db?: Postgres;
    target: WrkTarget;
    script?: string[];
    perRequest?: number;
    ceiling?: CeilingRef;
    /** wrk's connections, when not SETTINGS.connections */
    connections?: number;
  },
): Throughput {
  const unit = options.perRequest ? "events/s" : "req/s";
  return throughput(
    id,
    section,
    name,
    unit,
    async (seconds, warmup) => {
      const usage = watch([{ pid: options.server.pid }, ...(options.db ? [{ pid: options.db.pid, tree: true }] : [])]);
      let usages: ReturnType<typeof usage.stop> = [];
      const connections = options.connections ?? SETTINGS.connections;
      const run = await runWrk(options.target, { seconds, connections, script: options.script }).finally(() => (usages = usage.stop()));
      const [server, db] = usages;
      // wrk drops its connections at the end, but the server finishes what they sent: the next run
      // (of this or another scenario) must not share the machine with that. A request like the
      // load's answers once the work queued before it is done.
      const drained = await Promise.race([
        probe(options.target).then(
          (res) => `answered ${res.status}: ${res.text}`,
          (error) => `failed: ${errorText(error)}`,
        ),
        sleep(120_000).then(() => "did not answer within 120 s"),
      ]);
      if (run.non_2xx > 0 || run.socket_errors > 0) {
        // wrk counts failures without saying what they were: the request above shows one.
        throw new Error(
          `${run.non_2xx} non-2xx responses and ${run.socket_errors} socket errors in ${run.requests} requests; a request like them ${drained}`,
        );
      }
      // A warm-up or smoke window is short enough for slow requests to miss it; check() has proven the path works.
      if (run.requests === 0 && !warmup && !SMOKE) throw new Error(`no request completed in ${seconds} s`);
      return {
        value: run.requests_per_second * (options.perRequest ?? 1),
        ...(run.requests ? { p50_ms: run.p50_ms, p99_ms: run.p99_ms } : {}),
        cpu_pct: server!.cpu_pct,
        rss_mib: server!.rss_mib,
        ...(db ? { db_cpu_pct: db.cpu_pct } : {}),
      };
    },
    options.ceiling ? { ceiling: { ...options.ceiling, name: "" } } : {},
    async () => {
      const res = await probe(options.target);
      if (res.status < 200 || res.status > 299) throw new Error(`${options.target.url} answered ${res.status}: ${res.text}`);
    },
  );
}

/** pgbench: single-row INSERT … RETURNING of a decision-shaped row, at wrk's client count. */
async function pgbenchScenario(pg: Postgres, dir: string): Promise<Throughput> {
  const url = await pg.createDatabase();
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  await sql`create table bench_decisions (
    id uuid primary key default gen_random_uuid(),
    kind text not null,
    title text not null,
    payload jsonb not null,
    priority text not null,
    status text not null default 'pending',
    created_at timestamptz not null default now()
  )`;
  await sql.end();
  const script = join(dir, "pgbench-insert.sql");
  writeFileSync(
    script,
    "INSERT INTO bench_decisions (kind, title, payload, priority) " +
      `VALUES ('deploy', 'Deploy api v1.2.3', '{"service":"api","version":"1.2.3"}', 'medium') RETURNING id;\n`,
  );
  return throughput(
    "B0-pgbench",
    "ceilings",
    `pgbench INSERT … RETURNING (${SETTINGS.connections} clients, 1 thread)`,
    "tx/s",
    async (seconds, warmup) => {
      // One pgbench process warms up and measures: its -T includes opening the 64 connections, which
      // takes seconds on a busy machine, so separate short runs would measure mostly connecting.
      if (warmup) return { value: 0 };
      const argv = ["pgbench", "-n", "-f", script, "-c", String(SETTINGS.connections), "-j", "1", "-M", "prepared"];
      argv.push("-T", String(SETTINGS.warmup_s + seconds), "-P", "1", url);
      const child = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
      // Per-second progress lines ("progress: 3.0 s, 2345.6 tps, …"): the window starts once the
      // connections are open (the first second with transactions) and the warm-up has passed.
      const perSecond: number[] = [];
      let activeSince: number | undefined;
      let usage = SETTINGS.warmup_s === 0 ? watch([{ pid: pg.pid, tree: true }]) : undefined;
      let stderr = "";
      const readProgress = async () => {
        let partial = "";
        for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
          stderr += text;
          const lines = (partial + text).split("\n");
          partial = lines.pop() ?? "";
          for (const line of lines) {
            const progress = /^progress: ([\d.]+) s, ([\d.]+) tps/.exec(line);
            if (!progress) continue;
            const [at, tps] = [Number(progress[1]), Number(progress[2])];
            if (activeSince === undefined && tps > 0) activeSince = at - 1;
            if (activeSince === undefined || at - activeSince <= SETTINGS.warmup_s) continue;
            usage ??= watch([{ pid: pg.pid, tree: true }]);
            perSecond.push(tps);
          }
        }
      };
      const [stdout, , code] = await Promise.all([new Response(child.stdout).text(), readProgress(), child.exited]);
      const db = usage?.stop()[0];
      if (code !== 0) throw new Error(`pgbench exited ${code}: ${stderr.trim().split("\n").slice(-3).join(" | ")}`);
      const failed = Number(/number of failed transactions: (\d+)/.exec(stdout)?.[1] ?? 0);
      if (failed > 0) throw new Error(`pgbench: ${failed} failed transactions`);
      // A window too short for a whole measured second (smoke) falls back to pgbench's own figure.
      const summary = Number(/^tps = ([\d.]+)/m.exec(stdout)?.[1] ?? 0);
      const value = perSecond.length ? perSecond.reduce((sum, n) => sum + n, 0) / perSecond.length : summary;
      if (value === 0 && !SMOKE) throw new Error(`pgbench completed no transaction in ${SETTINGS.warmup_s + seconds} s`);
      return { value, ...(db ? { db_cpu_pct: db.cpu_pct } : {}) };
    },
    { notes: "pgbench reports an average latency only: p50/p99 are not measured" },
  );
}

/**
 * The telemetry ceilings: B3's events written straight into Arbiter's telemetry_events table
 * through postgres.js, 1,000-row batches on as many connections as Arbiter's pool (10): COPY … FROM
 * STDIN, and for reference one multi-row INSERT per batch.
 */
function telemetryCeilings(
  pg: Postgres,
  databaseUrl: string,
  occurredAt: string,
): { copy: Throughput; insert: Throughput; close(): Promise<void> } {
  const sql = postgres(databaseUrl, { max: SETTINGS.copy_streams, onnotice: () => {} });
  const events = telemetryEvents(occurredAt);
  let batch = 0;
  const rows = () => {
    const prefix = `ceiling-${++batch}-${crypto.randomUUID()}`;
    return events.map((e, i) => ({ ...e, id: `${prefix}-${i}`, attributes: JSON.stringify(e.attributes) }));
  };
  const columns = ["id", "type", "source", "severity", "occurred_at", "attributes"] as const;
  const loop = async (seconds: number, writeBatch: () => Promise<void>): Promise<Sample> => {
    const usage = watch([{ pid: pg.pid, tree: true }]);
    const started = performance.now();
    const end = started + seconds * 1000;
    let stored = 0;
    const worker = async () => {
      while (performance.now() < end) {
        await writeBatch();
        stored += TELEMETRY_BATCH;
      }
    };
    await Promise.all(Array.from({ length: SETTINGS.copy_streams }, worker));
    const elapsed = (performance.now() - started) / 1000;
    const [db] = usage.stop();
    return { value: stored / elapsed, db_cpu_pct: db!.cpu_pct };
  };
  const copy = throughput(
    "B0-copy",
    "ceilings",
    `COPY telemetry rows, 1,000-row batches (${SETTINGS.copy_streams} connections)`,
    "events/s",
    (seconds) =>
      loop(seconds, async () => {
        const text = rows()
          .map((r) => columns.map((c) => r[c]).join("\t"))
          .join("\n");
        const writable = await sql`copy telemetry_events (id, type, source, severity, occurred_at, attributes) from stdin`.writable();
        writable.end(`${text}\n`);
        await finished(writable);
      }),
  );
  const insert = throughput(
    "B0-insert",
    "ceilings",
    `multi-row INSERT telemetry rows, 1,000-row batches (${SETTINGS.copy_streams} connections)`,
    "events/s",
    (seconds) =>
      loop(seconds, async () => {
        await sql`insert into telemetry_events ${sql(rows(), ...columns)}`;
      }),
    { ceiling: { ...ceilingOf("B0-copy"), name: "" } },
  );
  return { copy, insert, close: () => sql.end({ timeout: 5 }) };
}

async function runRounds(scenarios: Throughput[]) {
  for (const { result, check } of scenarios) {
    try {
      await check?.();
    } catch (error) {
      result.errors.push(errorText(error));
      log(`ERROR ${result.id} ${result.section} (${result.name}): ${errorText(error)}`);
    }
  }
  for (let round = 1; round <= SETTINGS.rounds; round++) {
    for (const { result, measure } of scenarios) {
      if (result.errors.length) continue; // a failed scenario is not measured again
      try {
        if (SETTINGS.warmup_s > 0) await measure(SETTINGS.warmup_s, true);
        const sample = await measure(SETTINGS.measure_s, false);
        result.samples.push(sample);
        log(
          `round ${round}/${SETTINGS.rounds} ${result.id} ${result.section}: ${Math.round(sample.value)} ${result.unit}` +
            (sample.p99_ms === undefined ? "" : `, p50 ${sample.p50_ms?.toFixed(2)} ms, p99 ${sample.p99_ms.toFixed(2)} ms`) +
            (sample.cpu_pct === undefined ? "" : `, cpu ${sample.cpu_pct}%`) +
            (sample.db_cpu_pct === undefined ? "" : `, db cpu ${sample.db_cpu_pct}%`),
        );
      } catch (error) {
        result.errors.push(errorText(error));
        log(`ERROR ${result.id} ${result.section} (${result.name}): ${errorText(error)}`);
      }
    }
  }
}

function summarise(scenarios: ThroughputResult[]) {
  const pick = (samples: Sample[], key: keyof Sample) => samples.map((s) => s[key]).filter((v): v is number => v !== undefined);
  for (const s of scenarios) {
    if (!s.samples.length) continue;
    s.median = Math.round(median(pick(s.samples, "value")));
    for (const key of ["p50_ms", "p99_ms"] as const) {
      const values = pick(s.samples, key);
      if (values.length) s[key] = Number(median(values).toFixed(3));
    }
    for (const key of ["cpu_pct", "db_cpu_pct"] as const) {
      const values = pick(s.samples, key);
      if (values.length) s[key] = Math.round(median(values));
    }
    const rss = pick(s.samples, "rss_mib");
    if (rss.length) s.rss_mib = Math.max(...rss);
  }
  for (const s of scenarios) {
    if (s.ceiling) {
      const { id, section } = s.ceiling;
      const ceiling = scenarios.find((c) => c.id === id && c.section === section);
      s.ceiling = {
        id,
        section,
        name: ceiling ? `${ceiling.name}${section === s.section || section === "ceilings" ? "" : ` [${section}]`}` : id,
        median: ceiling?.median,
      };
      if (s.median !== undefined && ceiling?.median) s.ratio = Number((s.median / ceiling.median).toFixed(3));
    }
    if (s.reference && s.median !== undefined) s.reference.ratio = Number((s.median / s.reference.value).toFixed(2));
  }
}

// ————— B6 start-up —————

async function startOnce(env: Record<string, string>, dir: string, label: string): Promise<StartupRun> {
  const port = await freePort();
  const spawned = performance.now();
  const server = spawnArbiter(`arbiter (${label})`, ROOT, { ...env, PORT: String(port) }, join(dir, `startup-${port}.log`));
  try {
    await waitUntilReady(server, "/health/ready", 120_000, readyPass);
  } catch (error) {
    await server.stop();
    throw error;
  }
  const ready = performance.now() - spawned;
  const stopping = performance.now();
  server.proc.kill("SIGTERM");
  const code = await server.proc.exited;
  const shutdown = performance.now() - stopping;
  await server.stop();
  if (code !== 0) throw new Error(`${label}: exited ${code} after SIGTERM`);
  return { ready_ms: round1(ready), shutdown_ms: round1(shutdown) };
}

async function startup(result: StartupResult, fresh: () => Promise<Record<string, string>>, dir: string) {
  for (let i = 0; i < SETTINGS.startup_runs; i++) {
    const env = await fresh();
    result.cold.push(await startOnce(env, dir, `${result.name}, cold`));
    result.warm.push(await startOnce(env, dir, `${result.name}, warm`));
    log(
      `${result.id} ${result.name} run ${i + 1}/${SETTINGS.startup_runs}: cold ${result.cold.at(-1)!.ready_ms} ms, warm ${result.warm.at(-1)!.ready_ms} ms`,
    );
  }
  result.cold_ready_ms = round1(median(result.cold.map((r) => r.ready_ms)));
  result.warm_ready_ms = round1(median(result.warm.map((r) => r.ready_ms)));
  result.shutdown_ms = round1(median([...result.cold, ...result.warm].map((r) => r.shutdown_ms)));
}

// ————— The run —————

async function main(): Promise<Results> {
  const at = new Date().toISOString();
  const loadAtStart = loadavg().map((n) => Number(n.toFixed(2)));
  preflight();
  log(`${SMOKE ? "smoke" : "full"} run of Arbiter at ${ROOT}`);

  const dir = tempDir();
  const cleanups: (() => Promise<unknown>)[] = [async () => removeDir(dir)];
  const cleanup = async () => {
    for (const step of cleanups.splice(0).reverse()) await step().catch((error) => log(`cleanup: ${errorText(error)}`));
  };
  const interrupted = async () => {
    log("interrupted: stopping what was started");
    await cleanup();
    process.exit(130);
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);

  const throughputResults: Throughput[] = [];
  const latency: LatencyResult[] = [];
  const startupResults: StartupResult[] = [];
  const errors: string[] = [];
  try {
    const pg = await startPostgres();
    cleanups.push(() => pg.stop());
    const redis = await startRedis(dir);
    cleanups.push(() => redis.stop());
    const [ceilingBun, ceilingHono, ceilingAnswer, ceilingHold] = await Promise.all([
      startCeiling("bun", dir),
      startCeiling("hono", dir),
      startCeiling("answer", dir),
      startCeiling("hold", dir),
    ]);
    cleanups.push(
      () => ceilingBun!.stop(),
      () => ceilingHono!.stop(),
      () => ceilingAnswer!.stop(),
      () => ceilingHold!.stop(),
    );

    const keys = newKeys();
    const arbiterDb = await pg.createDatabase();
    const servers = {
      postgres: spawnArbiter(
        "arbiter (PostgreSQL)",
        ROOT,
        arbiterEnv(keys, await freePort(), { DATABASE_URL: arbiterDb, REDIS_URL: redis.base }),
        join(dir, "arbiter-postgres.log"),
      ),
      embedded: spawnArbiter(
        "arbiter (embedded)",
        ROOT,
        arbiterEnv(keys, await freePort(), { DATA_DIR: join(dir, "embedded-data") }),
        join(dir, "arbiter-embedded.log"),
      ),
    };
    cleanups.push(
      () => servers.postgres.stop(),
      () => servers.embedded.stop(),
    );
    await Promise.all(Object.values(servers).map((s) => waitUntilReady(s, "/health/ready", 120_000, readyPass)));
    log("PostgreSQL, Redis, ceilings and both Arbiters are up");

    // B0 ceilings.
    throughputResults.push(
      wrkScenario("B0-bun", "ceilings", "bare Bun.serve GET (small JSON)", {
        server: ceilingBun!,
        target: { url: `${ceilingBun!.base}/`, headers: {} },
      }),
      wrkScenario("B0-hono", "ceilings", "bare Hono GET (one c.json route)", {
        server: ceilingHono!,
        target: { url: `${ceilingHono!.base}/`, headers: {} },
        ceiling: ceilingOf("B0-bun"),
      }),
      // B1's answer (its bytes and headers) with none of its work: how much of bare Hono's rate the answer itself leaves.
      wrkScenario("B0-answer", "ceilings", "bare Hono GET answering B1's answer (1 KB JSON, B1's headers)", {
        server: ceilingAnswer!,
        target: { url: `${ceilingAnswer!.base}/`, headers: {} },
        ceiling: ceilingOf("B0-hono"),
      }),
      await pgbenchScenario(pg, dir),
    );
    const occurredAt = new Date().toISOString();
    const ceilings = telemetryCeilings(pg, arbiterDb, occurredAt);
    cleanups.push(() => ceilings.close());
    throughputResults.push(ceilings.copy, ceilings.insert);

    // B1–B3 on each backend.
    const telemetryBody = JSON.stringify({ events: telemetryEvents(occurredAt) });
    const createBody = JSON.stringify(decisionBody);
    for (const [section, server] of Object.entries(servers) as ["postgres" | "embedded", Server][]) {
      const db = section === "postgres" ? pg : undefined;
      const decision = await createDecision(server, keys);
      const token = await serviceToken(server, keys);
      const read = `${server.base}/v1/decisions/${decision}`;
      throughputResults.push(
        wrkScenario("B1-key", section, "B1 GET /v1/decisions/:id, API key (cached)", {
          server,
          db,
          target: { url: read, headers: { "X-API-Key": keys.service } },
          ceiling: ceilingOf("B0-hono"),
        }),
        wrkScenario("B1-jwt", section, "B1 GET /v1/decisions/:id, JWT (cached)", {
          server,
          db,
          target: { url: read, headers: { Authorization: `Bearer ${token}` } },
          ceiling: ceilingOf("B0-hono"),
        }),
        wrkScenario("B2-create", section, "B2 POST /v1/decisions", {
          server,
          db,
          target: { url: `${server.base}/v1/decisions`, headers: { "X-API-Key": keys.service }, body: createBody },
          script: postScript(dir, `create-${section}`, createBody),
          // Embedded writes have no database ceiling of their own: they are set against the same scenario on PostgreSQL.
          ceiling: section === "postgres" ? ceilingOf("B0-pgbench") : ceilingOf("B2-create", "postgres"),
        }),
        wrkScenario("B3-telemetry", section, `B3 POST /v1/telemetry/events, 1,000-event batches (${TELEMETRY_CONNECTIONS} connections)`, {
          server,
          db,
          target: { url: `${server.base}/v1/telemetry/events`, headers: { "X-API-Key": keys.service }, body: telemetryBody },
          script: postScript(dir, `telemetry-${section}`, telemetryBody),
          perRequest: TELEMETRY_BATCH,
          connections: TELEMETRY_CONNECTIONS,
          ceiling: section === "postgres" ? ceilingOf("B0-copy") : ceilingOf("B3-telemetry", "postgres"),
        }),
      );
    }
    const b2 = throughputResults.find((t) => t.result.id === "B2-create" && t.result.section === "postgres")!;
    b2.result.reference = { name: "the FastAPI stack", value: FASTAPI_CREATES_PER_SECOND };
    await runRounds(throughputResults);

    // B4 long-poll waiters, B5 SSE streams (PostgreSQL + Redis); B4's ceiling first, with the same client.
    const held = latencyResult(
      "B0-hold",
      `bare Bun.serve: ${SETTINGS.waiters} held requests answered at once (B4's ceiling)`,
      SETTINGS.waiters,
      1,
    );
    const oneDecision = latencyResult("B4-one", `B4 long-poll: ${SETTINGS.waiters} waiters on one decision, approved`, SETTINGS.waiters, 1);
    const burst = latencyResult(
      "B4-burst",
      `B4 long-poll: ${SETTINGS.waiters} waiters on ${SETTINGS.waiters} decisions, approved in a burst`,
      SETTINGS.waiters,
      SETTINGS.waiters,
    );
    const streams = latencyResult("B5-sse", `B5 SSE: ${SETTINGS.streams} streams, one change`, SETTINGS.streams, 1);
    latency.push(held, oneDecision, burst, streams);
    const attempts: [LatencyResult, (run: LatencyResult) => Promise<void>][] = [
      [held, (run) => longPoll(ceilingHold!, keys, [crypto.randomUUID()], run)],
      [oneDecision, async (run) => longPoll(servers.postgres, keys, [await createDecision(servers.postgres, keys)], run)],
      [
        burst,
        async (run) => longPoll(servers.postgres, keys, await pendingDecisions(servers.postgres, keys, arbiterDb, SETTINGS.waiters), run),
      ],
      [streams, (run) => sse(servers.postgres, keys, run)],
    ];
    // Rounds interleaved as the throughput scenarios' are: one sample each is at the mercy of a busy moment.
    const runs = new Map<LatencyResult, LatencyResult[]>(attempts.map(([result]) => [result, []]));
    for (let round = 1; round <= SETTINGS.rounds; round++) {
      for (const [result, attempt] of attempts) {
        const run = latencyResult(result.id, result.name, result.clients, result.decisions);
        try {
          await attempt(run);
          runs.get(result)!.push(run);
          log(
            `round ${round}/${SETTINGS.rounds} ${result.id}: p50 ${run.p50_ms} ms, p99 ${run.p99_ms} ms, max ${run.max_ms} ms, extra RSS ${run.extra_rss_mib} MiB`,
          );
        } catch (error) {
          result.errors.push(errorText(error));
          log(`ERROR ${result.id} (${result.name}): ${errorText(error)}`);
        }
      }
    }
    for (const [result, done] of runs) adoptMedianRound(result, done);

    // B6 start-up, with the measured servers stopped.
    await servers.postgres.stop();
    await servers.embedded.stop();
    const embeddedStart: StartupResult = { id: "B6-embedded", name: "B6 embedded (PGlite)", cold: [], warm: [], errors: [] };
    const postgresStart: StartupResult = { id: "B6-postgres", name: "B6 PostgreSQL + Redis", cold: [], warm: [], errors: [] };
    startupResults.push(embeddedStart, postgresStart);
    const startEnv = arbiterEnv(keys, 0, {});
    let fresh = 0;
    const cases: [StartupResult, () => Promise<Record<string, string>>][] = [
      [embeddedStart, async () => ({ ...startEnv, DATA_DIR: join(dir, `startup-data-${++fresh}`) })],
      [postgresStart, async () => ({ ...startEnv, DATABASE_URL: await pg.createDatabase(), REDIS_URL: redis.base })],
    ];
    for (const [result, freshStore] of cases) {
      try {
        await startup(result, freshStore, dir);
      } catch (error) {
        result.errors.push(errorText(error));
        log(`ERROR ${result.id} (${result.name}): ${errorText(error)}`);
      }
    }
  } catch (error) {
    errors.push(`setup: ${errorText(error)}`);
    log(`ERROR setup: ${errorText(error)}`);
  } finally {
    await cleanup();
    process.off("SIGINT", interrupted);
    process.off("SIGTERM", interrupted);
  }

  const results = throughputResults.map((t) => t.result);
  summarise(results);
  for (const r of [...results, ...latency, ...startupResults]) {
    for (const e of r.errors) errors.push(`${r.id}${"section" in r ? ` (${r.section})` : ""}: ${e}`);
  }
  const cpu = cpus();
  return {
    benchmark: "arbiter",
    mode: SMOKE ? "smoke" : "full",
    at,
    duration_s: Math.round((performance.now() - began) / 1000),
    arbiter: gitState(ROOT),
    runtime: `bun ${Bun.version}`,
    machine: {
      cpus: cpu.length,
      model: cpu[0]?.model.trim() ?? "unknown",
      load_at_start: loadAtStart,
      load_at_end: loadavg().map((n) => Number(n.toFixed(2))),
    },
    settings: { ...SETTINGS, wait_seconds: WAIT_SECONDS, telemetry_batch: TELEMETRY_BATCH, telemetry_connections: TELEMETRY_CONNECTIONS },
    throughput: results,
    latency,
    startup: startupResults,
    errors,
  };
}

const results = await main().catch((error) => {
  console.error(`bench: ${errorText(error)}`);
  process.exit(1);
});
const stem = SMOKE ? "smoke" : `${results.at.slice(0, 10)}${LABEL ? `-${LABEL}` : ""}`;
const outDir = join(HARNESS_ROOT, "bench/results");
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, `${stem}.json`), `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(join(outDir, `${stem}.md`), markdown(results));

console.log(`\nArbiter benchmark (${results.mode}, ${results.duration_s} s): ratio of each scenario to its ceiling`);
for (const r of results.throughput) {
  const figure = r.median === undefined ? "no figure" : `${r.median.toLocaleString("en-US")} ${r.unit}`;
  const against = r.ceiling ? ` = ${r.ratio?.toFixed(2) ?? "?"} × ${r.ceiling.name}` : "";
  const reference = r.reference ? `; ${r.reference.ratio?.toFixed(2) ?? "?"} × ${r.reference.name}` : "";
  console.log(`  ${r.id} [${r.section}] ${r.name}: ${figure}${against}${reference}${r.errors.length ? "  FAILED" : ""}`);
}
for (const r of results.latency)
  console.log(`  ${r.id}: p50 ${r.p50_ms} ms, p99 ${r.p99_ms} ms, max ${r.max_ms} ms${r.errors.length ? "  FAILED" : ""}`);
for (const r of results.startup)
  console.log(`  ${r.id}: cold ${r.cold_ready_ms} ms, warm ${r.warm_ready_ms} ms${r.errors.length ? "  FAILED" : ""}`);
console.log(`wrote bench/results/${stem}.json and .md`);
if (results.errors.length) {
  console.error(`\nbench: ${results.errors.length} ERROR(S):`);
  for (const e of results.errors) console.error(`  - ${e}`);
  process.exit(1);
}
process.exit(0);
