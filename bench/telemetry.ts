/**
 * Telemetry ingestion throughput on real PostgreSQL.
 *   api: 1,000-event batches POSTed to /v1/telemetry/events over HTTP (validation, authentication,
 *        one multi-row INSERT … ON CONFLICT DO NOTHING per batch), CONCURRENCY batches in flight.
 *   raw: the same batches, the same INSERT statement through the same connection pool, without the
 *        API: the ceiling the database allows.
 * The two are interleaved over ROUNDS rounds in one run; medians and their ratio are reported.
 * Needs DATABASE_URL (a scratch database is created beside it and dropped afterwards).
 * Writes bench/results/telemetry.json.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { createApp } from "../src/app";
import { createApiKey } from "../src/auth/api-keys";
import { createMemoryCache } from "../src/cache/memory";
import { loadConfig } from "../src/config";
import { openPostgres } from "../src/db/client";
import { telemetryEvents } from "../src/db/schema";
import { systemClock, VERSION } from "../src/deps";
import { instrumentDatabase } from "../src/observability/database";
import { createLogger } from "../src/observability/logger";
import { createMetricsRegistry } from "../src/observability/metrics";
import { createScratchDatabase } from "../test/helpers/db";
import { median } from "./lib/load";

const BATCH = 1_000;
const BATCHES_PER_SAMPLE = Number(process.env.BENCH_BATCHES ?? 20);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 4);
const serverUrl = process.env.DATABASE_URL;
if (!serverUrl) {
  console.error("bench/telemetry: set DATABASE_URL to a PostgreSQL server (a scratch database is created on it)");
  process.exit(2);
}

const scratch = await createScratchDatabase(serverUrl);
const config = loadConfig({ DATABASE_URL: scratch.url, LOG_LEVEL: "warn" });
const database = await openPostgres({ url: scratch.url, poolMax: config.DATABASE_POOL_MAX });
await database.migrate();
const cache = createMemoryCache();
const logger = createLogger({ level: "warn" });
const metrics = createMetricsRegistry({ version: VERSION });
instrumentDatabase(database, metrics.meter, config.DATABASE_POOL_MAX);
const app = createApp({ config, database, cache, logger, clock: systemClock, meter: metrics.meter, metrics, version: VERSION });
const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: app.fetch, idleTimeout: 60 });
const { key } = await createApiKey(database.db, { name: "bench", role: "service" }, new Date());

let sequence = 0;
function makeBatch() {
  sequence++;
  const occurredAt = new Date();
  return Array.from({ length: BATCH }, (_, i) => ({
    id: `bench-${sequence}-${i}`,
    type: "agent.step",
    source: `agent-${i % 16}`,
    severity: "info" as const,
    occurred_at: occurredAt.toISOString(),
    attributes: { step: i, host: "bench-host", ok: true },
  }));
}

/** Runs `send` over BATCHES_PER_SAMPLE batches with CONCURRENCY in flight; returns events per second. */
async function eventsPerSecond<T>(batches: T[], send: (batch: T) => Promise<void>): Promise<number> {
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < batches.length) await send(batches[next++]!);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return (batches.length * BATCH) / ((performance.now() - started) / 1000);
}

const viaApi = async () => {
  const bodies = Array.from({ length: BATCHES_PER_SAMPLE }, () => JSON.stringify({ events: makeBatch() }));
  return eventsPerSecond(bodies, async (body) => {
    const res = await fetch(`${server.url}v1/telemetry/events`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-API-Key": key },
      body,
    });
    const answer = (await res.json()) as { accepted?: number };
    if (res.status !== 202 || answer.accepted !== BATCH) throw new Error(`api answered ${res.status}: ${JSON.stringify(answer)}`);
  });
};

const raw = async () => {
  const batches = Array.from({ length: BATCHES_PER_SAMPLE }, () => {
    const now = new Date();
    return makeBatch().map((e) => ({ ...e, occurredAt: new Date(e.occurred_at), traceId: null, ingestedBy: null, createdAt: now }));
  });
  return eventsPerSecond(batches, async (rows) => {
    const inserted = await database.db
      .insert(telemetryEvents)
      .values(rows)
      .onConflictDoNothing({ target: telemetryEvents.id })
      .returning({ id: telemetryEvents.id });
    if (inserted.length !== BATCH) throw new Error(`raw insert stored ${inserted.length}`);
  });
};

try {
  await viaApi(); // warm-up: JIT, pool connections, prepared paths
  await raw();
  const api: number[] = [];
  const ceiling: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    api.push(await viaApi());
    ceiling.push(await raw());
  }
  const result = {
    name: "telemetry",
    date: new Date().toISOString(),
    runtime: `bun ${Bun.version}`,
    database: "postgresql (real server)",
    batch_size: BATCH,
    batches_per_sample: BATCHES_PER_SAMPLE,
    concurrency: CONCURRENCY,
    rounds: ROUNDS,
    api_events_per_second: { median: Math.round(median(api)), samples: api.map(Math.round) },
    raw_insert_events_per_second: { median: Math.round(median(ceiling)), samples: ceiling.map(Math.round) },
    api_share_of_raw_ceiling: Math.round((median(api) / median(ceiling)) * 100) / 100,
  };
  mkdirSync(new URL("./results", import.meta.url), { recursive: true });
  writeFileSync(new URL("./results/telemetry.json", import.meta.url), `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
} finally {
  await server.stop(true);
  await Promise.allSettled([cache.close(), database.close(), metrics.shutdown()]);
  await scratch.drop();
}
