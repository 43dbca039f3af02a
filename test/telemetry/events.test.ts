import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startTestApp, type TestApp } from "../helpers/app";
import { usingRealPostgres } from "../helpers/db";
import { scrape, total } from "../observability/exposition";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
}, 30_000);
afterAll(() => t.close());

const minutesAgo = (n: number) => new Date(Date.now() - n * 60_000).toISOString();
const event = (overrides: Record<string, unknown> = {}) => ({
  type: "agent.step",
  source: "agent-a",
  severity: "info",
  occurred_at: minutesAgo(1),
  attributes: { step: 1 },
  ...overrides,
});
const post = (events: unknown[], as: "service" | "admin" | "readonly" | "operator" = "service") =>
  t.request("/v1/telemetry/events", { method: "POST", as, json: { events } });
const list = async (query: string) => {
  const res = await t.request(`/v1/telemetry/events?${query}`, { as: "operator" });
  expect(res.status).toBe(200);
  return (await res.json()) as {
    data: { id: string; source: string; type: string; severity: string; occurred_at: string }[];
    next_cursor: string | null;
  };
};

describe("POST /v1/telemetry/events — batches and idempotency", () => {
  test("stores a batch and answers 202 with the accepted count", async () => {
    const events = [event({ id: "batch1-0" }), event({ id: "batch1-1", severity: "warn", trace_id: "4bf92f3577b34da6a3ce929d0e0e4736" })];
    const res = await post(events);
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ received: 2, accepted: 2, duplicates: 0 });
    const stored = await list("source=agent-a&limit=50");
    const ids = stored.data.map((e) => e.id);
    expect(ids).toContain("batch1-0");
    expect(ids).toContain("batch1-1");
    const withTrace = (await list("severity=warn")).data.find((e) => e.id === "batch1-1") as unknown as { trace_id: string };
    expect(withTrace.trace_id).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
  });

  test("a retried batch is not counted twice; new ids in it are", async () => {
    const first = [event({ id: "retry-0" }), event({ id: "retry-1" })];
    expect(await (await post(first)).json()).toEqual({ received: 2, accepted: 2, duplicates: 0 });
    const retried = await post([...first, event({ id: "retry-2" })]);
    expect(retried.status).toBe(202);
    expect(await retried.json()).toEqual({ received: 3, accepted: 1, duplicates: 2 });
    const stored = (await list("limit=500")).data.filter((e) => e.id.startsWith("retry-"));
    expect(stored.map((e) => e.id).sort()).toEqual(["retry-0", "retry-1", "retry-2"]);
  });

  test("an id repeated inside one batch is stored once", async () => {
    const res = await post([event({ id: "twice" }), event({ id: "twice", type: "other" })]);
    expect(await res.json()).toEqual({ received: 2, accepted: 1, duplicates: 1 });
  });

  test("events without an id get a generated one each", async () => {
    const res = await post([event({ source: "anon-ids" }), event({ source: "anon-ids" })]);
    expect(await res.json()).toEqual({ received: 2, accepted: 2, duplicates: 0 });
    const stored = await list("source=anon-ids");
    expect(new Set(stored.data.map((e) => e.id)).size).toBe(2);
  });

  test("1,000 events go in one round trip (COPY or INSERT), not one per event", async () => {
    // The batch is one COPY (PostgreSQL) or one `with … insert` statement; authentication may add a plain insert or two.
    const writes = async () => {
      const { samples } = await scrape(t);
      return (["insert", "with", "copy"] as const).reduce(
        (sum, name) => sum + total(samples, "db_client_operation_duration_seconds_count", { db_operation_name: name }),
        0,
      );
    };
    const before = await writes();
    const batch = Array.from({ length: 1000 }, (_, i) => event({ id: `bulk-${i}`, source: "bulk", attributes: { i } }));
    const res = await post(batch);
    expect(await res.json()).toEqual({ received: 1000, accepted: 1000, duplicates: 0 });
    const after = await writes();
    expect(after - before).toBeGreaterThanOrEqual(1);
    expect(after - before).toBeLessThanOrEqual(3);
    const page = await list("source=bulk&limit=500");
    expect(page.data).toHaveLength(500);
    expect(page.next_cursor).not.toBeNull();
  });
});

const ops = async (name: string) =>
  total((await scrape(t)).samples, "db_client_operation_duration_seconds_count", { db_operation_name: name });
const storedRows = async (idPrefix: string) => {
  const { telemetryEvents } = await import("../../src/db/schema");
  const { like } = await import("drizzle-orm");
  return t.deps.database.db
    .select()
    .from(telemetryEvents)
    .where(like(telemetryEvents.id, `${idPrefix}%`));
};

// On PostgreSQL a batch is COPYed (text format), falling back to INSERT … ON CONFLICT DO NOTHING on a
// unique violation; PGlite always INSERTs. These hold on both.
describe(`POST /v1/telemetry/events — the ${usingRealPostgres() ? "COPY" : "INSERT"} path`, () => {
  test("text that COPY's format treats specially round-trips exactly", async () => {
    const hostile = {
      tab: "a\tb",
      newline: "line1\nline2\r\nline3\r",
      backslashes: "C:\\path\\to\\file \\N \\. \\\\",
      nullMarker: "\\N",
      endOfData: "\\.",
      lonelyEndOfData: "\n\\.\n",
      escapes: "\\t\\n\\r\\b\\f\\v\\x41\\101\\u0041",
      quotes: `"double" 'single' \\"escaped\\"`,
      json: '{"nested": "not an object", "esc": "\\u0000 is text here"}',
      unicode: "żółć — 漢字 — 🙂 — \u2028\u2029 — \u00a0",
      control: "\u0001\u0007\u001b[31m\u007f",
      "key\twith\ntab\\and newline": "value",
      "\\N": null,
      empty: "",
      list: ["\t", "\n", "\\", ["\\\\N"]],
      numbers: [0, -1.5, 1e300, 123456789012345],
      flags: [true, false, null],
    };
    const batch = [
      event({ id: "hostile-1", source: "hostile", attributes: hostile }),
      event({ id: "hostile-2", source: "hostile", attributes: { only: "\\" } }),
      event({ source: "hostile", attributes: { "\t": "\t\\N\t" } }),
    ];
    const res = await post(batch);
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ received: 3, accepted: 3, duplicates: 0 });
    const stored = await list("source=hostile");
    const byId = new Map(stored.data.map((e) => [e.id, e as unknown as { attributes: unknown }]));
    expect(byId.get("hostile-1")?.attributes).toEqual(hostile);
    expect(byId.get("hostile-2")?.attributes).toEqual({ only: "\\" });
    const generated = stored.data.find((e) => !e.id.startsWith("hostile-")) as unknown as { attributes: unknown };
    expect(generated.attributes).toEqual({ "\t": "\t\\N\t" });
  });

  test("ids already stored and ids repeated in the batch are counted once each, across batches", async () => {
    const first = await post([event({ id: "dup-a" }), event({ id: "dup-b" }), event()]);
    expect(await first.json()).toEqual({ received: 3, accepted: 3, duplicates: 0 });
    // dup-a stored before, dup-c twice in this batch, two without ids
    const second = await post([event(), event({ id: "dup-c" }), event({ id: "dup-a" }), event({ id: "dup-c" }), event()]);
    expect(second.status).toBe(202);
    expect(await second.json()).toEqual({ received: 5, accepted: 3, duplicates: 2 });
    // the whole second batch again, and one new id
    const third = await post([event({ id: "dup-c" }), event({ id: "dup-a" }), event({ id: "dup-b" }), event({ id: "dup-d" })]);
    expect(await third.json()).toEqual({ received: 4, accepted: 1, duplicates: 3 });
    expect((await storedRows("dup-")).map((row) => row.id).sort()).toEqual(["dup-a", "dup-b", "dup-c", "dup-d"]);
  });

  test("a stored id at the end of a large batch: the rest is stored once, nothing twice", async () => {
    expect((await post([event({ id: "late-999" })])).status).toBe(202);
    const copiesBefore = await ops("copy");
    const batch = Array.from({ length: 1000 }, (_, i) => event({ id: `late-${i}`, attributes: { i } }));
    const res = await post(batch);
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ received: 1000, accepted: 999, duplicates: 1 });
    const rows = await storedRows("late-");
    expect(rows).toHaveLength(1000);
    expect(new Set(rows.map((row) => row.id)).size).toBe(1000);
    // On PostgreSQL the COPY was tried (and failed whole on late-999) before the INSERT.
    expect((await ops("copy")) - copiesBefore).toBe(usingRealPostgres() ? 1 : 0);
  });

  test("an id equal to one the server generated is a duplicate, not a 500", async () => {
    const anonymous = await post([event({ source: "collide" }), event({ source: "collide" })]);
    expect(await anonymous.json()).toEqual({ received: 2, accepted: 2, duplicates: 0 });
    const generated = (await list("source=collide")).data.map((e) => e.id);
    expect(generated).toHaveLength(2);
    const res = await post([event({ source: "collide" }), event({ id: generated[0], source: "collide" }), event({ source: "collide" })]);
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ received: 3, accepted: 2, duplicates: 1 });
    expect((await list("source=collide")).data).toHaveLength(4);
  });

  test("a batch the database fails part-way stores nothing, and the pool keeps serving", async () => {
    // A trigger that fails on the 700th row: the COPY (or INSERT) has written rows before it.
    const { sql } = await import("drizzle-orm");
    const db = t.deps.database.db;
    await db.execute(
      sql.raw(`
      create function telemetry_test_explode() returns trigger language plpgsql as $$
      begin
        if new.attributes ? 'explode' then raise exception 'exploded at %', new.id; end if;
        return new;
      end $$`),
    );
    await db.execute(
      sql.raw(
        `create trigger telemetry_test_explode before insert on telemetry_events for each row execute function telemetry_test_explode()`,
      ),
    );
    try {
      const batch = Array.from({ length: 1000 }, (_, i) => event({ id: `boom-${i}`, attributes: i === 699 ? { explode: true } : { i } }));
      const res = await post(batch);
      expect(res.status).toBe(500);
      expect(await storedRows("boom-")).toHaveLength(0);
    } finally {
      await db.execute(sql.raw("drop trigger telemetry_test_explode on telemetry_events"));
      await db.execute(sql.raw("drop function telemetry_test_explode()"));
    }
    // Every pool connection still works: batches and reads at once, more of them than connections.
    const results = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        i % 3 === 2
          ? t.request("/v1/telemetry/events?limit=5", { as: "operator" }).then((r) => r.status)
          : post(Array.from({ length: 200 }, (_, j) => event({ id: `after-boom-${i}-${j}`, source: "after-boom" }))).then((r) => r.status),
      ),
    );
    expect(results.filter((status) => status === 202)).toHaveLength(16);
    expect(results.filter((status) => status === 200)).toHaveLength(8);
    expect(await storedRows("after-boom-")).toHaveLength(16 * 200);
  });

  test("the same ids sent at once by several requests, in opposite orders, are stored once and counted once", async () => {
    for (let round = 0; round < 3; round++) {
      const ids = Array.from({ length: 500 }, (_, i) => `race-${round}-${i}`);
      const batches = [ids, [...ids].reverse(), ids, [...ids].reverse()].map((order) => order.map((id) => event({ id })));
      const answers = await Promise.all(
        batches.map(async (batch) => {
          const res = await post(batch);
          return { status: res.status, body: (await res.json()) as { accepted: number; duplicates: number } };
        }),
      );
      expect(answers.map((a) => a.status)).toEqual([202, 202, 202, 202]);
      expect(answers.reduce((sum, a) => sum + a.body.accepted, 0)).toBe(500);
      expect(answers.reduce((sum, a) => sum + a.body.duplicates, 0)).toBe(1500);
      expect(await storedRows(`race-${round}-`)).toHaveLength(500);
    }
  });

  test("NUL in attributes is refused before the database sees it", async () => {
    const res = await post([event({ source: "nul", attributes: { text: "a\u0000b" } })]);
    expect(res.status).toBe(400);
    expect((await list("source=nul")).data).toHaveLength(0);
  });
});

describe("POST /v1/telemetry/events — validation is all or nothing", () => {
  test("every bad index is named and nothing is stored", async () => {
    const res = await post([
      event({ id: "valid-but-rejected", source: "all-or-nothing" }),
      event({ severity: "loud", source: "all-or-nothing" }),
      event({ source: "all-or-nothing" }),
      event({ type: "", source: "all-or-nothing", occurred_at: "yesterday" }),
    ]);
    expect(res.status).toBe(400);
    const body = await res.json();
    expect(body.error.code).toBe("validation_failed");
    const paths = (body.error.details as { path: string }[]).map((d) => d.path);
    expect(paths).toContain("json.events.1.severity");
    expect(paths).toContain("json.events.3.type");
    expect(paths).toContain("json.events.3.occurred_at");
    expect(paths.some((p) => p.startsWith("json.events.0") || p.startsWith("json.events.2"))).toBe(false);
    expect((await list("source=all-or-nothing")).data).toHaveLength(0);
  });

  test("times outside the accepted window are rejected per index", async () => {
    const res = await post([
      event({ source: "window" }),
      event({ source: "window", occurred_at: new Date(Date.now() + 3_600_000).toISOString() }),
      event({ source: "window", occurred_at: new Date(Date.now() - 400 * 86_400_000).toISOString() }),
    ]);
    expect(res.status).toBe(400);
    const details = (await res.json()).error.details as { path: string; message: string }[];
    expect(details.map((d) => d.path)).toEqual(["json.events.1.occurred_at", "json.events.2.occurred_at"]);
    expect((await list("source=window")).data).toHaveLength(0);
  });

  test.each([
    ["an empty batch", { events: [] }],
    ["more than 1,000 events", { events: Array.from({ length: 1001 }, () => event()) }],
    ["a body that is not a batch", [event()]],
    ["an unknown field", { events: [{ ...event(), extra: 1 }] }],
    ["attributes over the size cap", { events: [event({ attributes: { blob: "x".repeat(17 * 1024) } })] }],
    ["a malformed trace id", { events: [event({ trace_id: "not-hex" })] }],
    ["an id with spaces", { events: [event({ id: "has space" })] }],
  ])("400 for %s", async (_, body) => {
    const res = await t.request("/v1/telemetry/events", { method: "POST", as: "service", json: body });
    expect(res.status).toBe(400);
    expect((await res.json()).error.code).toBe("validation_failed");
  });

  test("malformed JSON is a 400, not a 500", async () => {
    const res = await t.request("/v1/telemetry/events", {
      method: "POST",
      as: "service",
      body: '{"events": [',
      headers: { "Content-Type": "application/json" },
    });
    expect(res.status).toBe(400);
  });
});

describe("GET /v1/telemetry/events — filters and pagination", () => {
  beforeAll(async () => {
    const events = [
      event({ id: "q-1", source: "query-a", type: "t.one", severity: "debug", occurred_at: minutesAgo(50) }),
      event({ id: "q-2", source: "query-a", type: "t.two", severity: "error", occurred_at: minutesAgo(40) }),
      event({ id: "q-3", source: "query-a", type: "t.one", severity: "error", occurred_at: minutesAgo(30) }),
      event({ id: "q-4", source: "query-b", type: "t.one", severity: "critical", occurred_at: minutesAgo(20) }),
      event({ id: "q-5", source: "query-b", type: "t.two", severity: "info", occurred_at: minutesAgo(10) }),
    ];
    expect((await post(events)).status).toBe(202);
  }, 30_000);

  test("filters by source, type, severity and occurred_at range", async () => {
    const ids = async (query: string) => (await list(query)).data.map((e) => e.id).sort();
    expect(await ids("source=query-a")).toEqual(["q-1", "q-2", "q-3"]);
    expect(await ids("source=query-a&type=t.one")).toEqual(["q-1", "q-3"]);
    expect(await ids("source=query-a&severity=error")).toEqual(["q-2", "q-3"]);
    expect(await ids(`type=t.one&from=${encodeURIComponent(minutesAgo(35))}&to=${encodeURIComponent(minutesAgo(15))}`)).toEqual([
      "q-3",
      "q-4",
    ]);
  });

  test("pages cover every match once, newest received first", async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: Awaited<ReturnType<typeof list>> = await list(`source=query-b&limit=1${cursor ? `&cursor=${cursor}` : ""}`);
      seen.push(...page.data.map((e) => e.id));
      cursor = page.next_cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(2);
    expect(seen.sort()).toEqual(["q-4", "q-5"]);
    const all = await list("limit=500");
    const received = all.data.map((e) => (e as unknown as { received_at: string }).received_at);
    expect([...received].sort().reverse()).toEqual(received);
  });

  test.each([
    ["a malformed cursor", "cursor=!!!", "invalid_cursor"],
    ["an unknown severity", "severity=loud", "validation_failed"],
    ["a limit over the maximum", "limit=501", "validation_failed"],
    ["from after to", `from=${encodeURIComponent(minutesAgo(1))}&to=${encodeURIComponent(minutesAgo(5))}`, "validation_failed"],
    ["a malformed time", "from=yesterday", "validation_failed"],
    ["a misspelt filter, which must not widen the result silently", "sevrity=error", "validation_failed"],
  ])("400 for %s", async (_, query, code) => {
    const res = await t.request(`/v1/telemetry/events?${query}`, { as: "operator" });
    expect(res.status).toBe(400);
    expect((await res.json()).error.code).toBe(code);
  });
});

describe("telemetry permissions", () => {
  test("writing needs telemetry:write; reading needs telemetry:read", async () => {
    expect((await t.request("/v1/telemetry/events", { method: "POST", json: { events: [event()] } })).status).toBe(401);
    expect((await t.request("/v1/telemetry/events")).status).toBe(401);
    expect((await post([event()], "readonly")).status).toBe(403);
    expect((await post([event()], "operator")).status).toBe(403);
    expect((await post([event()], "admin")).status).toBe(202);
    for (const role of ["readonly", "operator", "service", "admin"] as const) {
      expect((await t.request("/v1/telemetry/events?limit=1", { as: role })).status).toBe(200);
    }
    expect(
      (await t.request("/v1/telemetry/snapshots", { method: "POST", as: "readonly", json: { source: "x", metrics: { a: 1 } } })).status,
    ).toBe(403);
  });

  test("the ingesting key is recorded with each event", async () => {
    await post([event({ id: "who-ingested" })], "service");
    const { telemetryEvents } = await import("../../src/db/schema");
    const { eq } = await import("drizzle-orm");
    const [row] = await t.deps.database.db.select().from(telemetryEvents).where(eq(telemetryEvents.id, "who-ingested"));
    expect(row?.ingestedBy).toBe(t.keyIds.service);
  });
});
