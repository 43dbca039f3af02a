import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import postgres from "postgres";
import { type DatabaseHandle, openPostgres } from "../../src/db/client";
import { startTestApp } from "../helpers/app";
import { createScratchDatabase, usingRealPostgres } from "../helpers/db";
import { readEveryTable, seedEveryTable } from "./fixtures";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

// Spawns processes or opens databases on disk; the 5 s default is too tight on a busy machine.
const SLOW = 60_000;

/**
 * The least-privilege roles of ops/postgres/, applied with psql exactly as the container does, on a
 * scratch database of the real server. Roles are cluster-wide, so the login names are fixed and the
 * SQL is idempotent: the file runs twice here, and reruns of the suite reuse the roles.
 */
const psql = Bun.which("psql");
const enabled = usingRealPostgres() && psql !== null;
if (!enabled) {
  console.warn(
    `roles.test: skipped: ${usingRealPostgres() ? "psql is not installed" : "needs a real PostgreSQL (set DATABASE_URL)"}; roles do not exist in embedded PGlite`,
  );
}

const rolesSql = join(import.meta.dir, "../../ops/postgres/roles.sql");
const loginsSql = join(import.meta.dir, "../../ops/postgres/logins.sql");
const APP = "arbiter_ops_test_app";
const MIGRATOR = "arbiter_ops_test_migrator";
const READER = "arbiter_ops_test_reader";

let scratch: Awaited<ReturnType<typeof createScratchDatabase>>;
const urlAs = (user: string) => {
  const url = new URL(scratch.url);
  url.username = user;
  url.password = "";
  return url.toString();
};

async function runPsql(file: string, vars: Record<string, string> = {}) {
  const args = [
    "-X",
    "-q",
    "-v",
    "ON_ERROR_STOP=1",
    ...Object.entries(vars).flatMap(([k, v]) => ["-v", `${k}=${v}`]),
    "-d",
    scratch.url,
    "-f",
    file,
  ];
  const child = Bun.spawn([psql as string, ...args], { stdout: "pipe", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(child.stderr).text(), child.exited]);
  if (code !== 0) throw new Error(`psql ${file}: ${stderr}`);
}

/** Runs one statement as `user` and returns the SQLSTATE it failed with, or "ok". */
async function attempt(user: string, statement: string): Promise<string> {
  const sql = postgres(urlAs(user), { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(statement);
    return "ok";
  } catch (error) {
    return (error as { code?: string }).code ?? (error as Error).message;
  } finally {
    await sql.end();
  }
}
const DENIED = "42501"; // insufficient_privilege

let app: DatabaseHandle;

beforeAll(async () => {
  if (!enabled) return;
  scratch = await createScratchDatabase(process.env.DATABASE_URL as string);
  const logins = { app_user: APP, app_password: "", migrator_user: MIGRATOR, migrator_password: "" };
  for (let run = 0; run < 2; run++) {
    await runPsql(rolesSql);
    await runPsql(loginsSql, logins);
  }
  const admin = postgres(scratch.url, { max: 1, onnotice: () => {} });
  await admin.unsafe(
    `DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${READER}') THEN CREATE ROLE ${READER} LOGIN; END IF; END $$`,
  );
  await admin.unsafe(`GRANT app_read TO ${READER}`);
  await admin.end();
  // Migrations run as the migrator login, which becomes app_admin.
  const migrator = await openPostgres({ url: urlAs(MIGRATOR), poolMax: 2 });
  await migrator.migrate();
  await migrator.close();
  app = await openPostgres({ url: urlAs(APP), poolMax: 4 });
}, SLOW);
afterAll(async () => {
  if (!enabled) return;
  await app?.close();
  await scratch.drop();
}, SLOW);

describe.skipIf(!enabled)("least-privilege PostgreSQL roles", () => {
  test(
    "migrations ran as app_admin, which owns every table",
    async () => {
      const sql = postgres(scratch.url, { max: 1 });
      const owners = await sql<{ owner: string }[]>`
      select distinct tableowner as owner from pg_tables where schemaname in ('public', 'drizzle')`;
      await sql.end();
      expect(owners.map((o) => o.owner)).toEqual(["app_admin"]);
    },
    SLOW,
  );

  test(
    "the app works fully as app_write: health, API keys through the HTTP API, rows in every table",
    async () => {
      const t = await startTestApp({ database: { ...app, close: async () => {} } });
      try {
        const ready = await t.request("/health/ready");
        expect(ready.status).toBe(200);
        expect(((await ready.json()) as { status: string }).status).not.toBe("fail");
        const created = await t.request("/v1/keys", { as: "admin", method: "POST", json: { name: "from-app-write", role: "operator" } });
        expect(created.status).toBe(201);
        const listed = await t.request("/v1/keys", { as: "admin" });
        expect(listed.status).toBe(200);
        expect(JSON.stringify(await listed.json())).toContain("from-app-write");
      } finally {
        await t.close();
      }
      await seedEveryTable(app.db);
      const rows = await readEveryTable(app.db);
      for (const [table, list] of Object.entries(rows)) expect(list.length, table).toBeGreaterThan(0);
      expect(await attempt(APP, "update decisions set title = 'edited' where true")).toBe("ok");
      expect(await attempt(APP, "delete from webhook_deliveries where attempt > 100")).toBe("ok");
    },
    SLOW,
  );

  test(
    "app_write cannot change the schema",
    async () => {
      expect(await attempt(APP, "drop table telemetry_events")).toBe(DENIED);
      expect(await attempt(APP, "alter table decisions add column sneaky text")).toBe(DENIED);
      expect(await attempt(APP, "create table sneaky (id int)")).toBe(DENIED);
      expect(await attempt(APP, "truncate telemetry_events")).toBe(DENIED);
      expect(await attempt(APP, "create schema sneaky")).toBe(DENIED);
    },
    SLOW,
  );

  test(
    "the audit tables are append-only for app_write",
    async () => {
      expect(await attempt(APP, "update decision_events set reason = 'rewritten'")).toBe(DENIED);
      expect(await attempt(APP, "delete from decision_events")).toBe(DENIED);
      expect(await attempt(APP, "update auth_events set outcome = 'success'")).toBe(DENIED);
      expect(await attempt(APP, "delete from auth_events")).toBe(DENIED);
      expect(await attempt(APP, "truncate auth_events")).toBe(DENIED);
      const sql = postgres(scratch.url, { max: 1 });
      const [counts] =
        await sql`select (select count(*) from auth_events)::int as auth, (select count(*) from decision_events)::int as decision`;
      await sql.end();
      expect(counts?.auth).toBeGreaterThan(0);
      expect(counts?.decision).toBeGreaterThan(0);
    },
    SLOW,
  );

  test(
    "audit retention runs as app_admin; as app_write it is refused with a message saying so",
    async () => {
      const sql = postgres(scratch.url, { max: 1 });
      await sql`insert into auth_events (id, created_at, action, outcome) values
        (gen_random_uuid(), now() - interval '400 days', 'authenticate', 'failure'),
        (gen_random_uuid(), now() - interval '400 days', 'authenticate', 'failure')`;
      const old = async () =>
        (await sql<{ n: number }[]>`select count(*)::int as n from auth_events where created_at < now() - interval '365 days'`)[0]?.n;
      const retention = async (user: string) => {
        const child = Bun.spawn(["bun", "run", join(import.meta.dir, "../../scripts/audit-retention.ts")], {
          env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", DATABASE_URL: urlAs(user) },
          stdout: "pipe",
          stderr: "pipe",
        });
        const [code, stdout, stderr] = await Promise.all([
          child.exited,
          new Response(child.stdout).text(),
          new Response(child.stderr).text(),
        ]);
        return { code, stdout, stderr };
      };
      try {
        const refused = await retention(APP);
        expect(refused.code).toBe(1);
        expect(refused.stderr).toContain("run this as the admin role (app_admin)");
        expect(await old()).toBe(2);
        const done = await retention(MIGRATOR);
        expect(done.stderr).toBe("");
        expect(done.code).toBe(0);
        expect(done.stdout).toContain("deleted 2 auth events");
        expect(await old()).toBe(0);
        expect(((await sql<{ n: number }[]>`select count(*)::int as n from auth_events`)[0]?.n ?? 0) > 0).toBe(true);
      } finally {
        await sql.end();
      }
    },
    SLOW,
  );

  test(
    "app_read can read and cannot write",
    async () => {
      expect(await attempt(READER, "select count(*) from decisions, auth_events, drizzle.__drizzle_migrations")).toBe("ok");
      expect(await attempt(READER, "insert into signing_keys (kid, alg, private_jwk, public_jwk) values ('r', 'x', '{}', '{}')")).toBe(
        DENIED,
      );
      expect(await attempt(READER, "update decisions set title = 'x'")).toBe(DENIED);
      expect(await attempt(READER, "delete from telemetry_events")).toBe(DENIED);
    },
    SLOW,
  );

  test(
    "tables a later migration creates get the same privileges by default",
    async () => {
      expect(await attempt(MIGRATOR, "create table ops_future (id int primary key)")).toBe("ok");
      try {
        expect(await attempt(APP, "insert into ops_future values (1)")).toBe("ok");
        expect(await attempt(READER, "select * from ops_future")).toBe("ok");
        expect(await attempt(READER, "insert into ops_future values (2)")).toBe(DENIED);
      } finally {
        await attempt(MIGRATOR, "drop table ops_future");
      }
    },
    SLOW,
  );
});
