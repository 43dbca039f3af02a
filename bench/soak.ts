/**
 * `bun run soak`: Arbiter under a fixed mixed load for a while (reads, creates, approvals,
 * rejections, consumes, telemetry batches, long-polls, SSE streams held open), failing on any error,
 * on memory or open files that grow beyond a stated bound, and on any acknowledged write that is
 * not in the database exactly once. Writes bench/results/soak-<date>[-<label>].{json,md}. See docs/soak.md.
 *
 *   bun run soak                          10 minutes on a PostgreSQL cluster and redis-server of its own
 *   bun run soak --duration 60            one minute (CI)
 *   bun run soak --label=ci               writes bench/results/soak-<date>-ci.{json,md}
 *   bun run soak --database-url=postgres://… --redis-url=redis://…   a scratch database on that server, and that Redis
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join, resolve } from "node:path";
import { createScratchDatabase } from "../test/helpers/db";
import { median, percentile } from "./lib/load";
import { openFiles, rssMiB } from "./lib/procstat";
import { checkLedger } from "./lib/soak-check";
import { createSoakLoad, type SoakRates } from "./lib/soak-load";
import { type SoakResults, type SoakSample, soakMarkdown } from "./lib/soak-report";
import {
  arbiterEnv,
  freePort,
  newKeys,
  readyPass,
  removeDir,
  spawnArbiter,
  startPostgres,
  startRedis,
  tempDir,
  waitUntilReady,
} from "./lib/stack";

const args = process.argv.slice(2);
const option = (name: string) => {
  const inline = args.find((a) => a.startsWith(`--${name}=`));
  if (inline) return inline.slice(name.length + 3);
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : undefined;
};
const DURATION_S = Number(option("duration") ?? 600);
if (!Number.isInteger(DURATION_S) || DURATION_S < 30) {
  console.error("soak: --duration takes whole seconds, at least 30");
  process.exit(2);
}
const LABEL = option("label");
const DATABASE_URL = option("database-url");
const REDIS_URL = option("redis-url");
const ROOT = resolve(import.meta.dir, "..");

/**
 * About 50 requests and 200 telemetry events a second, plus 8 streams and about 6 long-polls held:
 * a steady production-like mix that leaves most of a 2-core machine shared with other work idle.
 * Creates outpace verdicts (8 against 6 + 1) so long-polls always find pending decisions.
 */
const RATES: SoakRates = {
  reads: 20,
  creates: 8,
  approvals: 6,
  rejections: 1,
  consumes: 5,
  telemetry_batches: 2,
  telemetry_batch: 100,
  long_polls: 2,
  long_poll_wait_s: 3,
  streams: 8,
  stream_rotate_s: 30,
};
/** a sample every minute, every 10 s in runs shorter than 5 minutes */
const SAMPLE_EVERY_S = DURATION_S >= 300 ? 60 : 10;
/**
 * Flatness: against the first sample under load (once caches, pools and the JIT have warmed up),
 * the server's resident memory may grow by at most RSS_BOUND_MIB (garbage collection is lazy; a
 * leak of 1 KiB per request would cross it in about 25 minutes at this rate), and its open files by
 * at most FD_BOUND plus the growth of the client's peak concurrency over the baseline's: a burst of
 * requests in flight (the machine stalled a moment) opens keep-alive connections the client keeps
 * and the server holds until its 60 s idle timeout, which is not a leak.
 */
const RSS_BOUND_MIB = 64;
const FD_BOUND = 16;

const began = performance.now();
const elapsed = () => Math.round((performance.now() - began) / 100) / 10;
const log = (line: string) => console.error(`soak [${elapsed().toFixed(0).padStart(4)} s] ${line}`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const round1 = (n: number) => Math.round(n * 10) / 10;

async function main(): Promise<SoakResults> {
  const at = new Date().toISOString();
  const loadAtStart = loadavg().map((n) => Number(n.toFixed(2)));
  const dir = tempDir();
  const cleanups: (() => Promise<unknown>)[] = [async () => removeDir(dir)];
  const cleanup = async () => {
    for (const step of cleanups.splice(0).reverse()) await step().catch((error) => log(`cleanup: ${(error as Error).message}`));
  };
  const interrupted = async () => {
    log("interrupted: stopping what was started");
    await cleanup();
    process.exit(130);
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);

  try {
    let databaseUrl: string;
    let redisUrl: string;
    if (DATABASE_URL) {
      const scratch = await createScratchDatabase(DATABASE_URL);
      cleanups.push(() => scratch.drop());
      databaseUrl = scratch.url;
    } else {
      const pg = await startPostgres();
      cleanups.push(() => pg.stop());
      databaseUrl = await pg.createDatabase();
    }
    if (REDIS_URL) redisUrl = REDIS_URL;
    else {
      const redis = await startRedis(dir);
      cleanups.push(() => redis.stop());
      redisUrl = redis.base;
    }
    const keys = newKeys();
    const server = spawnArbiter(
      "arbiter",
      ROOT,
      // A key prefix of its own, so a shared Redis sees nothing of other runs.
      arbiterEnv(keys, await freePort(), { DATABASE_URL: databaseUrl, REDIS_URL: redisUrl, CACHE_PREFIX: `soak-${Date.now()}:` }),
      join(dir, "arbiter.log"),
    );
    cleanups.push(() => server.stop());
    await waitUntilReady(server, "/health/ready", 120_000, readyPass);
    log(`Arbiter is up (pid ${server.pid}) on ${DATABASE_URL ? "the given PostgreSQL" : "its own PostgreSQL"}; ${DURATION_S} s of load`);

    const load = createSoakLoad(server.base, keys, RATES);
    const samples: SoakSample[] = [];
    const sample = (label: SoakSample["label"]) => {
      const files = openFiles(server.pid);
      let requests = 0;
      let errors = 0;
      for (const s of load.stats.values()) {
        requests += s.sent;
        errors += s.errors;
      }
      const s: SoakSample = {
        label,
        at_s: elapsed(),
        rss_mib: round1(rssMiB(server.pid)),
        ...files,
        requests,
        errors,
        in_flight: load.inFlight(),
        peak_in_flight: load.takePeakInFlight(),
      };
      samples.push(s);
      log(
        `${label}: rss ${s.rss_mib} MiB, ${s.fds} fds (${s.sockets} sockets), ${requests} requests, ${errors} errors, ${s.in_flight} in flight`,
      );
    };

    sample("start");
    await load.openStreams();
    load.start();
    const loadStarted = performance.now();
    for (let t = SAMPLE_EVERY_S; t < DURATION_S; t += SAMPLE_EVERY_S) {
      await sleep(loadStarted + t * 1000 - performance.now());
      sample("load");
    }
    await sleep(loadStarted + DURATION_S * 1000 - performance.now());
    sample("load");
    await load.stopRequests();
    // Every acknowledged change must reach every stream (resumed streams included): give the last ones a moment.
    const streamDeadline = performance.now() + 10_000;
    while (load.streamGaps().length && performance.now() < streamDeadline) await sleep(100);
    const streamGaps = load.streamGaps();
    await load.closeStreams();
    await sleep(2_000); // the server notices the closed streams and lets idle sockets go
    sample("end");

    log("checking every acknowledged write in the database");
    const ledger = await checkLedger(databaseUrl, load.ledger);
    await cleanup();

    const baseline = samples.find((s) => s.label === "load")!;
    const later = samples.slice(samples.indexOf(baseline) + 1);
    const maxRss = Math.max(...later.map((s) => s.rss_mib), baseline.rss_mib);
    const maxFds = Math.max(...later.map((s) => s.fds), baseline.fds);
    const concurrencyGrowth = Math.max(0, ...later.map((s) => s.peak_in_flight - baseline.peak_in_flight));
    const fdBound = FD_BOUND + concurrencyGrowth;
    const failures: string[] = [];
    const totalErrors = load.errors.length;
    if (totalErrors) failures.push(`${totalErrors} request error(s)`);
    if (maxRss - baseline.rss_mib > RSS_BOUND_MIB)
      failures.push(
        `resident memory grew ${round1(maxRss - baseline.rss_mib)} MiB after the first sample under load (bound ${RSS_BOUND_MIB} MiB)`,
      );
    if (maxFds - baseline.fds > fdBound)
      failures.push(
        `open files grew by ${maxFds - baseline.fds} (bound ${FD_BOUND} + ${concurrencyGrowth} more requests in flight at the peak)`,
      );
    if (ledger.missing || ledger.duplicates || ledger.unacknowledged)
      failures.push(
        `${ledger.missing} acknowledged write(s) missing, ${ledger.duplicates} duplicated, ${ledger.unacknowledged} unacknowledged`,
      );
    for (const gap of streamGaps)
      failures.push(
        `stream ${gap.stream}: ${gap.missing} acknowledged change(s) never delivered, ${gap.repeated} delivered more than once`,
      );

    const operations = Object.fromEntries(
      [...load.stats].map(([name, s]) => [
        name,
        {
          sent: s.sent,
          ok: s.ok,
          errors: s.errors,
          ...(s.latencies_ms.length
            ? {
                p50_ms: round1(median(s.latencies_ms)),
                p99_ms: round1(percentile(s.latencies_ms, 0.99)),
                max_ms: round1(Math.max(...s.latencies_ms)),
              }
            : {}),
        },
      ]),
    );
    return {
      soak: "arbiter",
      at,
      duration_s: DURATION_S,
      backends: DATABASE_URL ? "given PostgreSQL + Redis" : "own PostgreSQL + redis-server",
      machine: {
        cpus: cpus().length,
        model: cpus()[0]?.model ?? "unknown",
        load_at_start: loadAtStart,
        load_at_end: loadavg().map((n) => Number(n.toFixed(2))),
      },
      rates: RATES,
      bounds: { rss_growth_mib: RSS_BOUND_MIB, fd_growth: fdBound, sample_every_s: SAMPLE_EVERY_S },
      operations,
      samples,
      rss: { start_mib: samples[0]!.rss_mib, baseline_mib: baseline.rss_mib, max_mib: maxRss, end_mib: samples.at(-1)!.rss_mib },
      fds: { start: samples[0]!.fds, baseline: baseline.fds, max: maxFds, end: samples.at(-1)!.fds },
      streams: load.streams.map((s) => ({ opens: s.opens, events: s.events, changes_seen: s.changes.size })),
      ledger,
      error_count: totalErrors,
      errors: load.errors.slice(0, 50),
      failures,
    };
  } finally {
    await cleanup();
  }
}

const results = await main().catch((error) => {
  console.error(`soak: ${(error as Error).message}`);
  process.exit(1);
});
const stem = `soak-${results.at.slice(0, 10)}${LABEL ? `-${LABEL}` : ""}`;
const outDir = join(ROOT, "bench/results");
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, `${stem}.json`), `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(join(outDir, `${stem}.md`), soakMarkdown(results));
const requests = Object.values(results.operations).reduce((sum, o) => sum + o.sent, 0);
console.log(
  `soak: ${results.duration_s} s, ${requests} requests, ${results.error_count} errors; ` +
    `rss ${results.rss.start_mib} → ${results.rss.end_mib} MiB (max ${results.rss.max_mib}), fds ${results.fds.start} → ${results.fds.end} (max ${results.fds.max}); ` +
    `${results.ledger.writes_checked} acknowledged writes checked, ${results.ledger.missing} missing, ${results.ledger.duplicates} duplicated`,
);
console.log(`wrote bench/results/${stem}.json and .md`);
if (results.failures.length) {
  console.error(`\nsoak FAILED:\n${results.failures.map((f) => `  - ${f}`).join("\n")}`);
  for (const e of results.errors.slice(0, 10)) console.error(`  at ${e.at_s} s ${e.operation}: ${e.detail}`);
  process.exit(1);
}
process.exit(0);
