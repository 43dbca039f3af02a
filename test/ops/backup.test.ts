import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BackupManifest, createBackup, restoreBackup, sha256File, verifyBackup } from "../../scripts/lib/backup";
import { type Config, loadConfig } from "../../src/config";
import { type DatabaseHandle, openPglite, openPostgres } from "../../src/db/client";
import { createScratchDatabase, usingRealPostgres } from "../helpers/db";
import { readEveryTable, seedEveryTable, wipeEveryTable } from "./fixtures";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

// Spawns processes or opens databases on disk; the 5 s default is too tight on a busy machine.
const SLOW = 60_000;

/**
 * Backup → wipe → restore on the tier this run targets: a scratch database on the real server, or an
 * embedded PGlite data directory. PGlite allows one opener per directory, so each step opens and
 * closes it, as an operator stops the embedded server before a backup or restore.
 */
const work = mkdtempSync(join(tmpdir(), "arbiter-backup-"));
let env: Record<string, string>;
let config: Config;
let dropScratch = async () => {};

async function withDatabase<T>(use: (handle: DatabaseHandle) => Promise<T>): Promise<T> {
  const handle = config.DATABASE_URL
    ? await openPostgres({ url: config.DATABASE_URL, poolMax: 2 })
    : await openPglite({ dataDir: config.DATA_DIR });
  try {
    return await use(handle);
  } finally {
    await handle.close();
  }
}

beforeAll(async () => {
  env = {
    BACKUP_DIR: join(work, "backups"),
    DATA_DIR: join(work, "data"),
    BACKUP_METRICS_FILE: join(work, "backup.prom"),
    LOG_LEVEL: "silent",
  };
  if (usingRealPostgres()) {
    const scratch = await createScratchDatabase(process.env.DATABASE_URL as string);
    env.DATABASE_URL = scratch.url;
    dropScratch = scratch.drop;
  }
  config = loadConfig(env);
  await withDatabase(async (handle) => {
    await handle.migrate();
    await seedEveryTable(handle.db);
  });
}, SLOW);
afterAll(async () => {
  await dropScratch();
  rmSync(work, { recursive: true, force: true });
}, SLOW);

const manifestOf = (path: string) => JSON.parse(readFileSync(path, "utf8")) as BackupManifest;

describe(`backups (${usingRealPostgres() ? "PostgreSQL" : "embedded PGlite"})`, () => {
  let original: Record<string, unknown[]>;
  let manifestPath: string;

  test(
    "backup --verify writes a complete, checked backup with its manifest",
    async () => {
      original = await withDatabase((handle) => readEveryTable(handle.db));
      const result = await createBackup(config, { verify: true });
      manifestPath = result.manifestPath;
      const manifest = manifestOf(manifestPath);
      expect(manifest.kind).toBe(usingRealPostgres() ? "postgres" : "pglite");
      expect(manifest.sha256).toBe(await sha256File(result.dataPath));
      expect(manifest.size_bytes).toBeGreaterThan(0);
      expect(manifest.tables.telemetry_events?.rows).toBe(25);
      expect(manifest.tables.decisions?.rows).toBe(1);
      expect(manifest.tables.decisions?.checksum).toMatch(/^[0-9a-f]{32}$/);
      expect(manifest.latest_migration?.tag).toMatch(/^\d{4}_/);
      expect(manifest.database.server_major).toBeGreaterThanOrEqual(15);
      expect(Object.keys(manifest.tools)).toContain(usingRealPostgres() ? "pg_dump" : "pglite");
      expect(manifest.verified?.duration_ms).toBeGreaterThanOrEqual(0);
      // The textfile the backup-age alert reads.
      const metrics = readFileSync(config.BACKUP_METRICS_FILE as string, "utf8");
      const stampLine = metrics.split("\n").find((line) => line.startsWith("arbiter_backup_last_success_timestamp_seconds{"));
      expect(Number(stampLine?.split(" ")[1])).toBeCloseTo(Date.now() / 1000, -2);
      expect(metrics).toContain("arbiter_backup_verified{");
      // Nothing half-written is left behind.
      expect(readdirSync(config.BACKUP_DIR).filter((f) => f.includes(".partial"))).toEqual([]);
    },
    SLOW,
  );

  test(
    "backup → wipe → restore gives back identical data",
    async () => {
      await withDatabase((handle) => wipeEveryTable(handle.db));
      expect((await withDatabase((handle) => readEveryTable(handle.db))).decisions).toEqual([]);
      const restored = await restoreBackup(config, manifestPath);
      expect(restored.manifest.file).toBe(manifestOf(manifestPath).file);
      expect(await withDatabase((handle) => readEveryTable(handle.db))).toEqual(original);
    },
    SLOW,
  );

  test(
    "restore refuses a target that holds rows unless forced, then replaces them",
    async () => {
      await withDatabase((handle) => seedEveryTable(handle.db, new Date("2026-02-02T00:00:00Z"), "later"));
      await expect(restoreBackup(config, manifestPath)).rejects.toThrow(/already holds rows; pass --force/);
      await restoreBackup(config, manifestPath, { force: true });
      expect(await withDatabase((handle) => readEveryTable(handle.db))).toEqual(original);
    },
    SLOW,
  );

  test(
    "a corrupted backup is refused before anything is touched",
    async () => {
      const manifest = manifestOf(manifestPath);
      const corruptDir = join(work, "corrupt");
      rmSync(corruptDir, { recursive: true, force: true });
      mkdirSync(corruptDir);
      const corruptManifest = join(corruptDir, "arbiter-corrupt.json");
      writeFileSync(corruptManifest, JSON.stringify(manifest));
      const data = readFileSync(join(config.BACKUP_DIR, manifest.file));
      data[Math.floor(data.length / 2)] = (data[Math.floor(data.length / 2)] ?? 0) ^ 0xff;
      writeFileSync(join(corruptDir, manifest.file), data);

      await withDatabase((handle) => seedEveryTable(handle.db, new Date("2026-03-03T00:00:00Z"), "current"));
      const before = await withDatabase((handle) => readEveryTable(handle.db));
      await expect(restoreBackup(config, corruptManifest, { force: true })).rejects.toThrow(/checksum mismatch/);
      await expect(verifyBackup(config, corruptManifest)).rejects.toThrow(/checksum mismatch/);
      expect(await withDatabase((handle) => readEveryTable(handle.db))).toEqual(before);
    },
    SLOW,
  );

  test(
    "missing files and a wrong server version are clear errors",
    async () => {
      await expect(restoreBackup(config, join(work, "nope.json"))).rejects.toThrow(/no such backup manifest/);
      const manifest = manifestOf(manifestPath);
      const orphanDir = join(work, "orphan");
      mkdirSync(orphanDir, { recursive: true });
      writeFileSync(join(orphanDir, "arbiter-orphan.json"), JSON.stringify(manifest));
      await expect(restoreBackup(config, join(orphanDir, "arbiter-orphan.json"))).rejects.toThrow(/backup file missing/);

      copyFileSync(join(config.BACKUP_DIR, manifest.file), join(orphanDir, manifest.file));
      const future = { ...manifest, database: { ...manifest.database, server_major: 99, server_version: "99.0" } };
      writeFileSync(join(orphanDir, "arbiter-orphan.json"), JSON.stringify(future));
      await expect(restoreBackup(config, join(orphanDir, "arbiter-orphan.json"), { force: true })).rejects.toThrow(/wrong server version/);

      // An intact file whose restore does not reproduce the manifest's tables fails verification.
      const edited = { ...manifest, tables: { ...manifest.tables, decisions: { rows: 2, checksum: "0".repeat(32) } } };
      writeFileSync(join(orphanDir, "arbiter-orphan.json"), JSON.stringify(edited));
      await expect(verifyBackup(config, join(orphanDir, "arbiter-orphan.json"))).rejects.toThrow(/decisions: 1 rows, expected 2/);
    },
    SLOW,
  );

  test(
    "a backup of the other kind, or of no known kind, is refused with what to change",
    async () => {
      const manifest = manifestOf(manifestPath);
      const dir = join(work, "other-kind");
      mkdirSync(dir, { recursive: true });
      copyFileSync(join(config.BACKUP_DIR, manifest.file), join(dir, manifest.file));
      const path = join(dir, "arbiter-other.json");
      const other = manifest.kind === "postgres" ? "pglite" : "postgres";
      writeFileSync(path, JSON.stringify({ ...manifest, kind: other }));
      await expect(restoreBackup(config, path, { force: true })).rejects.toThrow(
        other === "pglite" ? /unset DATABASE_URL/ : /set DATABASE_URL/,
      );
      writeFileSync(path, JSON.stringify({ ...manifest, kind: "mysql" }));
      await expect(restoreBackup(config, path, { force: true })).rejects.toThrow(/is not an Arbiter backup manifest/);
    },
    SLOW,
  );

  test(
    "retention keeps the newest N backups of the database",
    async () => {
      const dir = join(work, "retention");
      const times = ["2026-04-01T00:00:00Z", "2026-04-02T00:00:00Z", "2026-04-03T00:00:00Z"].map((t) => new Date(t));
      const made: string[] = [];
      for (const at of times) made.push((await createBackup(config, { dir, keep: 2, now: () => at })).manifestPath);
      expect(existsSync(made[0] as string)).toBe(false);
      expect(existsSync(made[1] as string)).toBe(true);
      expect(existsSync(made[2] as string)).toBe(true);
      expect(readdirSync(dir).length).toBe(4); // two manifests, two data files
    },
    SLOW,
  );
});

describe("backup and restore commands", () => {
  const script = (name: string) => join(import.meta.dir, "../../scripts", `${name}.ts`);
  async function runScript(name: string, args: string[], overrides: Record<string, string> = {}) {
    const child = Bun.spawn(["bun", "run", script(name), ...args], {
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env, ...overrides },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    return { stdout, stderr, code };
  }

  test(
    "restore exits non-zero with one line for a corrupted backup",
    async () => {
      const result = await runScript("restore", [join(work, "corrupt", "arbiter-corrupt.json"), "--force"]);
      expect(result.code).toBe(1);
      expect(result.stderr.trim()).toMatch(/^restore: checksum mismatch .*nothing was restored$/);
    },
    SLOW,
  );

  test(
    "backup exits non-zero when the database is unreachable",
    async () => {
      const result = await runScript("backup", [], { DATABASE_URL: "postgres://nobody:secret@127.0.0.1:1/none" });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/^backup: database unreachable/);
      expect(result.stderr).not.toContain("secret");
    },
    SLOW,
  );

  test(
    "usage mistakes exit 2",
    async () => {
      expect((await runScript("restore", [])).code).toBe(2);
      expect((await runScript("backup", ["--keep", "zero"])).code).toBe(2);
    },
    SLOW,
  );

  test(
    "bun run restore latest restores the newest backup",
    async () => {
      const result = await runScript("restore", ["latest", "--force"]);
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/counts and checksums match/);
    },
    SLOW,
  );
});
