import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import { getTableConfig, PgTable } from "drizzle-orm/pg-core";
import postgres from "postgres";
import {
  type DatabaseHandle,
  openPglite,
  openPostgres,
  PGLITE_SNAPSHOT_MANIFEST,
  pgliteVersion,
  rowsOf,
  snapshotManifest,
} from "../../src/db/client";
import * as schema from "../../src/db/schema";
import { createScratchDatabase } from "../helpers/db";
import { postgresReachable, REAL_POSTGRES_URL, tempDir } from "./support";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/** Every table the Drizzle schema declares, with its columns: what the migrations must produce. */
const declared = (Object.values(schema) as unknown[])
  .filter((value): value is PgTable => value instanceof PgTable)
  .map((table) => {
    const config = getTableConfig(table);
    return { name: config.name, columns: config.columns.map((c) => c.name).sort() };
  })
  .sort((a, b) => a.name.localeCompare(b.name));

async function tablesIn(database: DatabaseHandle) {
  const rows = rowsOf<{ table_name: string; column_name: string }>(
    await database.db.execute(
      "select table_name, column_name from information_schema.columns where table_schema = 'public' order by table_name, column_name" as never,
    ),
  );
  const tables = new Map<string, string[]>();
  for (const row of rows) tables.set(row.table_name, [...(tables.get(row.table_name) ?? []), row.column_name]);
  return tables;
}

async function appliedMigrations(database: DatabaseHandle): Promise<number> {
  const [row] = rowsOf<{ count: number | string }>(
    await database.db.execute("select count(*) as count from drizzle.__drizzle_migrations" as never),
  );
  return Number(row?.count);
}

async function provesMigrations(database: DatabaseHandle) {
  await database.migrate();
  const tables = await tablesIn(database);
  for (const table of declared) {
    expect(tables.has(table.name), `table ${table.name} exists`).toBe(true);
    expect(tables.get(table.name)?.sort(), `columns of ${table.name}`).toEqual(table.columns);
  }
  const applied = await appliedMigrations(database);
  const journal = (await Bun.file(new URL("../../drizzle/meta/_journal.json", import.meta.url)).json()) as { entries: unknown[] };
  expect(applied).toBe(journal.entries.length);

  // Applying again changes nothing: no migration re-runs, no table or column appears or goes.
  await database.migrate();
  expect(await appliedMigrations(database)).toBe(applied);
  expect(await tablesIn(database)).toEqual(tables);
}

test("the schema declares the domain's tables", () => {
  const names = declared.map((t) => t.name);
  for (const name of [
    "api_keys",
    "operator_sessions",
    "auth_events",
    "decisions",
    "decision_events",
    "telemetry_events",
    "telemetry_snapshots",
  ]) {
    expect(names).toContain(name);
  }
});

describe("migrations on PGlite (PostgreSQL 18)", () => {
  test("apply to a fresh database, create every table, and re-apply as a no-op", async () => {
    const database = await openPglite({ instance: await PGlite.create() });
    try {
      await provesMigrations(database);
    } finally {
      await database.close();
    }
  }, 60_000); // a fresh PGlite boots in seconds on a busy machine

  test("the shipped snapshot is current (run `bun run db:snapshot` after a migration or a PGlite upgrade)", () => {
    const shipped = JSON.parse(readFileSync(PGLITE_SNAPSHOT_MANIFEST, "utf8"));
    expect(shipped).toEqual(snapshotManifest(pgliteVersion()));
  });

  test("a fresh data directory starts from the snapshot: every table, migrations a no-op, and it reopens", async () => {
    const dataDir = tempDir("snapshot");
    try {
      const first = await openPglite({ dataDir });
      try {
        // Loaded, not initialised: the migrations table already lists every migration.
        expect(await appliedMigrations(first)).toBe(snapshotManifest(pgliteVersion()).migrations.length);
        await provesMigrations(first);
      } finally {
        await first.close();
      }
      const reopened = await openPglite({ dataDir });
      try {
        const tables = await tablesIn(reopened);
        for (const table of declared) expect(tables.get(table.name)?.sort(), `columns of ${table.name}`).toEqual(table.columns);
      } finally {
        await reopened.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});

async function serverVersionOf(url: string): Promise<number> {
  const client = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [row] = await client`select current_setting('server_version_num') as version`;
    return Number(row?.version);
  } finally {
    await client.end({ timeout: 1 });
  }
}
const havePostgres = await postgresReachable();

describe.skipIf(!havePostgres)("migrations on the real PostgreSQL server", () => {
  let drop: (() => Promise<void>) | undefined;
  afterAll(() => drop?.());

  test("apply to a fresh database, create every table, and re-apply as a no-op", async () => {
    const scratch = await createScratchDatabase(REAL_POSTGRES_URL);
    drop = scratch.drop;
    const database = await openPostgres({ url: scratch.url, poolMax: 2 });
    try {
      await provesMigrations(database);
    } finally {
      await database.close();
    }
  }, 30_000);

  test("two replicas migrating at once both succeed (advisory lock)", async () => {
    const scratch = await createScratchDatabase(REAL_POSTGRES_URL);
    const [a, b] = await Promise.all([openPostgres({ url: scratch.url, poolMax: 2 }), openPostgres({ url: scratch.url, poolMax: 2 })]);
    try {
      await Promise.all([a.migrate(), b.migrate()]);
      expect(await tablesIn(a)).toEqual(await tablesIn(b));
    } finally {
      await Promise.all([a.close(), b.close()]);
      await scratch.drop();
    }
  }, 30_000);

  test("the server is PostgreSQL 15 or later", async () => {
    expect(await serverVersionOf(REAL_POSTGRES_URL)).toBeGreaterThanOrEqual(150000);
  });
});
