import { join } from "node:path";
import postgres from "postgres";
import { type Cluster, clusterAt, createWorkspace, initCluster, type Workspace } from "./cluster";
import { findServerBinDir } from "./pg-bin";
import { OpsError } from "./process";

/**
 * Point-in-time recovery drill on a throwaway cluster: WAL archiving on, an online base backup while
 * rows are written, then two recoveries from base backup + archive:
 *  1. to a target time — exactly the transactions committed by then must be back (RTO is measured here);
 *  2. after a crash of the primary that loses its un-archived WAL — the acknowledged rows that did not
 *     come back are the data at risk (RPO), bounded by archive_timeout.
 */
export interface DrillOptions {
  /** seconds of writes after the target time, across which the crash happens */
  writeSeconds: number;
  /** archive_timeout of the drill primary: the RPO bound being tested */
  archiveTimeoutSeconds: number;
  /** pause between committed writes */
  writeIntervalMs: number;
  log?: (line: string) => void;
  binDir?: string;
}

export interface DrillReport {
  server_version: string;
  archive_timeout_s: number;
  rows_written: number;
  target_time: string;
  pitr: { expected_rows: number; recovered_rows: number; exact: boolean; rto_s: number };
  crash: { acknowledged_rows: number; recovered_rows: number; lost_rows: number; rpo_s: number; rto_s: number; prefix_intact: boolean };
  rpo_s: number;
  rto_s: number;
}

export const RPO_OBJECTIVE_S = 5 * 60;
export const RTO_OBJECTIVE_S = 30 * 60;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const connect = (cluster: Cluster) => postgres(cluster.url, { max: 1, onnotice: () => {}, connect_timeout: 10 });

async function waitUntilPromoted(cluster: Cluster): Promise<void> {
  const deadline = Date.now() + 300_000;
  while (Date.now() < deadline) {
    const sql = connect(cluster);
    try {
      const [row] = await sql<{ recovering: boolean }[]>`select pg_is_in_recovery() as recovering`;
      if (row && !row.recovering) return;
    } catch {
      // still starting
    } finally {
      await sql.end({ timeout: 1 });
    }
    await sleep(100);
  }
  throw new OpsError("the restored cluster did not finish recovery within 5 minutes");
}

async function recover(ws: Workspace, base: string, name: string, archive: string, target?: string) {
  const started = performance.now();
  const dataDir = join(ws.root, name);
  await ws.exec("/bin/cp", ["-a", base, dataDir]);
  const settings: Record<string, string | number> = {
    restore_command: `cp ${archive}/%f %p`,
    archive_mode: "off",
    track_commit_timestamp: "on",
  };
  if (target) Object.assign(settings, { recovery_target_time: target, recovery_target_action: "promote" });
  const cluster = await clusterAt(ws, dataDir, settings);
  ws.writeFile(join(dataDir, "recovery.signal"), "");
  await cluster.start();
  await waitUntilPromoted(cluster);
  return { cluster, started };
}

export async function runDrill(options: DrillOptions): Promise<DrillReport | { skipped: string }> {
  const log = options.log ?? (() => {});
  const bin = await findServerBinDir(options.binDir);
  if (!bin) return { skipped: "no PostgreSQL server binaries (initdb, pg_ctl, postgres, pg_basebackup) found; set PG_BIN_DIR" };
  const ws = await createWorkspace(bin);
  const clusters: Cluster[] = [];
  try {
    const archive = ws.dir("archive");
    const primaryDir = await initCluster(ws, "primary");
    const primary = await clusterAt(ws, primaryDir, {
      wal_level: "replica",
      archive_mode: "on",
      archive_command: `test ! -f ${archive}/%f && cp %p ${archive}/%f`,
      archive_timeout: options.archiveTimeoutSeconds,
      track_commit_timestamp: "on",
      fsync: "on",
    });
    clusters.push(primary);
    await primary.start();
    const sql = connect(primary);
    const [version] = await sql<{ v: string }[]>`select current_setting('server_version') as v`;
    log(`drill: primary PostgreSQL ${version?.v} on port ${primary.port}, archiving to ${archive}`);
    await sql`create table drill_events (id bigserial primary key, payload text not null)`;

    // Every acknowledged commit, as the client saw it.
    const acknowledged: { id: number; at: number }[] = [];
    let writing = true;
    const writer = (async () => {
      const w = connect(primary);
      try {
        while (writing) {
          const [row] = await w<{ id: string }[]>`insert into drill_events (payload) values (md5(random()::text)) returning id`;
          acknowledged.push({ id: Number(row?.id), at: Date.now() });
          await sleep(options.writeIntervalMs);
        }
      } catch {
        // the primary was crashed under us: that is the point
      } finally {
        await w.end({ timeout: 1 }).catch(() => {});
      }
    })();

    await sleep(500);
    const base = join(ws.root, "base");
    await ws.exec("pg_basebackup", [
      "-h",
      "127.0.0.1",
      "-p",
      String(primary.port),
      "-U",
      "postgres",
      "-D",
      base,
      "-X",
      "stream",
      "-c",
      "fast",
    ]);
    log("drill: online base backup taken while writing");
    await sleep(1000);
    const [picked] = await sql<
      { t: string }[]
    >`select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' as t`;
    const target = picked?.t as string;
    await sleep(1000);
    // Make sure the WAL covering the target is archived before anything is lost.
    const [switched] = await sql<{ wal: string }[]>`select pg_walfile_name(pg_switch_wal()) as wal`;
    for (let i = 0; i < 600; i++) {
      const [stat] = await sql<{ last: string | null }[]>`select last_archived_wal as last from pg_stat_archiver`;
      if (stat?.last && stat.last >= (switched?.wal ?? "")) break;
      await sleep(100);
    }
    const [expected] = await sql<{ rows: number; digest: string }[]>`
      select count(*)::int as rows, coalesce(md5(string_agg(id::text, ',' order by id)), '') as digest
        from drill_events where pg_xact_commit_timestamp(xmin) <= ${target}::timestamptz`;
    log(`drill: target time ${target}: ${expected?.rows} rows committed by then`);
    await sql.end();

    // Keep writing across at least one archive_timeout, then crash the primary: WAL not yet archived is lost.
    await sleep(options.writeSeconds * 1000);
    await primary.stop("immediate");
    writing = false;
    await writer;
    const last = acknowledged.at(-1);
    log(`drill: primary crashed after ${acknowledged.length} acknowledged writes`);

    // 1. Point-in-time recovery to the target.
    const pitr = await recover(ws, base, "pitr", archive, target);
    clusters.push(pitr.cluster);
    const check = connect(pitr.cluster);
    const [got] = await check<{ rows: number; digest: string }[]>`
      select count(*)::int as rows, coalesce(md5(string_agg(id::text, ',' order by id)), '') as digest from drill_events`;
    await check.end();
    const pitrRto = (performance.now() - pitr.started) / 1000;
    await pitr.cluster.stop();
    log(`drill: PITR restored ${got?.rows} rows in ${pitrRto.toFixed(2)} s`);

    // 2. Recovery to the end of the archive after the crash.
    const crash = await recover(ws, base, "crash", archive);
    clusters.push(crash.cluster);
    const after = connect(crash.cluster);
    const [recovered] = await after<{ rows: number; max: string | null; contiguous: boolean }[]>`
      select count(*)::int as rows, max(id) as max, count(*) = coalesce(max(id), 0) as contiguous from drill_events`;
    await after.end();
    const crashRto = (performance.now() - crash.started) / 1000;
    await crash.cluster.stop();
    const recoveredMax = Number(recovered?.max ?? 0);
    const lastRecovered = acknowledged.filter((a) => a.id <= recoveredMax).at(-1);
    const lost = acknowledged.filter((a) => a.id > recoveredMax);
    const rpo = lost.length && last ? (last.at - (lastRecovered?.at ?? last.at)) / 1000 : 0;

    const report: DrillReport = {
      server_version: version?.v ?? "unknown",
      archive_timeout_s: options.archiveTimeoutSeconds,
      rows_written: acknowledged.length,
      target_time: target,
      pitr: {
        expected_rows: expected?.rows ?? 0,
        recovered_rows: got?.rows ?? 0,
        exact: got?.rows === expected?.rows && got?.digest === expected?.digest,
        rto_s: round(pitrRto),
      },
      crash: {
        acknowledged_rows: acknowledged.length,
        recovered_rows: recovered?.rows ?? 0,
        lost_rows: lost.length,
        rpo_s: round(rpo),
        rto_s: round(crashRto),
        prefix_intact: Boolean(recovered?.contiguous),
      },
      rpo_s: round(rpo),
      rto_s: round(Math.max(pitrRto, crashRto)),
    };
    return report;
  } finally {
    for (const cluster of clusters) await cluster.stop("immediate").catch(() => {});
    ws.remove();
  }
}

const round = (n: number) => Math.round(n * 100) / 100;

/** The drill's verdict: an empty list means every objective held. */
export function drillFailures(report: DrillReport): string[] {
  const failures: string[] = [];
  if (!report.pitr.exact) {
    failures.push(
      `PITR: ${report.pitr.recovered_rows} rows back, expected exactly the ${report.pitr.expected_rows} committed before the target`,
    );
  }
  if (!report.crash.prefix_intact) failures.push("crash recovery: the recovered rows are not a gap-free prefix of what was written");
  if (report.rpo_s > RPO_OBJECTIVE_S) failures.push(`RPO ${report.rpo_s} s exceeds ${RPO_OBJECTIVE_S} s`);
  if (report.rto_s > RTO_OBJECTIVE_S) failures.push(`RTO ${report.rto_s} s exceeds ${RTO_OBJECTIVE_S} s`);
  return failures;
}
