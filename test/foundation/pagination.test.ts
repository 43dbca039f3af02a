import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { and, desc, sql } from "drizzle-orm";
import { pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";
import type { DatabaseHandle } from "../../src/db/client";
import { uuidv7 } from "../../src/db/ids";
import { ApiError } from "../../src/http/errors";
import { afterCursor, DEFAULT_LIMIT, decodeCursor, encodeCursor, MAX_LIMIT, PaginationQuery, toPage } from "../../src/http/pagination";
import { openTestDatabase } from "../helpers/db";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

function apiErrorOf(run: () => unknown): ApiError | undefined {
  try {
    run();
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  return undefined;
}

describe("cursors", () => {
  test("round trip keeps the timestamp to the millisecond and the id", () => {
    const cursor = { createdAt: new Date("2026-11-23T16:00:00.123Z"), id: "0190f0a2-7b3c-7d4e-8f01-23456789abcd" };
    const encoded = encodeCursor(cursor);
    expect(encoded).toMatch(/^[A-Za-z0-9_-]+$/); // opaque and URL-safe: no +, / or = padding
    expect(decodeCursor(encoded)).toEqual(cursor);
  });

  test("ids with any characters survive the round trip", () => {
    const cursor = { createdAt: new Date(0), id: "a/b+c=d?é" };
    expect(decodeCursor(encodeCursor(cursor))).toEqual(cursor);
  });

  const malformed: [string, string][] = [
    ["not base64", "%%%"],
    ["base64 of non-JSON", btoa("hello")],
    ["JSON of the wrong shape", btoa(JSON.stringify({ at: 1, id: "x" }))],
    ["a non-integer timestamp", btoa(JSON.stringify([1.5, "x"]))],
    ["a timestamp as a string", btoa(JSON.stringify(["1", "x"]))],
    ["an empty id", btoa(JSON.stringify([1, ""]))],
    ["an over-long id", btoa(JSON.stringify([1, "x".repeat(129)]))],
    ["a timestamp outside the Date range", btoa(JSON.stringify([9_000_000_000_000_000, "x"]))],
    ["an empty string", ""],
  ];
  for (const [name, raw] of malformed) {
    test(`malformed cursor (${name}) → ApiError 400 invalid_cursor`, () => {
      const error = apiErrorOf(() => decodeCursor(raw));
      expect(error?.status).toBe(400);
      expect(error?.code).toBe("invalid_cursor");
    });
  }
});

describe("pages", () => {
  const rows = Array.from({ length: 5 }, (_, i) => ({ createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, 5 - i)), id: `id-${i}` }));

  test("limit + 1 rows → a page of limit rows and a cursor at its last row", () => {
    const page = toPage(rows.slice(0, 3), 2, (r) => r.id);
    expect(page.data).toEqual(["id-0", "id-1"]);
    expect(decodeCursor(page.next_cursor as string)).toEqual({ createdAt: rows[1]?.createdAt as Date, id: "id-1" });
  });

  test("the last page has next_cursor null", () => {
    expect(toPage(rows.slice(0, 2), 2, (r) => r.id)).toEqual({ data: ["id-0", "id-1"], next_cursor: null });
    expect(toPage([], 2, (r: (typeof rows)[number]) => r.id)).toEqual({ data: [], next_cursor: null });
  });

  test("query: limit defaults to 50, accepts 1..500, rejects the rest", () => {
    expect(PaginationQuery.parse({})).toEqual({ limit: DEFAULT_LIMIT });
    expect(DEFAULT_LIMIT).toBe(50);
    expect(PaginationQuery.parse({ limit: "500" }).limit).toBe(MAX_LIMIT);
    for (const bad of ["0", "501", "-1", "2.5", "ten"]) expect(PaginationQuery.safeParse({ limit: bad }).success).toBe(false);
  });
});

/** A list table of its own, so the keyset walk is tested without any feature's rows. */
const items = pgTable("pagination_probe_items", {
  id: uuid("id").primaryKey(),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull(),
  label: text("label").notNull(),
});

describe("keyset pages over a real database", () => {
  let database: DatabaseHandle;
  const base = Date.UTC(2026, 10, 23, 12);
  beforeAll(async () => {
    database = await openTestDatabase();
    await database.db.execute(
      sql`create table pagination_probe_items (id uuid primary key, created_at timestamptz not null, label text not null)`,
    );
    // 11 rows, several sharing a millisecond, so the id must break ties.
    const rows = Array.from({ length: 11 }, (_, i) => {
      const at = base + Math.floor(i / 3);
      return { id: uuidv7(at), createdAt: new Date(at), label: `row-${i}` };
    });
    await database.db.insert(items).values(rows);
  }, 60_000);
  afterAll(() => database.close());

  const page = async (limit: number, cursor?: string) => {
    const rows = await database.db
      .select()
      .from(items)
      .where(and(afterCursor(items.createdAt, items.id, cursor)))
      .orderBy(desc(items.createdAt), desc(items.id))
      .limit(limit + 1);
    return toPage(rows, limit, (r) => r.label);
  };

  test("walking every page returns each row once, newest first", async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const next = await page(3, cursor);
      seen.push(...next.data);
      cursor = next.next_cursor ?? undefined;
      pages += 1;
    } while (cursor && pages < 20);
    expect(pages).toBe(4);
    expect(seen).toEqual(Array.from({ length: 11 }, (_, i) => `row-${10 - i}`));
  });

  test("a cursor whose id is no UUID → 400 invalid_cursor before any SQL runs", async () => {
    const forged = encodeCursor({ createdAt: new Date(base), id: "' or 1=1 --" });
    let caught: unknown;
    try {
      await page(3, forged);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ApiError);
    expect((caught as ApiError).code).toBe("invalid_cursor");
  });
});
