import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import postgres from "postgres";
import type { Config } from "../../src/config";
import { MIGRATIONS_FOLDER } from "../../src/db/client";
import { VERSION } from "../../src/deps";
import { findPgProgram, majorOf, majorOfVersionLine } from "./pg-bin";
import { OpsError, run } from "./process";
import { compareStats, hasApplicationRows, type Query, type TableStats, tableStats } from "./table-stats";

/**
 * Backups of whichever database the configuration points at: `pg_dump` custom format for PostgreSQL,
 * a PGlite data-directory dump for the embedded database. Each backup is a data file plus a JSON
 * manifest; both are written under a temporary name and renamed only when complete, so a crash never
 * leaves something that looks like a finished backup.
 */
export const MANIFEST_FORMAT = "arbiter-backup/1";

export interface BackupManifest {
  format: typeof MANIFEST_FORMAT;
  kind: "postgres" | "pglite";
  /** the data file, beside the manifest */
  file: string;
  created_at: string;
  database: { name: string; server_version: string; server_major: number };
  latest_migration: { tag: string | null; hash: string; created_at: number } | null;
  size_bytes: number;
  sha256: string;
  tables: TableStats;
  tools: Record<string, string>;
  duration_ms: number;
  verified?: { at: string; duration_ms: number };
}

export interface BackupResult {
  manifest: BackupManifest;
  manifestPath: string;
  dataPath: string;
  pruned: string[];
}

// ── helpers ─────────────────────────────────────────────────────────────────────────────────────
const stamp = (date: Date) => date.toISOString().replace(/[-:]/g, "").replace(".", "");

function writeAtomically(path: string, data: string | Uint8Array): void {
  const partial = join(dirname(path), `.${basename(path)}.partial`);
  writeFileSync(partial, data);
  renameSync(partial, path);
}

export async function sha256File(path: string): Promise<string> {
  const hasher = new Bun.CryptoHasher("sha256");
  for await (const chunk of Bun.file(path).stream()) hasher.update(chunk);
  return hasher.digest("hex");
}

function pgliteVersion(): string {
  const entry = Bun.resolveSync("@electric-sql/pglite", import.meta.dir);
  const pkg = JSON.parse(readFileSync(join(dirname(entry), "..", "package.json"), "utf8")) as { version: string };
  return pkg.version;
}

async function latestMigration(query: Query): Promise<BackupManifest["latest_migration"]> {
  let rows: { hash: string; created_at: string | number }[];
  try {
    rows = await query(`select hash, created_at from drizzle.__drizzle_migrations order by created_at desc limit 1`);
  } catch {
    return null; // never migrated
  }
  const last = rows[0];
  if (!last) return null;
  const createdAt = Number(last.created_at);
  const journal = JSON.parse(readFileSync(join(MIGRATIONS_FOLDER, "meta", "_journal.json"), "utf8")) as {
    entries: { tag: string; when: number }[];
  };
  return { tag: journal.entries.find((e) => e.when === createdAt)?.tag ?? null, hash: last.hash, created_at: createdAt };
}

/** pg_dump and friends take the password from the environment, never from argv (visible in `ps`). */
function cliConnection(url: string): { dbname: string; env: Record<string, string> } {
  const parsed = new URL(url);
  const env: Record<string, string> = {};
  if (parsed.password) env.PGPASSWORD = decodeURIComponent(parsed.password);
  parsed.password = "";
  return { dbname: parsed.toString(), env };
}

const databaseNameOf = (url: string) => decodeURIComponent(new URL(url).pathname.slice(1)) || "postgres";

function connect(url: string) {
  return postgres(url, { max: 1, connect_timeout: 5, onnotice: () => {}, connection: { application_name: "arbiter-backup" } });
}

async function reachable<T>(url: string, use: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = connect(url);
  try {
    await sql`select 1`.catch((error: Error) => {
      throw new OpsError(`database unreachable (${redact(url)}): ${error.message}`);
    });
    return await use(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

const redact = (url: string) => {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = "***";
  return parsed.toString();
};

const queryOf =
  (sql: postgres.Sql | postgres.ReservedSql): Query =>
  async <T>(text: string) =>
    (await sql.unsafe(text)) as unknown as T[];

const pgliteQuery =
  (client: PGlite): Query =>
  async <T>(text: string) =>
    (await client.query<T>(text)).rows;

async function serverVersion(query: Query): Promise<{ server_version: string; server_major: number }> {
  const [row] = await query<{ v: string; n: string }>(
    `select current_setting('server_version') as v, current_setting('server_version_num') as n`,
  );
  return { server_version: row?.v ?? "unknown", server_major: majorOf(Number(row?.n)) };
}

// ── backup ──────────────────────────────────────────────────────────────────────────────────────
export interface BackupOptions {
  verify?: boolean;
  keep?: number;
  dir?: string;
  now?: () => Date;
}

export async function createBackup(config: Config, options: BackupOptions = {}): Promise<BackupResult> {
  const dir = resolve(options.dir ?? config.BACKUP_DIR);
  mkdirSync(dir, { recursive: true });
  const now = options.now ?? (() => new Date());
  const started = performance.now();
  const made = config.DATABASE_URL
    ? await dumpPostgres(config, config.DATABASE_URL, dir, now())
    : await dumpPglite(config.DATA_DIR, dir, now());
  const dataPath = join(dir, made.file);
  const manifest: BackupManifest = {
    ...made,
    size_bytes: statSync(dataPath).size,
    sha256: await sha256File(dataPath),
    duration_ms: Math.round(performance.now() - started),
  };
  const manifestPath = join(dir, made.file.replace(/\.(dump|tar\.gz)$/, ".json"));
  writeAtomically(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);

  if (options.verify) {
    const verifyStarted = performance.now();
    try {
      await verifyBackup(config, manifestPath);
    } catch (error) {
      // An unverified backup must never be the one `restore latest` picks.
      rmSync(manifestPath, { force: true });
      rmSync(dataPath, { force: true });
      throw new OpsError(`verification failed, backup discarded: ${(error as Error).message}`);
    }
    manifest.verified = { at: now().toISOString(), duration_ms: Math.round(performance.now() - verifyStarted) };
    writeAtomically(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  }
  const pruned = pruneBackups(dir, manifest, options.keep ?? config.BACKUP_KEEP);
  if (config.BACKUP_METRICS_FILE) writeAtomically(config.BACKUP_METRICS_FILE, backupMetrics(manifest, now()));
  return { manifest, manifestPath, dataPath, pruned };
}

/** What the ArbiterBackupTooOld alert reads, in the Prometheus text format. */
function backupMetrics(manifest: BackupManifest, at: Date): string {
  const labels = `{database="${manifest.database.name.replace(/["\\\n]/g, "_")}",kind="${manifest.kind}"}`;
  const lines = [
    ["arbiter_backup_last_success_timestamp_seconds", "gauge", "Unix time of the last successful backup", at.getTime() / 1000],
    ["arbiter_backup_size_bytes", "gauge", "Size of the last successful backup", manifest.size_bytes],
    ["arbiter_backup_duration_seconds", "gauge", "Time the last successful backup took", manifest.duration_ms / 1000],
    ["arbiter_backup_verified", "gauge", "1 when the last backup was verified by a scratch restore", manifest.verified ? 1 : 0],
  ] as const;
  return lines.map(([name, type, help, value]) => `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name}${labels} ${value}\n`).join("");
}

type Dumped = Omit<BackupManifest, "size_bytes" | "sha256" | "duration_ms">;

async function dumpPostgres(config: Config, url: string, dir: string, at: Date): Promise<Dumped> {
  return reachable(url, async (sql) => {
    const version = await serverVersion(queryOf(sql));
    const pgDump = await findPgProgram("pg_dump", version.server_major, config.PG_BIN_DIR);
    const name = databaseNameOf(url);
    const file = `arbiter-${name}-${stamp(at)}.dump`;
    const partial = join(dir, `.${file}.partial`);
    // Counts and checksums must describe exactly what pg_dump writes, even while the app keeps
    // writing: both read one exported snapshot of a repeatable-read transaction.
    const session = await sql.reserve();
    try {
      await session.unsafe("begin isolation level repeatable read read only");
      const [snapshot] = await session.unsafe<{ id: string }[]>("select pg_export_snapshot() as id");
      const query = queryOf(session);
      const tables = await tableStats(query);
      const migration = await latestMigration(query);
      const { dbname, env } = cliConnection(url);
      try {
        await run(
          pgDump.path,
          ["--format=custom", "--no-password", `--snapshot=${snapshot?.id}`, `--file=${partial}`, `--dbname=${dbname}`],
          { env },
        );
      } catch (error) {
        rmSync(partial, { force: true });
        throw error;
      }
      await session.unsafe("commit");
      renameSync(partial, join(dir, file));
      return {
        format: MANIFEST_FORMAT,
        kind: "postgres" as const,
        file,
        created_at: at.toISOString(),
        database: { name, ...version },
        latest_migration: migration,
        tables,
        tools: { arbiter: VERSION, pg_dump: pgDump.version, bun: Bun.version },
      };
    } finally {
      session.release();
    }
  });
}

const pgdataOf = (dataDir: string) => join(resolve(dataDir), "pgdata");

async function dumpPglite(dataDir: string, dir: string, at: Date): Promise<Dumped> {
  const pgdata = pgdataOf(dataDir);
  if (!existsSync(join(pgdata, "PG_VERSION"))) throw new OpsError(`no embedded database at ${pgdata} (is DATA_DIR right?)`);
  const client = await PGlite.create(pgdata);
  try {
    const query = pgliteQuery(client);
    const version = await serverVersion(query);
    const tables = await tableStats(query);
    const migration = await latestMigration(query);
    const file = `arbiter-pglite-${stamp(at)}.tar.gz`;
    const archive = await client.dumpDataDir("gzip");
    writeAtomically(join(dir, file), new Uint8Array(await archive.arrayBuffer()));
    return {
      format: MANIFEST_FORMAT,
      kind: "pglite" as const,
      file,
      created_at: at.toISOString(),
      database: { name: "pglite", ...version },
      latest_migration: migration,
      tables,
      tools: { arbiter: VERSION, pglite: pgliteVersion(), bun: Bun.version },
    };
  } finally {
    await client.close();
  }
}

// ── reading and checking a backup ───────────────────────────────────────────────────────────────
export interface CheckedBackup {
  manifest: BackupManifest;
  dataPath: string;
}

/** Loads a manifest (or the newest in `dir` for "latest") and checks the data file's size and SHA-256. */
async function loadCheckedBackup(reference: string, dir: string): Promise<CheckedBackup> {
  const manifestPath =
    reference === "latest"
      ? newestManifest(dir)
      : reference.endsWith(".json")
        ? reference
        : reference.replace(/\.(dump|tar\.gz)$/, ".json");
  if (!existsSync(manifestPath)) throw new OpsError(`no such backup manifest: ${manifestPath}`);
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
  } catch (error) {
    throw new OpsError(`unreadable manifest ${manifestPath}: ${(error as Error).message}`);
  }
  if (manifest?.format !== MANIFEST_FORMAT || (manifest.kind !== "postgres" && manifest.kind !== "pglite")) {
    throw new OpsError(`${manifestPath} is not an Arbiter backup manifest`);
  }
  const dataPath = join(dirname(manifestPath), basename(manifest.file));
  if (!existsSync(dataPath)) throw new OpsError(`backup file missing: ${dataPath}`);
  const size = statSync(dataPath).size;
  const digest = await sha256File(dataPath);
  if (size !== manifest.size_bytes || digest !== manifest.sha256) {
    throw new OpsError(
      `checksum mismatch for ${dataPath}: the file is corrupt or was changed (sha256 ${digest}, manifest says ${manifest.sha256}); nothing was restored`,
    );
  }
  return { manifest, dataPath };
}

function listManifests(dir: string): { path: string; manifest: BackupManifest }[] {
  if (!existsSync(dir)) return [];
  const found: { path: string; manifest: BackupManifest }[] = [];
  for (const name of readdirSync(dir)) {
    if (!name.startsWith("arbiter-") || !name.endsWith(".json")) continue;
    try {
      const manifest = JSON.parse(readFileSync(join(dir, name), "utf8")) as BackupManifest;
      if (manifest.format === MANIFEST_FORMAT) found.push({ path: join(dir, name), manifest });
    } catch {
      // not ours, or half-written by someone else: leave it alone
    }
  }
  return found.sort((a, b) => b.manifest.created_at.localeCompare(a.manifest.created_at));
}

function newestManifest(dir: string): string {
  const newest = listManifests(resolve(dir))[0];
  if (!newest) throw new OpsError(`no backups in ${resolve(dir)}`);
  return newest.path;
}

/** Keeps the newest `keep` backups of the same database and deletes the rest; returns what it removed. */
function pruneBackups(dir: string, of: Pick<BackupManifest, "kind" | "database">, keep: number): string[] {
  const same = listManifests(dir).filter((m) => m.manifest.kind === of.kind && m.manifest.database.name === of.database.name);
  const removed: string[] = [];
  for (const old of same.slice(keep)) {
    const dataPath = join(dir, basename(old.manifest.file));
    rmSync(dataPath, { force: true });
    rmSync(old.path, { force: true });
    removed.push(dataPath);
  }
  return removed;
}

function assertMatches(expected: TableStats, actual: TableStats, what: string): void {
  const problems = compareStats(expected, actual);
  if (problems.length) throw new OpsError(`${what} does not match the manifest: ${problems.join("; ")}`);
}

// ── verify: restore into a scratch database and compare ────────────────────────────────────────
export async function verifyBackup(config: Config, manifestPath: string): Promise<void> {
  const { manifest, dataPath } = await loadCheckedBackup(manifestPath, config.BACKUP_DIR);
  if (manifest.kind === "pglite") {
    const scratch = await PGlite.create({ loadDataDir: new Blob([readFileSync(dataPath)]) });
    try {
      assertMatches(manifest.tables, await tableStats(pgliteQuery(scratch)), "the verification restore");
    } finally {
      await scratch.close();
    }
    return;
  }
  const url = requirePostgres(config);
  const scratchName = `arbiter_verify_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  await reachable(url, async (sql) => {
    await sql.unsafe(`create database "${scratchName}"`).catch((error: Error) => {
      throw new OpsError(`--verify needs to create a scratch database (CREATEDB): ${error.message}`);
    });
    try {
      const scratchUrl = new URL(url);
      scratchUrl.pathname = `/${scratchName}`;
      const pgRestore = await findPgProgram("pg_restore", toolMajor(manifest), config.PG_BIN_DIR);
      const { dbname, env } = cliConnection(scratchUrl.toString());
      await run(pgRestore.path, ["--no-owner", "--no-privileges", "--exit-on-error", "--no-password", `--dbname=${dbname}`, dataPath], {
        env,
      });
      await reachable(scratchUrl.toString(), async (scratch) => {
        assertMatches(manifest.tables, await tableStats(queryOf(scratch)), "the verification restore");
      });
    } finally {
      await sql.unsafe(`drop database if exists "${scratchName}" with (force)`);
    }
  });
}

function requirePostgres(config: Config): string {
  if (!config.DATABASE_URL) throw new OpsError(`this is a PostgreSQL backup; set DATABASE_URL to the server to restore into`);
  return config.DATABASE_URL;
}

/** pg_restore must be at least as new as the pg_dump that wrote the archive. */
const toolMajor = (manifest: BackupManifest) => majorOfVersionLine(manifest.tools.pg_dump ?? "") ?? manifest.database.server_major;

// ── restore ─────────────────────────────────────────────────────────────────────────────────────
export interface RestoreOptions {
  force?: boolean;
}

export interface RestoreResult {
  manifest: BackupManifest;
  duration_ms: number;
  /** embedded only: where the replaced data directory was moved */
  replacedDataDir?: string;
}

/**
 * Restores a backup into the configured database: checks the checksum before touching anything,
 * refuses a target holding rows unless forced, and compares counts and checksums afterwards.
 */
export async function restoreBackup(config: Config, reference: string, options: RestoreOptions = {}): Promise<RestoreResult> {
  const started = performance.now();
  const { manifest, dataPath } = await loadCheckedBackup(reference, config.BACKUP_DIR);
  if (manifest.kind === "pglite") {
    if (config.DATABASE_URL) throw new OpsError(`this is an embedded (PGlite) backup; unset DATABASE_URL to restore it into DATA_DIR`);
    const replacedDataDir = await restorePglite(config.DATA_DIR, manifest, dataPath, options);
    return { manifest, duration_ms: Math.round(performance.now() - started), replacedDataDir };
  }
  const url = requirePostgres(config);
  await reachable(url, async (sql) => {
    const query = queryOf(sql);
    const target = await serverVersion(query);
    if (target.server_major < manifest.database.server_major) {
      throw new OpsError(
        `wrong server version: the backup is from PostgreSQL ${manifest.database.server_version}, the target runs ${target.server_version}`,
      );
    }
    if (!options.force && (await hasApplicationRows(query))) {
      throw new OpsError(`the target database ${databaseNameOf(url)} already holds rows; pass --force to replace them`);
    }
    const pgRestore = await findPgProgram("pg_restore", Math.max(toolMajor(manifest), target.server_major), config.PG_BIN_DIR);
    const { dbname, env } = cliConnection(url);
    // One transaction: a failed restore leaves the target exactly as it was.
    await run(
      pgRestore.path,
      ["--clean", "--if-exists", "--no-owner", "--single-transaction", "--exit-on-error", "--no-password", `--dbname=${dbname}`, dataPath],
      { env },
    );
    assertMatches(manifest.tables, await tableStats(query), "the restored database");
  });
  return { manifest, duration_ms: Math.round(performance.now() - started) };
}

async function restorePglite(
  dataDir: string,
  manifest: BackupManifest,
  dataPath: string,
  options: RestoreOptions,
): Promise<string | undefined> {
  const pgdata = pgdataOf(dataDir);
  const occupied = existsSync(join(pgdata, "PG_VERSION"));
  if (occupied && !options.force) {
    const current = await PGlite.create(pgdata);
    try {
      if (await hasApplicationRows(pgliteQuery(current))) {
        throw new OpsError(`the embedded database at ${pgdata} already holds rows; pass --force to replace it`);
      }
    } finally {
      await current.close();
    }
  }
  // Load beside the live directory and swap only once the copy checks out.
  const incoming = `${pgdata}.restoring-${stamp(new Date())}`;
  mkdirSync(dirname(pgdata), { recursive: true });
  try {
    const restored = await PGlite.create(incoming, { loadDataDir: new Blob([readFileSync(dataPath)]) }).catch((error: Error) => {
      throw new OpsError(
        `cannot load the backup into PGlite ${pgliteVersion()} (backup made with PostgreSQL ${manifest.database.server_version}): ${error.message}`,
      );
    });
    try {
      const version = await serverVersion(pgliteQuery(restored));
      if (version.server_major !== manifest.database.server_major) {
        throw new OpsError(
          `wrong server version: the backup is PostgreSQL ${manifest.database.server_version}, this PGlite runs ${version.server_version}`,
        );
      }
      assertMatches(manifest.tables, await tableStats(pgliteQuery(restored)), "the restored database");
    } finally {
      await restored.close();
    }
  } catch (error) {
    rmSync(incoming, { recursive: true, force: true });
    throw error;
  }
  let replaced: string | undefined;
  if (existsSync(pgdata)) {
    replaced = `${pgdata}.replaced-${stamp(new Date())}`;
    renameSync(pgdata, replaced);
  }
  renameSync(incoming, pgdata);
  return replaced;
}
