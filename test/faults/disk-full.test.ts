import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { chownSync, closeSync, openSync, rmSync, statfsSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { generateApiKey } from "../../src/auth/key-format";
import { loadConfig } from "../../src/config";
import { openDatabase } from "../../src/deps";
import { type ArbiterProcess, closedPort, spawnArbiter, tempDir } from "../foundation/support";
import { postgresServerBinaries as bin, startThrowawayPostgres, type ThrowawayPostgres } from "../helpers/cluster";
import { reportFault, storedCopies } from "./summary";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * The disk under the database fills up while Arbiter runs, on a tmpfs of this file's own that a
 * ballast file fills to the last block: the embedded DATA_DIR (PGlite), and the tablespace of a
 * throwaway PostgreSQL cluster's database (its WAL stays on the cluster's own disk, as when a data
 * volume fills). Writes must get a clear 503 `insufficient_storage` JSON error (never a 500, never a
 * crash), reads go on, nothing already stored is lost or corrupted, and writes succeed again by
 * themselves once the ballast is removed; after a restart the database reopens with every
 * acknowledged write there once. The embedded case runs twice: with the free-space reserve off
 * (PGlite's own disk_full) and with the default reserve (every write refused once it sees the full disk).
 * Mounting a tmpfs needs root (CAP_SYS_ADMIN); without it the tests skip and say why.
 */
const mounts: string[] = [];
/** A tmpfs of `size` at a new directory, owned by `owner`; its path, or why it could not be mounted. */
function mountTmpfs(label: string, size: string, owner?: { uid: number; gid: number }): { path: string } | { error: string } {
  if (process.platform !== "linux") return { error: "mounting a tmpfs needs Linux" };
  if (process.getuid?.() !== 0) return { error: "mounting a tmpfs needs root (CAP_SYS_ADMIN); run this file as root or in CI" };
  const path = tempDir(label);
  const mount = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", path], { stderr: "pipe" });
  if (mount.exitCode !== 0) {
    rmSync(path, { recursive: true, force: true });
    return { error: `mount -t tmpfs failed: ${mount.stderr.toString().trim()}` };
  }
  mounts.push(path);
  if (owner) chownSync(path, owner.uid, owner.gid);
  return { path };
}

const embeddedMount = mountTmpfs("disk-full", "128m");
const mountError = "error" in embeddedMount ? embeddedMount.error : undefined;
if (mountError) console.warn(`disk-full.test: skipped: ${mountError}`);
else if (!bin) console.warn("disk-full.test: the PostgreSQL case is skipped: no PostgreSQL server binaries on this machine");

const key = generateApiKey();
let arbiter: ArbiterProcess | undefined;
let cluster: ThrowawayPostgres | undefined;

afterAll(async () => {
  if (arbiter && arbiter.proc.exitCode === null) {
    arbiter.proc.kill("SIGKILL");
    await arbiter.exited;
  }
  await cluster?.remove();
  for (const path of mounts) {
    // A process that just exited may still hold files there for a moment.
    for (let attempt = 0; attempt < 10 && Bun.spawnSync(["umount", path]).exitCode !== 0; attempt++) await Bun.sleep(200);
    rmSync(path, { recursive: true, force: true });
  }
});

async function start(env: Record<string, string>): Promise<string> {
  arbiter = spawnArbiter({ ...env, ARBITER_API_KEYS: `admin:${key}`, PORT: String(await closedPort()) });
  const listening = await arbiter.waitForLog("listening", 90_000);
  return String(listening.url).replace(/\/$/, "");
}

/** Fills the filesystem to its last block; returns the bytes written. */
function fill(path: string): number {
  const fd = openSync(path, "w");
  let written = 0;
  try {
    for (const size of [1 << 20, 4096, 512]) {
      const chunk = Buffer.alloc(size, 1);
      try {
        for (;;) written += writeSync(fd, chunk);
      } catch (error) {
        if ((error as { code?: string }).code !== "ENOSPC") throw error;
      }
    }
  } finally {
    closeSync(fd);
  }
  return written;
}

interface Answer {
  status: number;
  code?: string;
  retryAfter: string | null;
  body: Record<string, unknown>;
}

/** The whole scenario on a database whose storage is the tmpfs at `mountPoint`. */
async function diskFull(fault: string, env: Record<string, string>, mountPoint: string, options: { reserve?: boolean } = {}) {
  const ballast = join(mountPoint, "ballast");
  const url = await start(env);
  const call = async (path: string, json?: unknown): Promise<Answer> => {
    const res = await fetch(url + path, {
      method: json === undefined ? "GET" : "POST",
      headers: { "X-API-Key": key, "Content-Type": "application/json" },
      ...(json === undefined ? {} : { body: JSON.stringify(json) }),
      // A database that blocks the process (PGlite unable to create a WAL segment) must fail the test, not hang it.
      signal: AbortSignal.timeout(15_000),
    });
    const body = (await res.json()) as Record<string, unknown> & { error?: { code: string } };
    return { status: res.status, code: body.error?.code, retryAfter: res.headers.get("retry-after"), body };
  };
  const answers: Answer[] = [];
  const decisions = new Map<string, string>();
  const eventIds: string[] = [];
  let n = 0;
  /** one decision and one telemetry batch (50 events of about 2 KiB each, so the tables must grow) */
  const writeRound = async () => {
    const title = `disk-full ${n++}`;
    const created = await call("/v1/decisions", { kind: "deploy", title, payload: { n } });
    answers.push(created);
    if (created.status === 201) decisions.set(title, created.body.id as string);
    const ids = Array.from({ length: 50 }, () => crypto.randomUUID());
    const occurredAt = new Date().toISOString();
    const batch = await call("/v1/telemetry/events", {
      events: ids.map((id) => ({
        id,
        type: "fill",
        source: "disk-full",
        severity: "info",
        occurred_at: occurredAt,
        attributes: { pad: "x".repeat(2048) },
      })),
    });
    answers.push(batch);
    if (batch.status === 202) eventIds.push(...ids);
    return [created, batch];
  };

  for (let i = 0; i < 20; i++) await writeRound();
  const storedBefore = { decisions: decisions.size, events: eventIds.length };
  expect(storedBefore).toEqual({ decisions: 20, events: 1000 });

  const ballastBytes = fill(ballast);
  const free = statfsSync(mountPoint);
  expect(free.bavail).toBe(0);
  // The reserve reads free space at most once a second: past that, it has seen the full disk.
  if (options.reserve) await Bun.sleep(1_100);

  // Writes until the database meets the full disk (free space inside its existing pages goes first).
  const fullAt = answers.length;
  let refused: Answer | undefined;
  for (let i = 0; i < 200 && !refused; i++) refused = (await writeRound()).find((a) => a.status === 503);
  expect(refused).toBeDefined();
  expect(refused!.code).toBe("insufficient_storage");
  expect(refused!.retryAfter).toBe("30");
  // More writes while full: each stored or refused with insufficient_storage, none a 500.
  for (let i = 0; i < 5; i++) await writeRound();
  const whileFull = answers.slice(fullAt);
  for (const a of whileFull) {
    // With the reserve every write is refused, even a decision small enough for free room in PGlite's pages.
    expect(options.reserve ? [503] : [201, 202, 503]).toContain(a.status);
    if (a.status === 503) expect(a.code).toBe("insufficient_storage");
  }
  // Reads go on, and the process is alive.
  for (const id of [...decisions.values()].slice(0, 10)) expect((await call(`/v1/decisions/${id}`)).status).toBe(200);
  expect((await call("/health/live")).status).toBe(200);

  // Space returns: writes succeed again without a restart.
  rmSync(ballast);
  const freed = performance.now();
  let recoveredMs = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 50; i++) {
    const round = await writeRound();
    if (round.every((a) => a.status < 300)) {
      recoveredMs = performance.now() - freed;
      break;
    }
    await Bun.sleep(100);
  }
  expect(recoveredMs).toBeLessThan(5_000);

  arbiter!.proc.kill("SIGTERM");
  expect(await arbiter!.exited).toBe(0);
  // The database reopens what the full disk left, with every acknowledged write exactly once.
  const database = await openDatabase(loadConfig(env));
  let stored: Awaited<ReturnType<typeof storedCopies>>;
  try {
    stored = await storedCopies(database.db, { decisions, events: eventIds });
  } finally {
    await database.close();
  }
  const refusedCount = whileFull.filter((a) => a.status === 503).length;
  console.log(`disk-full: ballast ${Math.round(ballastBytes / 2 ** 20)} MiB, ${refusedCount} writes refused while full`);
  reportFault({
    fault,
    requests: answers.length + 11,
    outage503s: refusedCount,
    serverErrorsOutside: answers.filter((a, i) => a.status >= 500 && (i < fullAt || a.code !== "insufficient_storage")).length,
    acknowledgedWrites: stored.writes,
    lost: stored.lost,
    duplicates: stored.duplicates,
    recovery: { ms: recoveredMs, what: "first decision and telemetry batch stored after the ballast was removed, no restart" },
  });

  // And it serves again from that storage.
  const again = await start(env);
  expect((await fetch(`${again}/v1/decisions/${[...decisions.values()][0]}`, { headers: { "X-API-Key": key } })).status).toBe(200);
  arbiter!.proc.kill("SIGTERM");
  expect(await arbiter!.exited).toBe(0);
}

test.skipIf(Boolean(mountError))(
  "disk full under the embedded DATA_DIR: writes 503 insufficient_storage, reads go on, nothing stored lost, writes back once space returns",
  async () => {
    const { path } = embeddedMount as { path: string };
    // The reserve off: PGlite itself meets the full disk and fails the statement with disk_full.
    await diskFull(
      "disk full under the embedded DATA_DIR, reserve off (a 128 MiB tmpfs filled by a ballast file)",
      { DATA_DIR: join(path, "data"), DATA_DIR_MIN_FREE_MB: "0" },
      path,
    );
  },
  180_000,
);

test.skipIf(Boolean(mountError))(
  "the embedded free-space reserve (DATA_DIR_MIN_FREE_MB, 64 MiB) refuses every write on a full disk, and lets them through again",
  async () => {
    const mounted = mountTmpfs("disk-full-reserve", "128m");
    if ("error" in mounted) throw new Error(mounted.error);
    await diskFull(
      "disk full under the embedded DATA_DIR, default 64 MiB reserve (a 128 MiB tmpfs filled by a ballast file)",
      { DATA_DIR: join(mounted.path, "data") },
      mounted.path,
      { reserve: true },
    );
  },
  180_000,
);

test.skipIf(Boolean(mountError) || !bin)(
  "disk full under a PostgreSQL tablespace: the same, through postgres.js",
  async () => {
    cluster = await startThrowawayPostgres("disk-full");
    const { uid, gid } = statSync(cluster.cluster.dataDir);
    const mounted = mountTmpfs("disk-full-pg", "64m", { uid, gid });
    if ("error" in mounted) throw new Error(mounted.error);
    const admin = postgres(cluster.cluster.url, { max: 1, onnotice: () => {} });
    try {
      await admin.unsafe(`create tablespace small location '${mounted.path}'`);
      await admin.unsafe("create database arbiter tablespace small");
    } finally {
      await admin.end();
    }
    const url = new URL(cluster.cluster.url);
    url.pathname = "/arbiter";
    await diskFull(
      "disk full under a PostgreSQL tablespace (a 64 MiB tmpfs filled by a ballast file; WAL on another disk)",
      { DATABASE_URL: url.toString() },
      mounted.path,
    );
  },
  180_000,
);
