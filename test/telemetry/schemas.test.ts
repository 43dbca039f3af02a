import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { z } from "@hono/zod-openapi";
import { SEVERITIES } from "../../src/db/schema";
import { CompiledTelemetryBatchInput, MAX_ATTRIBUTES_BYTES, MAX_BATCH, TelemetryBatchInput } from "../../src/telemetry/schemas";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * The route validates a batch with Zod's compiled parser (z.compile), through the schema's
 * safeParseAsync. Zod's own runtime parser, which the route used before, is the reference: for
 * every input, valid or not, the answer must be the same (success, output, and every issue with
 * its path, code and message).
 */
const runtime = (data: unknown) => z.safeParseAsync(TelemetryBatchInput, data);
const routeParse = (data: unknown) => TelemetryBatchInput.safeParseAsync(data);

async function expectSameAnswer(data: unknown) {
  const [expected, actual] = await Promise.all([runtime(data), routeParse(data)]);
  expect(actual.success).toBe(expected.success);
  if (expected.success) expect(actual.data).toEqual(expected.data);
  else expect(actual.error?.issues).toEqual(expected.error.issues);
  return expected.success;
}

const now = Date.now();
const base = (i: number) => ({
  type: "agent.step",
  source: `agent-${i % 16}`,
  severity: "info",
  occurred_at: new Date(now - 60_000).toISOString(),
  attributes: { step: i, host: "bench-host", ok: true },
});

const ABSENT = Symbol("absent");
const FIELD_VALUES: Record<string, unknown[]> = {
  id: [ABSENT, "", "a", "x".repeat(128), "x".repeat(129), "has space", "ok.id:1-_", "ü", 5, null],
  type: [ABSENT, "agent.step", "", " ", "  padded  ", "a".repeat(128), "a".repeat(129), "-lead", "bad type", "a/b:c", "ü", 1, null],
  source: [ABSENT, "agent-1", "", "\tagent\n", "x".repeat(129), "9start", ".dot", [], null],
  severity: [ABSENT, ...SEVERITIES, "INFO", "", null],
  occurred_at: [
    ABSENT,
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00+05:30",
    "2026-01-01T00:00:00-23:59",
    "2026-01-01T00:00Z",
    "2026-01-01t00:00:00z",
    "2026-01-01T00:00:00.123456789Z",
    "2024-02-29T12:00:00Z",
    "2023-02-29T12:00:00Z",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00+00:01",
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:59Z",
    "2026-13-01T00:00:00Z",
    "2026-01-01 00:00:00Z",
    "yesterday",
    123,
    null,
  ],
  attributes: [
    ABSENT,
    {},
    { a: 1, b: [1, { c: "d" }], e: null },
    null,
    [],
    "x",
    { ["k".repeat(256)]: 1 },
    { ["k".repeat(257)]: 1 },
    { blob: "x".repeat(MAX_ATTRIBUTES_BYTES - 11) },
    { blob: "x".repeat(MAX_ATTRIBUTES_BYTES - 10) },
    { text: "€".repeat(5_000) },
    { text: "€".repeat(6_000) },
  ],
  trace_id: [ABSENT, "4bf92f3577b34da6a3ce929d0e0e4736", "0".repeat(32), "4BF92F3577B34DA6A3CE929D0E0E4736", "4bf92f", null],
  extra: [ABSENT, 1],
};

/** A deterministic pseudo-random sequence, so a failure can be replayed. */
function random(seed: number) {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) & 0x7fffffff;
    return state / 0x7fffffff;
  };
}

function mutated(event: Record<string, unknown>, field: string, value: unknown) {
  const copy = { ...event };
  if (value === ABSENT) delete copy[field];
  else copy[field] = value;
  return copy;
}

describe("telemetry batch validation: the compiled parser answers exactly as Zod's runtime parser", () => {
  test("the batch schema is compiled on this runtime", () => {
    expect(CompiledTelemetryBatchInput).not.toBe(TelemetryBatchInput);
  });

  test("a valid 1,000-event batch: the same output", async () => {
    expect(await expectSameAnswer({ events: Array.from({ length: MAX_BATCH }, (_, i) => base(i)) })).toBe(true);
  });

  test("every value of every field, one at a time", async () => {
    let valid = 0;
    for (const [field, values] of Object.entries(FIELD_VALUES)) {
      for (const value of values) {
        if (await expectSameAnswer({ events: [base(0), mutated(base(1), field, value)] })) valid++;
      }
    }
    // both kinds were exercised
    expect(valid).toBeGreaterThan(20);
  });

  test("the batch around the events", async () => {
    for (const body of [
      { events: [] },
      { events: Array.from({ length: MAX_BATCH + 1 }, (_, i) => base(i)) },
      { events: base(0) },
      { events: [base(0)], extra: true },
      { events: [null, 1, "x", [], base(0)] },
      [base(0)],
      null,
      "events",
      {},
    ]) {
      await expectSameAnswer(body);
    }
  });

  test("2,000 random batches of several mutated events", async () => {
    const next = random(20_261_203);
    const fields = Object.keys(FIELD_VALUES);
    let valid = 0;
    for (let round = 0; round < 2_000; round++) {
      const events = Array.from({ length: 1 + Math.floor(next() * 5) }, (_, i) => {
        let event: Record<string, unknown> = base(i);
        const changes = Math.floor(next() * 4);
        for (let c = 0; c < changes; c++) {
          const field = fields[Math.floor(next() * fields.length)]!;
          const values = FIELD_VALUES[field]!;
          event = mutated(event, field, values[Math.floor(next() * values.length)]);
        }
        return event;
      });
      if (await expectSameAnswer({ events })) valid++;
    }
    expect(valid).toBeGreaterThan(100);
    expect(valid).toBeLessThan(1_900);
  });
});
