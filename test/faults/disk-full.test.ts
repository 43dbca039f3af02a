import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { closeSync, openSync, rmSync, statfsSync, writeSync } from "node:fs";
import { join } from "node:path";
import { generateApiKey } from "../../src/auth/key-format";
import { loadConfig } from "../../src/config";
import { openDatabase } from "../../src/deps";
import { type ArbiterProcess, closedPort, spawnArbiter, tempDir } from "../foundation/support";
import { reportFault, storedCopies } from "./summary";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * The disk under the embedded data directory fills up while Arbiter runs: its DATA_DIR is on a
 * tmpfs of this file's own (128 MiB), which a ballast file fills to the last block. Writes must get
 * a clear 503 `insufficient_storage` JSON error (never a 500, never a crash), reads go on, nothing
 * already stored is lost or corrupted, and writes succeed again by themselves once the ballast is
 * removed; after a restart PGlite reopens the directory and every acknowledged write is there once.
 * Mounting a tmpfs needs root (CAP_SYS_ADMIN); without it the test skips and says why.
 */
const mountPoint = tempDir("disk-full");
const mountError = (() => {
  if (process.platform !== "linux") return "mounting a tmpfs needs Linux";
  if (process.getuid?.() !== 0) return "mounting a tmpfs needs root (CAP_SYS_ADMIN); run this file as root or in CI";
  const mount = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=128m,mode=0755", "tmpfs", mountPoint], { stderr: "pipe" });
  return mount.exitCode === 0 ? undefined : `mount -t tmpfs failed: ${mount.stderr.toString().trim()}`;
})();
if (mountError) console.warn(`disk-full.test: skipped: ${mountError}`);

const key = generateApiKey();
const dataDir = join(mountPoint, "data");
const ballast = join(mountPoint, "ballast");
const env = { DATA_DIR: dataDir, ARBITER_API_KEYS: `admin:${key}` };
let arbiter: ArbiterProcess | undefined;

afterAll(async () => {
  if (arbiter && arbiter.proc.exitCode === null) {
    arbiter.proc.kill("SIGKILL");
    await arbiter.exited;
  }
  if (!mountError) Bun.spawnSync(["umount", mountPoint]);
  rmSync(mountPoint, { recursive: true, force: true });
});

async function start(): Promise<string> {
  arbiter = spawnArbiter({ ...env, PORT: String(await closedPort()) });
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

test.skipIf(Boolean(mountError))(
  "disk full under DATA_DIR: writes 503 insufficient_storage, reads go on, nothing stored lost, writes back once space returns",
  async () => {
    const url = await start();
    const call = async (path: string, json?: unknown): Promise<Answer> => {
      const res = await fetch(url + path, {
        method: json === undefined ? "GET" : "POST",
        headers: { "X-API-Key": key, "Content-Type": "application/json" },
        ...(json === undefined ? {} : { body: JSON.stringify(json) }),
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

    // Writes until the database meets the full disk (free space inside its existing pages goes first).
    const fullAt = answers.length;
    let refused: Answer | undefined;
    for (let i = 0; i < 200 && !refused; i++) refused = (await writeRound()).find((a) => a.status === 503);
    expect(refused).toBeDefined();
    expect(refused!.code).toBe("insufficient_storage");
    expect(refused!.retryAfter).toBe("30");
    // More writes while full: every one refused the same way, none a 500.
    for (let i = 0; i < 5; i++) await writeRound();
    const whileFull = answers.slice(fullAt);
    for (const a of whileFull) {
      expect([201, 202, 503]).toContain(a.status);
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
    // PGlite reopens what the full disk left, with every acknowledged write exactly once.
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
      fault: "disk full under the embedded DATA_DIR (a 128 MiB tmpfs filled by a ballast file)",
      requests: answers.length + 11,
      outage503s: refusedCount,
      serverErrorsOutside: answers.filter((a, i) => a.status >= 500 && (i < fullAt || a.code !== "insufficient_storage")).length,
      acknowledgedWrites: stored.writes,
      lost: stored.lost,
      duplicates: stored.duplicates,
      recovery: { ms: recoveredMs, what: "first decision and telemetry batch stored after the ballast was removed, no restart" },
    });

    // And it serves again from that directory.
    const again = await start();
    expect((await fetch(`${again}/v1/decisions/${[...decisions.values()][0]}`, { headers: { "X-API-Key": key } })).status).toBe(200);
    arbiter!.proc.kill("SIGTERM");
    expect(await arbiter!.exited).toBe(0);
  },
  180_000,
);
