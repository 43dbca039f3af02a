/**
 * Start-up time of the real entry point (`bun run src/main.ts` as a child process), measured from
 * spawn until GET /health/ready answers `pass`:
 *   cold — a fresh PGlite data directory each run (create the cluster, apply every migration);
 *   warm — a restart on the directory the previous run left (open the files, migrations a no-op).
 * With a reachable PostgreSQL (DATABASE_URL, or the local default) the same pair is measured on it:
 * cold = a new empty database each run, warm = a restart on the migrated one. The shutdown time
 * after SIGTERM is recorded too. Medians of BENCH_RUNS runs (default 5) and warm/cold ratios.
 * Writes bench/results/startup.json (or the file named by BENCH_OUTPUT).
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { closedPort, postgresReachable, REAL_POSTGRES_URL, spawnArbiter, tempDir } from "../test/foundation/support";
import { createScratchDatabase } from "../test/helpers/db";
import { median } from "./lib/load";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const OUTPUT = process.env.BENCH_OUTPUT ?? "bench/results/startup.json";

const ms = (n: number) => Math.round(n * 10) / 10;

interface Run {
  ready_ms: number;
  /** the server's own figure: config → listening (dependencies opened, migrations applied) */
  listening_ms: number;
  shutdown_ms: number;
}

/** One start → ready → SIGTERM → exit cycle. */
async function startOnce(env: Record<string, string>): Promise<Run> {
  const port = await closedPort();
  const url = `http://127.0.0.1:${port}/health/ready`;
  const spawned = performance.now();
  const arbiter = spawnArbiter({ ...env, PORT: String(port), LOG_LEVEL: "info" });
  let readyAt: number | undefined;
  while (readyAt === undefined) {
    if (arbiter.proc.exitCode !== null) throw new Error(`arbiter exited early: ${arbiter.stderr.join(" | ")}`);
    if (performance.now() - spawned > 120_000) throw new Error("arbiter not ready within 120 s");
    try {
      const res = await fetch(url, { keepalive: false });
      if (res.status === 200 && ((await res.json()) as { status: string }).status === "pass") readyAt = performance.now();
    } catch {
      // not listening yet
    }
    if (readyAt === undefined) await Bun.sleep(10);
  }
  const listening = await arbiter.waitForLog("listening");
  const stopAt = performance.now();
  arbiter.proc.kill("SIGTERM");
  const code = await arbiter.exited;
  if (code !== 0) throw new Error(`arbiter exited ${code} after SIGTERM`);
  return { ready_ms: ms(readyAt - spawned), listening_ms: Number(listening.startup_ms), shutdown_ms: ms(performance.now() - stopAt) };
}

function summarise(runs: Run[]) {
  return {
    runs,
    median_ready_ms: ms(median(runs.map((r) => r.ready_ms))),
    median_listening_ms: ms(median(runs.map((r) => r.listening_ms))),
    median_shutdown_ms: ms(median(runs.map((r) => r.shutdown_ms))),
  };
}

async function measure(label: string, fresh: () => Promise<{ env: Record<string, string>; cleanup: () => Promise<void> }>) {
  const cold: Run[] = [];
  const warm: Run[] = [];
  for (let i = 0; i < RUNS; i++) {
    const target = await fresh();
    try {
      cold.push(await startOnce(target.env)); // first start on an empty store
      warm.push(await startOnce(target.env)); // restart on what it left
    } finally {
      await target.cleanup();
    }
    console.error(`${label}: run ${i + 1}/${RUNS}: cold ${cold.at(-1)?.ready_ms} ms, warm ${warm.at(-1)?.ready_ms} ms`);
  }
  const coldSummary = summarise(cold);
  const warmSummary = summarise(warm);
  return {
    cold: coldSummary,
    warm: warmSummary,
    warm_over_cold: Math.round((warmSummary.median_ready_ms / coldSummary.median_ready_ms) * 100) / 100,
  };
}

const results: Record<string, unknown> = {
  benchmark: "startup",
  measured_at: new Date().toISOString(),
  bun: Bun.version,
  runs_per_case: RUNS,
  note: "ready_ms: spawn → /health/ready pass; listening_ms: the server's own config → listening; shutdown_ms: SIGTERM → exit 0",
};

results.embedded = await measure("embedded (PGlite)", async () => {
  const dir = tempDir("bench-startup");
  return { env: { DATA_DIR: dir }, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
});

if (await postgresReachable()) {
  results.postgres = await measure("postgres", async () => {
    const scratch = await createScratchDatabase(REAL_POSTGRES_URL);
    return { env: { DATABASE_URL: scratch.url }, cleanup: scratch.drop };
  });
}

mkdirSync(dirname(OUTPUT), { recursive: true });
writeFileSync(OUTPUT, `${JSON.stringify(results, null, 2)}\n`);
console.log(JSON.stringify(results, null, 2));
