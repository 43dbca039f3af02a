/** The shapes bench/soak.ts records and the Markdown it writes beside the JSON. */
import type { LedgerCheck } from "./soak-check";
import type { SoakError, SoakRates } from "./soak-load";

export interface SoakSample {
  /** before the load (streams not yet open), under load, after the load drained and the streams closed */
  label: "start" | "load" | "end";
  at_s: number;
  /** the Arbiter process's VmRSS */
  rss_mib: number;
  fds: number;
  /** of the fds: sockets (the listener, client connections, database and Redis connections) */
  sockets: number;
  /** requests sent and errors so far */
  requests: number;
  errors: number;
  in_flight: number;
  /** the most requests in flight at once since the previous sample */
  peak_in_flight: number;
}

export interface SoakOperation {
  sent: number;
  ok: number;
  errors: number;
  p50_ms?: number;
  p99_ms?: number;
  max_ms?: number;
}

export interface SoakResults {
  soak: "arbiter";
  at: string;
  duration_s: number;
  backends: string;
  machine: { cpus: number; model: string; load_at_start: number[]; load_at_end: number[] };
  rates: SoakRates;
  /** fd_growth: the bound applied, FD_BOUND plus the growth of peak concurrency over the baseline's */
  bounds: { rss_growth_mib: number; fd_growth: number; sample_every_s: number };
  operations: Record<string, SoakOperation>;
  samples: SoakSample[];
  /** baseline: the first sample under load, against which growth is bounded */
  rss: { start_mib: number; baseline_mib: number; max_mib: number; end_mib: number };
  fds: { start: number; baseline: number; max: number; end: number };
  streams: { opens: number; events: number; changes_seen: number }[];
  ledger: LedgerCheck;
  error_count: number;
  /** the first 50 */
  errors: SoakError[];
  failures: string[];
}

const ms = (n: number | undefined) => (n === undefined ? "—" : `${n} ms`);

export function soakMarkdown(r: SoakResults): string {
  const rates = r.rates;
  const requests = Object.values(r.operations).reduce((sum, o) => sum + o.sent, 0);
  const out = [
    `# Arbiter soak — ${r.at.slice(0, 10)}: ${r.failures.length ? "**FAILED**" : "passed"}`,
    "",
    `${r.duration_s} s on ${r.backends}, ${r.machine.cpus} × ${r.machine.model}, load average ${r.machine.load_at_start.join(" / ")} at the start, ` +
      `${r.machine.load_at_end.join(" / ")} at the end.`,
    "",
    `Rate per second: ${rates.reads} reads, ${rates.creates} creates, ${rates.approvals} approvals, ${rates.rejections} rejection, ` +
      `${rates.consumes} consumes, ${rates.telemetry_batches} telemetry batches of ${rates.telemetry_batch} events, ${rates.long_polls} long-polls ` +
      `(wait ${rates.long_poll_wait_s} s); ${rates.streams} SSE streams held open, each resumed with Last-Event-ID every ${rates.stream_rotate_s} s.`,
    "",
    `${requests.toLocaleString("en-US")} requests, ${r.error_count} errors. Resident memory ${r.rss.start_mib} MiB before the load, ` +
      `${r.rss.baseline_mib} MiB at the first sample under load, at most ${r.rss.max_mib} MiB, ${r.rss.end_mib} MiB at the end ` +
      `(bound: +${r.bounds.rss_growth_mib} MiB over the first sample under load). Open files ${r.fds.start} → ${r.fds.baseline} → max ${r.fds.max} → ${r.fds.end} ` +
      `(bound: +${r.bounds.fd_growth}).`,
    "",
    `Acknowledged writes checked in the database: ${r.ledger.writes_checked.toLocaleString("en-US")}; ${r.ledger.missing} missing, ` +
      `${r.ledger.duplicates} duplicated, ${r.ledger.unacknowledged} present without an acknowledgement.`,
    "",
    "| Operation | Sent | 2xx | Errors | p50 | p99 | max |",
    "|---|---:|---:|---:|---:|---:|---:|",
    ...Object.entries(r.operations).map(
      ([name, o]) => `| ${name} | ${o.sent} | ${o.ok} | ${o.errors} | ${ms(o.p50_ms)} | ${ms(o.p99_ms)} | ${ms(o.max_ms)} |`,
    ),
    "",
    "| Sample | At | RSS | fds | sockets | Requests | Errors | In flight (peak since the previous sample) |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
    ...r.samples.map(
      (s) =>
        `| ${s.label} | ${s.at_s} s | ${s.rss_mib} MiB | ${s.fds} | ${s.sockets} | ${s.requests} | ${s.errors} | ${s.in_flight} (${s.peak_in_flight ?? "—"}) |`,
    ),
  ];
  if (r.failures.length) out.push("", "## Failures", "", ...r.failures.map((f) => `- ${f}`));
  if (r.errors.length)
    out.push("", "## Errors (first 50)", "", ...r.errors.map((e) => `- ${e.at_s} s ${e.operation}: ${e.detail.replaceAll("\n", " ")}`));
  if (r.ledger.problems.length) out.push("", "## Ledger problems (first 20)", "", ...r.ledger.problems.map((p) => `- ${p}`));
  out.push("");
  return out.join("\n");
}
