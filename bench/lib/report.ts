/** The shapes bench/run.ts records and the Markdown table it writes beside the JSON. */

export interface Sample {
  /** requests/s, or events/s for telemetry */
  value: number;
  p50_ms?: number;
  p99_ms?: number;
  /** the server process (Arbiter or a ceiling server), % of one core */
  cpu_pct?: number;
  /** the PostgreSQL cluster (postmaster and backends), % of one core */
  db_cpu_pct?: number;
  /** peak resident memory of the server process in the window */
  rss_mib?: number;
}

export interface ThroughputResult {
  id: string;
  section: "ceilings" | "postgres" | "embedded";
  name: string;
  unit: "req/s" | "events/s" | "tx/s";
  /** medians over the rounds (memory: the peak) */
  median?: number;
  p50_ms?: number;
  p99_ms?: number;
  cpu_pct?: number;
  db_cpu_pct?: number;
  rss_mib?: number;
  /** the scenario this one is set against, by id and section */
  ceiling?: { id: string; section: ThroughputResult["section"]; name: string; median?: number };
  ratio?: number;
  /** a fixed outside figure to compare with (B2: the FastAPI stack) */
  reference?: { name: string; value: number; ratio?: number };
  samples: Sample[];
  notes?: string;
  errors: string[];
}

export interface LatencyResult {
  id: string;
  name: string;
  /** open requests (waiters or streams) */
  clients: number;
  /** decisions changed by the trigger */
  decisions: number;
  p50_ms?: number;
  p99_ms?: number;
  max_ms?: number;
  /** until every trigger request (approvals, or the one create) had answered */
  trigger_ms?: number;
  rss_before_mib?: number;
  rss_peak_mib?: number;
  extra_rss_mib?: number;
  kib_per_client?: number;
  outcomes?: Record<string, number>;
  /** every round's p99, in round order; the other figures are the median round's */
  p99_rounds_ms?: number[];
  errors: string[];
}

export interface StartupRun {
  ready_ms: number;
  shutdown_ms: number;
}

export interface StartupResult {
  id: string;
  name: string;
  cold: StartupRun[];
  warm: StartupRun[];
  cold_ready_ms?: number;
  warm_ready_ms?: number;
  shutdown_ms?: number;
  errors: string[];
}

export interface Results {
  benchmark: "arbiter";
  mode: "full" | "smoke";
  at: string;
  duration_s: number;
  arbiter: { root_commit: string; root_dirty: boolean };
  runtime: string;
  machine: { cpus: number; model: string; load_at_start: number[]; load_at_end: number[] };
  settings: Record<string, number | string>;
  throughput: ThroughputResult[];
  latency: LatencyResult[];
  startup: StartupResult[];
  errors: string[];
}

const int = (n: number | undefined) => (n === undefined ? "—" : Math.round(n).toLocaleString("en-US"));
const ms = (n: number | undefined) =>
  n === undefined ? "—" : n < 10 ? `${n.toFixed(2)} ms` : `${Math.round(n).toLocaleString("en-US")} ms`;
const pct = (n: number | undefined) => (n === undefined ? "—" : `${n}%`);
const mib = (n: number | undefined) => (n === undefined ? "—" : `${n.toFixed(0)} MiB`);
const ratio = (n: number | undefined) => (n === undefined ? "—" : `${n.toFixed(2)}×`);
const failed = (errors: string[]) => (errors.length ? " **FAILED**" : "");
/** Every round's p99 after the median round's, when there was more than one round. */
const rounds = (p99s: number[] | undefined) =>
  p99s && p99s.length > 1 ? ` (${p99s.map((n) => ms(n).replace(" ms", "")).join(", ")} ms)` : "";

const SECTIONS: Record<ThroughputResult["section"], string> = {
  ceilings: "B0 — ceilings",
  postgres: "Arbiter on PostgreSQL + Redis",
  embedded: "Arbiter embedded (PGlite, in-memory cache)",
};

export function markdown(results: Results): string {
  const out: string[] = [];
  const s = results.settings;
  out.push(`# Arbiter benchmark — ${results.at.slice(0, 10)}${results.mode === "smoke" ? " (smoke)" : ""}`);
  out.push("");
  out.push(
    `Arbiter ${results.arbiter.root_commit.slice(0, 12)}${results.arbiter.root_dirty ? " (with uncommitted changes)" : ""}, ` +
      `${results.runtime}, ${results.machine.cpus} × ${results.machine.model}, ` +
      `load average ${results.machine.load_at_start.join(" / ")} at the start, ${results.machine.load_at_end.join(" / ")} at the end. ` +
      `wrk: ${s.wrk_threads} thread, ${s.connections} connections, ${s.warmup_s} s warm-up + ${s.measure_s} s measured, ` +
      `median of ${s.rounds} interleaved round(s); whole run ${results.duration_s} s.`,
  );
  out.push("");
  out.push("| Scenario | Median | p50 | p99 | Ceiling | Ratio | CPU server / db | RSS |");
  out.push("|---|---:|---:|---:|---|---:|---:|---:|");
  for (const section of Object.keys(SECTIONS) as ThroughputResult["section"][]) {
    const rows = results.throughput.filter((r) => r.section === section);
    if (!rows.length) continue;
    out.push(`| **${SECTIONS[section]}** | | | | | | | |`);
    for (const r of rows) {
      out.push(
        `| ${r.name}${failed(r.errors)} | ${int(r.median)} ${r.unit} | ${ms(r.p50_ms)} | ${ms(r.p99_ms)} | ` +
          `${r.ceiling ? `${r.ceiling.name} (${int(r.ceiling.median)})` : "—"} | ${ratio(r.ratio)} | ` +
          `${pct(r.cpu_pct)} / ${pct(r.db_cpu_pct)} | ${mib(r.rss_mib)} |`,
      );
    }
  }
  for (const r of results.throughput.filter((r) => r.reference))
    out.push("", `${r.name} against ${r.reference!.name} (${int(r.reference!.value)} ${r.unit}): ${ratio(r.reference!.ratio)}.`);
  out.push("");
  out.push(
    "| Waiting clients (the median round by p99) | Clients | Decisions | p50 | p99 (every round's) | max | Trigger answered | Server RSS before → peak (the round that grew most) | Per client |",
  );
  out.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of results.latency) {
    out.push(
      `| ${r.name}${failed(r.errors)} | ${int(r.clients)} | ${int(r.decisions)} | ${ms(r.p50_ms)} | ${ms(r.p99_ms)}${rounds(r.p99_rounds_ms)} | ${ms(r.max_ms)} | ` +
        `${ms(r.trigger_ms)} | ${mib(r.rss_before_mib)} → ${mib(r.rss_peak_mib)} | ${r.kib_per_client === undefined ? "—" : `${r.kib_per_client.toFixed(1)} KiB`} |`,
    );
  }
  out.push("");
  out.push("| Start-up (spawn → /health/ready pass) | Cold | Warm restart | Shutdown (SIGTERM → exit) | Runs |");
  out.push("|---|---:|---:|---:|---:|");
  for (const r of results.startup) {
    out.push(
      `| ${r.name}${failed(r.errors)} | ${ms(r.cold_ready_ms)} | ${ms(r.warm_ready_ms)} | ${ms(r.shutdown_ms)} | ${r.cold.length} |`,
    );
  }
  if (results.errors.length) {
    out.push("", "## Errors", "", ...results.errors.map((e) => `- ${e.replaceAll("\n", " ")}`));
  }
  out.push("");
  return out.join("\n");
}
