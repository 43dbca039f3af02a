import { describe, expect, test } from "bun:test";
import { z } from "@hono/zod-openapi";
import { keyCount, PLAIN_UUID, withFastPath } from "../../src/http/fast-validation";

const Id = z.object({ id: z.uuid() }).strict();

describe("validation fast path", () => {
  test("recognised input skips zod and gives what zod gives; anything else is zod's own answer", async () => {
    let fastHits = 0;
    const fast = withFastPath(Id, (value) => {
      const { id } = value as { id?: unknown };
      if (typeof id !== "string" || keyCount(value as object) !== 1 || !PLAIN_UUID.test(id)) return undefined;
      fastHits++;
      return { id };
    });
    const inputs: unknown[] = [
      { id: "0193a5b2-7c1e-7d3a-9f4e-2b6c8d0e1f2a" },
      { id: "0193A5B2-7C1E-7D3A-9F4E-2B6C8D0E1F2A" },
      { id: "00000000-0000-0000-0000-000000000000" },
      { id: "0193a5b2-7c1e-7d3a-9f4e-2b6c8d0e1f2" },
      { id: "0193a5b2-7c1e-9d3a-9f4e-2b6c8d0e1f2a" },
      { id: "not-a-uuid" },
      { id: "0193a5b2-7c1e-7d3a-9f4e-2b6c8d0e1f2a", extra: "1" },
      {},
    ];
    for (const input of inputs) expect(await fast.safeParseAsync(input)).toEqual(await Id.safeParseAsync(input));
    expect(fastHits).toBe(1);
  });

  test("PLAIN_UUID accepts only what z.uuid() accepts", () => {
    const uuid = z.uuid();
    for (let i = 0; i < 2_000; i++) {
      const candidate = crypto
        .randomUUID()
        .replace(/^(.{14})./, `$1${"0123456789abcdef"[i % 16]}`)
        .replace(/^(.{19})./, `$1${"0123456789abcdef"[(i >> 4) % 16]}`);
      if (PLAIN_UUID.test(candidate)) expect(uuid.safeParse(candidate).success).toBe(true);
    }
  });
});

describe("the decision routes' fast paths", () => {
  test("the id and the long-poll wait parse exactly as their schemas do", async () => {
    const { DecisionId, WaitQuery } = await import("../../src/decisions/routes");
    const schemas = await import("../../src/decisions/schemas");
    const ids: unknown[] = [
      { id: "0193a5b2-7c1e-7d3a-9f4e-2b6c8d0e1f2a" },
      { id: "0193A5B2-7C1E-7D3A-9F4E-2B6C8D0E1F2A" },
      { id: "0193a5b2-7c1e-7d3a-cf4e-2b6c8d0e1f2a" },
      { id: "x" },
      { id: "0193a5b2-7c1e-7d3a-9f4e-2b6c8d0e1f2a", more: "y" },
    ];
    for (const input of ids) expect(await DecisionId.safeParseAsync(input)).toEqual(await schemas.DecisionId.safeParseAsync(input));
    const waits: unknown[] = [{}, { wait: "0" }, { wait: "05" }, { wait: "55" }, { wait: "56" }, { wait: "99" }, { wait: "100" }];
    waits.push(
      { wait: "-1" },
      { wait: "1.5" },
      { wait: " 5" },
      { wait: "" },
      { wait: "abc" },
      { wait: ["1", "2"] },
      { wait: "5", x: "1" },
      { x: "1" },
    );
    for (const input of waits) expect(await WaitQuery.safeParseAsync(input)).toEqual(await schemas.WaitQuery.safeParseAsync(input));
  });
});
