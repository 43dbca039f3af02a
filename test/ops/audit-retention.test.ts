import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { count, lt } from "drizzle-orm";
import { loadConfig } from "../../src/config";
import type { DatabaseHandle } from "../../src/db/client";
import { uuidv7 } from "../../src/db/ids";
import { authEvents } from "../../src/db/schema";
import { openDatabase } from "../../src/deps";
import { tempDir } from "../foundation/support";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * `bun run audit:retention` on an embedded data directory, as a process: old authentication events
 * go, recent ones stay. (As the application role on PostgreSQL it is refused: test/ops/roles.test.ts.)
 */
const DAY = 86_400_000;
const dataDir = tempDir("audit-retention");
let database: DatabaseHandle;

async function seed() {
  const now = Date.now();
  const rows = [400, 366, 364, 1, 0].flatMap((days) =>
    Array.from({ length: 3 }, () => ({
      id: uuidv7(),
      createdAt: new Date(now - days * DAY),
      action: "authenticate",
      outcome: "failure" as const,
    })),
  );
  await database.db.insert(authEvents).values(rows);
}
const total = async () => (await database.db.select({ n: count() }).from(authEvents))[0]?.n ?? 0;

async function retention(...args: string[]) {
  await database.close(); // PGlite is single-process: the script opens the directory itself
  const child = Bun.spawn(["bun", "run", join(import.meta.dir, "../../scripts/audit-retention.ts"), ...args], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", DATA_DIR: dataDir },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, stdout, stderr] = await Promise.all([child.exited, new Response(child.stdout).text(), new Response(child.stderr).text()]);
  database = await openDatabase(loadConfig({ DATA_DIR: dataDir }));
  return { code, stdout, stderr };
}

beforeAll(async () => {
  database = await openDatabase(loadConfig({ DATA_DIR: dataDir }));
  await database.migrate();
  await seed();
}, 60_000);
afterAll(async () => {
  await database.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test("deletes events older than the retention window, in batches, and keeps the rest", async () => {
  expect(await total()).toBe(15);
  const run = await retention("--batch-size", "2");
  expect(run.stderr).toBe("");
  expect(run.code).toBe(0);
  expect(run.stdout).toContain("deleted 6 auth events");
  expect(await total()).toBe(9);
  const older = await database.db
    .select({ n: count() })
    .from(authEvents)
    .where(lt(authEvents.createdAt, new Date(Date.now() - 365 * DAY)));
  expect(older[0]?.n).toBe(0);
}, 60_000);

test("--days narrows the window; a second run finds nothing more", async () => {
  expect((await retention("--days", "2")).stdout).toContain("deleted 3 auth events");
  expect(await total()).toBe(6);
  expect((await retention("--days", "2")).stdout).toContain("deleted 0 auth events");
}, 60_000);

test("bad arguments are a usage error and delete nothing", async () => {
  for (const args of [["--days", "0"], ["--days", "x"], ["--batch-size", "-1"], ["--what"]]) {
    const run = await retention(...args);
    expect(run.code).toBe(2);
    expect(run.stderr).toStartWith("audit:retention: ");
  }
  expect(await total()).toBe(6);
}, 120_000);
