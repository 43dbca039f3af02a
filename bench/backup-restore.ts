/**
 * Backup, verify and restore times for a database with ROWS telemetry_events rows (default 1,000,000),
 * on a scratch database of the real PostgreSQL in DATABASE_URL. A 10× smaller run in the same process
 * is the baseline, so the ratio shows how the times scale with size.
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres bun run bench/backup-restore.ts
 * Writes bench/results/backup-restore.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { createBackup, restoreBackup } from "../scripts/lib/backup";
import { loadConfig } from "../src/config";
import { openPostgres } from "../src/db/client";
import { createScratchDatabase } from "../test/helpers/db";

const serverUrl = process.env.DATABASE_URL;
if (!serverUrl) {
  console.log("backup-restore: skipped: set DATABASE_URL to a PostgreSQL server where scratch databases may be created");
  process.exit(0);
}
const rows = Number(process.env.ROWS ?? 1_000_000);

async function measure(count: number) {
  const source = await createScratchDatabase(serverUrl as string);
  const target = await createScratchDatabase(serverUrl as string);
  const dir = mkdtempSync(join(tmpdir(), "arbiter-bench-backup-"));
  try {
    const handle = await openPostgres({ url: source.url, poolMax: 2 });
    await handle.migrate();
    await handle.close();
    const sql = postgres(source.url, { max: 1, onnotice: () => {} });
    let started = performance.now();
    // Rows shaped like real ingestion: a few types and sources, JSON attributes, a minute apart.
    await sql.unsafe(`
      insert into telemetry_events (id, type, source, severity, occurred_at, attributes, trace_id, created_at)
      select 'evt_' || g, 'agent.' || (array['step','tool','error','done'])[1 + g % 4], 'agent-' || (g % 50),
             (array['debug','info','warn','error','critical'])[1 + g % 5],
             timestamptz '2026-01-01' + make_interval(secs => g), jsonb_build_object('n', g, 'ok', g % 2 = 0, 'latency_ms', g % 997),
             md5(g::text), timestamptz '2026-01-01' + make_interval(secs => g)
        from generate_series(1, ${count}) g`);
    await sql.unsafe("analyze telemetry_events");
    const [size] = await sql<{ bytes: string }[]>`select pg_database_size(current_database())::text as bytes`;
    await sql.end();
    const generateMs = performance.now() - started;

    const config = loadConfig({ DATABASE_URL: source.url, BACKUP_DIR: dir, BACKUP_KEEP: "5" });
    started = performance.now();
    const backup = await createBackup(config);
    const backupMs = performance.now() - started;
    const verified = await createBackup(config, { verify: true });
    const verifyMs = (verified.manifest.verified?.duration_ms ?? Number.NaN) as number;
    const restoreConfig = loadConfig({ DATABASE_URL: target.url, BACKUP_DIR: dir });
    started = performance.now();
    await restoreBackup(restoreConfig, backup.manifestPath);
    const restoreMs = performance.now() - started;
    return {
      telemetry_rows: count,
      database_bytes: Number(size?.bytes),
      backup_bytes: backup.manifest.size_bytes,
      generate_s: round(generateMs / 1000),
      backup_s: round(backupMs / 1000),
      verify_s: round(verifyMs / 1000),
      restore_s: round(restoreMs / 1000),
    };
  } finally {
    await source.drop();
    await target.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const round = (n: number) => Math.round(n * 100) / 100;

const baseline = await measure(Math.round(rows / 10));
const full = await measure(rows);
const result = {
  name: "backup-restore",
  measured_at: new Date().toISOString(),
  server: (await (async () => {
    const sql = postgres(serverUrl, { max: 1 });
    const [row] = await sql<{ v: string }[]>`select current_setting('server_version') as v`;
    await sql.end();
    return row?.v;
  })()) as string,
  baseline,
  full,
  ratio: {
    backup: round(full.backup_s / baseline.backup_s),
    verify: round(full.verify_s / baseline.verify_s),
    restore: round(full.restore_s / baseline.restore_s),
  },
};
mkdirSync(join(import.meta.dir, "results"), { recursive: true });
writeFileSync(join(import.meta.dir, "results", "backup-restore.json"), `${JSON.stringify(result, null, 2)}\n`);
console.log(JSON.stringify(result, null, 2));
