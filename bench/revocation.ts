/**
 * How fast a revocation reaches another replica: from the revoking replica's publish to the other
 * replica's listener dropping the entry, over two separate cache connections sharing one prefix
 * (what two replicas have). Baseline from the same run: one PING round trip on the same cache.
 * Backends: in-memory always; Redis too when REDIS_URL is set.
 * Writes bench/results/revocation.json (or the file named by BENCH_OUTPUT).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { createRevocationListener, publishRevocation, type Revocation } from "../src/auth/revocations";
import { createMemoryCache } from "../src/cache/memory";
import { createRedisCache } from "../src/cache/redis";
import type { Cache } from "../src/cache/types";
import { createLogger } from "../src/observability/logger";
import { median, percentile } from "./lib/load";

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 500);
const logger = createLogger({ level: "warn" });
const micros = (ms: number) => Math.round(ms * 1000);

async function measure(name: string, publisher: Cache, subscriber: Cache) {
  const waiting = new Map<string, () => void>();
  const listener = createRevocationListener({
    cache: subscriber,
    logger,
    now: Date.now,
    onRevocation: (revocation: Revocation) => waiting.get(revocation.kind === "key" ? revocation.id : revocation.jti)?.(),
  });
  await listener.listen();
  const delays: number[] = [];
  const pings: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const id = crypto.randomUUID();
    const arrived = new Promise<void>((resolve) => waiting.set(id, resolve));
    const started = performance.now();
    await publishRevocation({ cache: publisher, logger }, { kind: "key", id });
    await arrived;
    delays.push(performance.now() - started);
    waiting.delete(id);
    const pinged = performance.now();
    await publisher.ping();
    pings.push(performance.now() - pinged);
  }
  await Promise.all([publisher.close(), subscriber === publisher ? undefined : subscriber.close()]);
  return {
    backend: name,
    samples: SAMPLES,
    broadcast_median_us: micros(median(delays)),
    broadcast_p99_us: micros(percentile(delays, 0.99)),
    ping_median_us: micros(median(pings)),
    ratio_to_ping: Number((median(delays) / median(pings)).toFixed(2)),
  };
}

const results = [];
const memory = createMemoryCache();
results.push(await measure("memory", memory, memory));
if (process.env.REDIS_URL) {
  const prefix = `arbiter-bench:${Date.now().toString(36)}:`;
  const open = () => createRedisCache({ url: process.env.REDIS_URL!, prefix });
  results.push(await measure("redis", open(), open()));
}

const output = process.env.BENCH_OUTPUT ?? "bench/results/revocation.json";
mkdirSync("bench/results", { recursive: true });
const report = { benchmark: "revocation broadcast delay", at: new Date().toISOString(), results };
writeFileSync(output, `${JSON.stringify(report, null, 2)}\n`);
console.log(JSON.stringify(report, null, 2));
