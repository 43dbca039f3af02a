import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { sql } from "drizzle-orm";
import { isDatabaseUnavailable, isStorageFull } from "../../src/db/errors";
import { StorageReserveError, storageReserve } from "../../src/db/storage-reserve";
import { startTestApp, type TestApp } from "../helpers/app";
import { openTestDatabase } from "../helpers/db";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * A database out of storage (PostgreSQL's disk_full, SQLSTATE 53100, which PGlite raises too when
 * its filesystem returns ENOSPC) is a 503 `insufficient_storage`, not a 500. The errors here are
 * real: the tier's database raises disk_full from a trigger (through the same driver and Drizzle
 * wrapping as a full disk), and the operating system answers ENOSPC to a write on /dev/full.
 * test/faults/disk-full.test.ts fills a real filesystem under the embedded data directory.
 */
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
  await t.deps.database.db.execute(
    sql.raw(`
    create function raise_disk_full() returns trigger language plpgsql as $$
    begin
      if new.source = 'disk-full' then
        raise exception 'could not extend file "base/5/16385": No space left on device' using errcode = 'disk_full';
      end if;
      return new;
    end $$
  `),
  );
  await t.deps.database.db.execute(
    sql.raw("create trigger telemetry_disk_full before insert on telemetry_events for each row execute function raise_disk_full()"),
  );
}, 60_000);
afterAll(() => t?.close());

const event = (source: string, id: string) => ({
  events: [{ id, type: "probe", source, severity: "info", occurred_at: new Date().toISOString() }],
});

describe("classification", () => {
  test("the database's own disk_full error, as the driver and Drizzle hand it over", async () => {
    const error = await t.deps.database.db
      .execute(
        sql`insert into telemetry_events (id, type, source, severity, occurred_at) values ('x', 'probe', 'disk-full', 'info', now())`,
      )
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeDefined();
    expect(isStorageFull(error)).toBe(true);
    expect(isDatabaseUnavailable(error)).toBe(false);
  });

  test.skipIf(!existsSync("/dev/full"))("the operating system's ENOSPC (a write to /dev/full)", () => {
    let error: unknown;
    try {
      writeFileSync("/dev/full", "x");
    } catch (e) {
      error = e;
    }
    expect((error as { code?: string }).code).toBe("ENOSPC");
    expect(isStorageFull(error)).toBe(true);
    expect(isStorageFull(new Error("wrapped", { cause: error }))).toBe(true);
  });

  test("other errors are not storage errors", () => {
    for (const code of ["23505", "53300", "57014", "ECONNREFUSED", "EACCES", undefined])
      expect(isStorageFull(Object.assign(new Error("x"), { code }))).toBe(false);
    expect(isStorageFull(undefined)).toBe(false);
  });
});

test("a write that meets a full database is a 503 insufficient_storage JSON error with Retry-After; other writes and reads go on", async () => {
  const full = await t.request("/v1/telemetry/events", { method: "POST", as: "service", json: event("disk-full", "full-1") });
  expect(full.status).toBe(503);
  expect(full.headers.get("retry-after")).toBe("30");
  expect(full.headers.get("content-type")).toStartWith("application/json");
  const body = (await full.json()) as { error: { code: string; message: string } };
  expect(Object.keys(body)).toEqual(["error"]);
  expect(body.error.code).toBe("insufficient_storage");
  expect(body.error.message).not.toContain("base/5");
  expect(t.logs.some((line) => line.msg === "database storage full" && line.level === "error")).toBe(true);

  const fine = await t.request("/v1/telemetry/events", { method: "POST", as: "service", json: event("elsewhere", "fine-1") });
  expect(fine.status).toBe(202);
  const read = await t.request("/v1/telemetry/events?source=elsewhere", { as: "operator" });
  expect(((await read.json()) as { data: { id: string }[] }).data.map((e) => e.id)).toEqual(["fine-1"]);
  const none = await t.request("/v1/telemetry/events?source=disk-full", { as: "operator" });
  expect(((await none.json()) as { data: unknown[] }).data).toEqual([]);
});

describe("the embedded database's free-space reserve", () => {
  test("refuses while less than the reserve is free, reads free space at most once a second, lets an unreadable disk through", () => {
    let free = 100 * 2 ** 20;
    let now = 0;
    let reads = 0;
    const reserve = storageReserve({
      freeBytes: () => {
        reads++;
        if (free < 0) throw new Error("ENOENT");
        return free;
      },
      minFreeBytes: 64 * 2 ** 20,
      now: () => now,
    });
    reserve.check();
    free = 10 * 2 ** 20;
    reserve.check(); // the reading of a moment ago still stands
    expect(reads).toBe(1);
    now = 1_000;
    expect(() => reserve.check()).toThrow(StorageReserveError);
    let error: unknown;
    try {
      reserve.check();
    } catch (e) {
      error = e;
    }
    expect(isStorageFull(error)).toBe(true);
    expect((error as Error).message).toBe("10 MiB free under the data directory, below the 64 MiB reserve");
    free = -1;
    now = 2_000;
    reserve.check();
    expect(reads).toBe(3);
  });

  test("through the app: writes 503 insufficient_storage below the reserve, reads served, writes back once space returns", async () => {
    let free = 0;
    const database = await openTestDatabase();
    const app = await startTestApp({ database: Object.assign(database, { freeBytes: () => free }), env: { DATA_DIR_MIN_FREE_MB: "64" } });
    try {
      const refused = await app.request("/v1/telemetry/events", { method: "POST", as: "service", json: event("reserve", "reserve-1") });
      expect(refused.status).toBe(503);
      expect(refused.headers.get("retry-after")).toBe("30");
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("insufficient_storage");
      expect((await app.request("/v1/telemetry/events?source=reserve", { as: "operator" })).status).toBe(200);
      free = 65 * 2 ** 20;
      await Bun.sleep(1_050);
      const stored = await app.request("/v1/telemetry/events", { method: "POST", as: "service", json: event("reserve", "reserve-2") });
      expect(stored.status).toBe(202);
    } finally {
      await app.close();
    }
  });
});
