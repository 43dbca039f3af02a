import { describe, expect, test } from "bun:test";
import { ApiError } from "../../src/http/errors";
import { DEFAULT_LIMIT, decodeCursor, encodeCursor, MAX_LIMIT, PaginationQuery, toPage } from "../../src/http/pagination";

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
    ["an empty string", ""],
  ];
  for (const [name, raw] of malformed) {
    test(`malformed cursor (${name}) → ApiError 400 invalid_cursor`, () => {
      let caught: unknown;
      try {
        decodeCursor(raw);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(ApiError);
      expect((caught as ApiError).status).toBe(400);
      expect((caught as ApiError).code).toBe("invalid_cursor");
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
