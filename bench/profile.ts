/**
 * `bun run bench:profile`: where Arbiter's CPU goes in each benchmark scenario. For every scenario
 * asked for, it starts a fresh Arbiter (PostgreSQL + Redis of its own, as `bun run bench` does) under
 * Bun's sampling CPU profiler, drives that one scenario, stops the server (the profile is written at
 * exit) and writes bench/results/profiles/<date>[-label]-<scenario>.md: the load's figures, the
 * server's and the database's CPU per request, the server's samples grouped by package or source
 * area, and the hottest functions.
 *
 *   bun run bench:profile                     every scenario below
 *   bun run bench:profile B1-key B2           the scenarios named
 *   bun run bench:profile --seconds=20        a longer measured window (default 10 s, after 2 s of warm-up)
 *   bun run bench:profile --label=before      writes …/<date>-before-<scenario>.md
 *
 * The profiler samples every 1 ms by default and costs a few percent: compare the shares, and take
 * throughput from `bun run bench`.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import {
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
} from "./lib/drive";
import { watch } from "./lib/procstat";
import type { LatencyResult } from "./lib/report";
import {
  arbiterEnv,
  freePort,
  type Keys,
  newKeys,
  type Postgres,
  readyPass,
  removeDir,
  type Server,
  spawnServer,
  startPostgres,
  startRedis,
  tempDir,
  waitUntilReady,
} from "./lib/stack";
import { postScript, runWrk, type WrkTarget, wrkPath } from "./lib/wrk";

const ROOT = resolve(import.meta.dir, "..");
const args = process.argv.slice(2);
const option = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const SECONDS = Number(option("seconds") ?? 10);
const WARMUP_SECONDS = 2;
const LABEL = option("label");
const CONNECTIONS = 64;
const WAITERS = 5000;
const STREAMS = 1000;
const log = (line: string) => console.error(`profile: ${line}`);

interface Setup {
  server: Server;
  pg: Postgres;
  databaseUrl: string;
  keys: Keys;
  dir: string;
}

/** What a scenario did in its window: a wrk run, or the answers of held requests. */
type Load = { kind: "wrk"; requests: number; rate: string; p50_ms: number; p99_ms: number } | { kind: "held"; result: LatencyResult };

interface Scenario {
  id: string;
  name: string;
  /** runs the load; profiled from the server's start to its exit, CPU counted over the measured window */
  run(setup: Setup, measure: <T>(work: () => Promise<T>) => Promise<T>): Promise<Load>;
}

function wrkScenario(
  id: string,
  name: string,
  target: (s: Setup) => Promise<WrkTarget>,
  options: { perRequest?: number; connections?: number } = {},
): Scenario {
  return {
    id,
    name,
    async run(setup, measure) {
      const t = await target(setup);
      const script = t.body ? postScript(setup.dir, id, t.body) : undefined;
      const connections = options.connections ?? CONNECTIONS;
      await runWrk(t, { seconds: WARMUP_SECONDS, connections, script });
      const run = await measure(() => runWrk(t, { seconds: SECONDS, connections, script }));
      if (run.non_2xx > 0 || run.socket_errors > 0) throw new Error(`${id}: ${run.non_2xx} non-2xx, ${run.socket_errors} socket errors`);
      const per = options.perRequest ?? 1;
      return {
        kind: "wrk",
        requests: run.requests,
        rate: `${Math.round(run.requests_per_second * per).toLocaleString("en-US")} ${per > 1 ? "events" : "requests"}/s`,
        p50_ms: run.p50_ms,
        p99_ms: run.p99_ms,
      };
    },
  };
}

const read = async (s: Setup) => `${s.server.base}/v1/decisions/${await createDecision(s.server, s.keys)}`;

const SCENARIOS: Scenario[] = [
  wrkScenario("B1-key", "GET /v1/decisions/:id by API key (cached)", async (s) => ({
    url: await read(s),
    headers: { "X-API-Key": s.keys.service },
  })),
  wrkScenario("B1-jwt", "GET /v1/decisions/:id by JWT (cached)", async (s) => ({
    url: await read(s),
    headers: { Authorization: `Bearer ${await serviceToken(s.server, s.keys)}` },
  })),
  wrkScenario("B2", "POST /v1/decisions", async (s) => ({
    url: `${s.server.base}/v1/decisions`,
    headers: { "X-API-Key": s.keys.service },
    body: JSON.stringify(decisionBody),
  })),
  wrkScenario(
    "B3",
    `POST /v1/telemetry/events, ${TELEMETRY_BATCH}-event batches`,
    async (s) => ({
      url: `${s.server.base}/v1/telemetry/events`,
      headers: { "X-API-Key": s.keys.service },
      body: JSON.stringify({ events: telemetryEvents(new Date().toISOString()) }),
    }),
    { perRequest: TELEMETRY_BATCH, connections: TELEMETRY_CONNECTIONS },
  ),
  {
    id: "B4-one",
    name: `${WAITERS} long-poll waiters on one decision, approved`,
    async run(s, measure) {
      const result = latencyResult("B4-one", this.name, WAITERS, 1);
      const id = await createDecision(s.server, s.keys);
      await measure(() => longPoll(s.server, s.keys, [id], result));
      return { kind: "held", result };
    },
  },
  {
    id: "B4-burst",
    name: `${WAITERS} long-poll waiters on ${WAITERS} decisions, approved in a burst`,
    async run(s, measure) {
      const result = latencyResult("B4-burst", this.name, WAITERS, WAITERS);
      const ids = await pendingDecisions(s.server, s.keys, s.databaseUrl, WAITERS);
      await measure(() => longPoll(s.server, s.keys, ids, result));
      return { kind: "held", result };
    },
  },
  {
    id: "B5",
    name: `${STREAMS} SSE streams, one change`,
    async run(s, measure) {
      const result = latencyResult("B5", this.name, STREAMS, 1);
      await measure(() => sse(s.server, s.keys, result));
      return { kind: "held", result };
    },
  },
];

// ————— Reading a .cpuprofile (Chrome DevTools format) —————

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code lives: a package, a source area of Arbiter, the runtime, or the engine. */
export function groupOf(url: string, functionName: string, root: string): string {
  if (!url) return functionName.startsWith("(") ? functionName : "(native code)";
  const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return pkg[1]!;
  const path = url.replace(/^file:\/\//, "");
  if (path.startsWith(`${root}/src/`)) {
    return `src/${path.slice(root.length + 5).split("/")[0]}`;
  }
  if (/^(node|bun|internal):/.test(url) || url.startsWith("builtin://"))
    return `runtime: ${url
      .replace(/^builtin:\/\//, "")
      .split(/[/:]/)
      .slice(0, 2)
      .join(":")}`;
  return url;
}

export interface ProfileSummary {
  /** sampled time in ms, idle excluded */
  busyMs: number;
  groups: { group: string; ms: number }[];
  functions: { name: string; location: string; ms: number }[];
}

/**
 * Self time per group and per function, from each sample's leaf frame; idle samples are left out.
 * Native code (`Response`, `Headers.set`, `JSON.stringify`…) is charged to the group of the nearest
 * JavaScript caller, so the table says whose calls cost what, and the function is named with that caller.
 */
export function summariseProfile(profile: CpuProfile, root: string): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const where = (url: string, line: number) => `${url.replace(/^file:\/\//, "").replace(`${root}/`, "")}:${line + 1}`;
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const groups = new Map<string, number>();
  const functions = new Map<string, { name: string; location: string; ms: number }>();
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    if (functionName === "(idle)" || functionName === "(root)") continue;
    busyUs += us;
    let caller: ProfileNode | undefined;
    if (!url && !functionName.startsWith("(")) {
      for (let up = parentOf.get(id); up !== undefined && !caller; up = parentOf.get(up)) {
        if (byId.get(up)!.callFrame.url) caller = byId.get(up);
      }
    }
    const group = caller ? groupOf(caller.callFrame.url, "", root) : groupOf(url, functionName, root);
    groups.set(group, (groups.get(group) ?? 0) + us);
    const location = url
      ? where(url, lineNumber)
      : caller
        ? `native, called from ${where(caller.callFrame.url, caller.callFrame.lineNumber)}`
        : "";
    const key = `${functionName}@${location}`;
    const entry = functions.get(key) ?? { name: functionName || "(anonymous)", location, ms: 0 };
    entry.ms += us / 1000;
    functions.set(key, entry);
  }
  return {
    busyMs: busyUs / 1000,
    groups: [...groups].map(([group, us]) => ({ group, ms: us / 1000 })).sort((a, b) => b.ms - a.ms),
    functions: [...functions.values()].sort((a, b) => b.ms - a.ms),
  };
}

// ————— One scenario —————

async function profileScenario(scenario: Scenario, pg: Postgres, redisUrl: string, dir: string, outDir: string, stamp: string) {
  const keys = newKeys();
  const databaseUrl = await pg.createDatabase();
  const port = await freePort();
  const profileDir = join(dir, `profile-${scenario.id}`);
  mkdirSync(profileDir, { recursive: true });
  const server = spawnServer(`arbiter (${scenario.id})`, ["bun", "--cpu-prof", `--cpu-prof-dir=${profileDir}`, join(ROOT, "src/main.ts")], {
    env: arbiterEnv(keys, port, { DATABASE_URL: databaseUrl, REDIS_URL: redisUrl }),
    cwd: ROOT,
    port,
    logFile: join(dir, `arbiter-${scenario.id}.log`),
  });
  let cpu: { server: number; db: number; seconds: number } | undefined;
  let load: Load;
  try {
    await waitUntilReady(server, "/health/ready", 120_000, readyPass);
    load = await scenario.run({ server, pg, databaseUrl, keys, dir }, async (work) => {
      const started = performance.now();
      const usage = watch([{ pid: server.pid }, { pid: pg.pid, tree: true }]);
      try {
        return await work();
      } finally {
        const [s, d] = usage.stop();
        cpu = { server: s!.cpu_pct, db: d!.cpu_pct, seconds: (performance.now() - started) / 1000 };
      }
    });
  } finally {
    await server.stop();
  }
  const file = readdirSync(profileDir).find((f) => f.endsWith(".cpuprofile"));
  if (!file) throw new Error(`${scenario.id}: the server wrote no profile (did it exit cleanly?)`);
  const summary = summariseProfile(JSON.parse(readFileSync(join(profileDir, file), "utf8")) as CpuProfile, ROOT);
  const out = join(outDir, `${stamp}-${scenario.id}.md`);
  writeFileSync(out, report(scenario, load, cpu!, summary));
  log(`${scenario.id}: wrote ${out.replace(`${ROOT}/`, "")}`);
}

function report(scenario: Scenario, load: Load, cpu: { server: number; db: number; seconds: number }, summary: ProfileSummary): string {
  const pct = (ms: number) => `${((ms / summary.busyMs) * 100).toFixed(1)}%`;
  const lines = [`# CPU profile: ${scenario.id}, ${scenario.name}`, ""];
  lines.push(
    `${new Date().toISOString()}, Bun ${Bun.version}; made by \`bun run bench:profile ${scenario.id}\` (see bench/profile.ts).`,
    "",
  );
  if (load.kind === "wrk") {
    const perRequest = (pctOfCore: number) => `${Math.round(((pctOfCore / 100) * cpu.seconds * 1e6) / load.requests)} µs`;
    lines.push(
      `- Load: wrk, 1 thread, ${load.requests.toLocaleString("en-US")} requests in ${SECONDS} s (${load.rate}), p50 ${load.p50_ms} ms, p99 ${load.p99_ms} ms, under the profiler.`,
      `- CPU: server ${cpu.server}% of a core (${perRequest(cpu.server)} per request), PostgreSQL ${cpu.db}% (${perRequest(cpu.db)} per request).`,
    );
  } else {
    const r = load.result;
    lines.push(
      `- Held ${r.clients.toLocaleString("en-US")} requests: from the trigger to every answer p50 ${r.p50_ms} ms, p99 ${r.p99_ms} ms, max ${r.max_ms} ms (trigger answered in ${r.trigger_ms} ms), under the profiler.`,
      `- CPU over the whole hold (${cpu.seconds.toFixed(1)} s, opening the requests included): server ${cpu.server}% of a core, PostgreSQL ${cpu.db}%.`,
    );
  }
  lines.push(
    `- Sampled: ${(summary.busyMs / 1000).toFixed(2)} s of the server's busy time, from start to exit (idle left out); the shares below are of that.`,
    "",
    "## Self time by package or source area",
    "",
    "| where | share | self time |",
    "| --- | ---: | ---: |",
    ...summary.groups.slice(0, 20).map((g) => `| ${g.group} | ${pct(g.ms)} | ${Math.round(g.ms)} ms |`),
    "",
    "## Hottest functions (self time)",
    "",
    "| function | where | share |",
    "| --- | --- | ---: |",
    ...summary.functions.slice(0, 30).map((f) => `| \`${f.name}\` | ${f.location || "(engine)"} | ${pct(f.ms)} |`),
    "",
  );
  return lines.join("\n");
}

// ————— The run —————

if (import.meta.main) {
  const wanted = args.filter((a) => !a.startsWith("--"));
  const unknown = wanted.filter((w) => !SCENARIOS.some((s) => s.id === w));
  if (unknown.length) {
    console.error(`profile: unknown scenario ${unknown.join(", ")}; known: ${SCENARIOS.map((s) => s.id).join(", ")}`);
    process.exit(2);
  }
  if (!wrkPath()) throw new Error("wrk is not installed (apt-get install wrk)");
  const chosen = wanted.length ? SCENARIOS.filter((s) => wanted.includes(s.id)) : SCENARIOS;
  const stamp = `${new Date().toISOString().slice(0, 10)}${LABEL ? `-${LABEL}` : ""}`;
  const outDir = join(ROOT, "bench/results/profiles");
  mkdirSync(outDir, { recursive: true });
  const dir = tempDir();
  let failed = false;
  const pg = await startPostgres();
  const redis = await startRedis(dir);
  try {
    for (const scenario of chosen) {
      try {
        await profileScenario(scenario, pg, redis.base, dir, outDir, stamp);
      } catch (error) {
        failed = true;
        log(`ERROR ${scenario.id}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  } finally {
    await redis.stop();
    await pg.stop();
    removeDir(dir);
  }
  process.exit(failed ? 1 : 0);
}
