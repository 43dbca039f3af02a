import { describe, expect, test } from "bun:test";
import { adoptMedianRound, latencyResult } from "../../bench/lib/drive";
import type { LatencyResult } from "../../bench/lib/report";

const round = (p99: number | undefined, extra: Partial<LatencyResult> = {}): LatencyResult => ({
  ...latencyResult("B4-one", "5000 waiters", 5000, 1),
  ...(p99 === undefined ? {} : { p50_ms: p99 / 2, p99_ms: p99, max_ms: p99 + 1, extra_rss_mib: p99 / 10 }),
  ...extra,
});

describe("a latency scenario's rounds", () => {
  test("the figures are the median round's by p99, with every round's p99 in round order; the scenario's errors stay its own", () => {
    const result = latencyResult("B4-one", "5000 waiters", 5000, 1);
    result.errors.push("round 4: refused");
    adoptMedianRound(result, [round(169), round(95, { errors: ["not copied"] }), round(240)]);
    expect(result).toMatchObject({ p50_ms: 84.5, p99_ms: 169, max_ms: 170, extra_rss_mib: 16.9, p99_rounds_ms: [169, 95, 240] });
    expect(result.errors).toEqual(["round 4: refused"]);
  });

  test("an even count takes the lower middle round; rounds without figures are left out; none leaves the scenario empty", () => {
    const even = latencyResult("B5-sse", "1000 streams", 1000, 1);
    adoptMedianRound(even, [round(60), round(undefined), round(40), round(90), round(50)]);
    expect(even.p99_ms).toBe(50);
    expect(even.p99_rounds_ms).toEqual([60, 40, 90, 50]);

    const none = latencyResult("B5-sse", "1000 streams", 1000, 1);
    adoptMedianRound(none, [round(undefined)]);
    expect(none.p99_ms).toBeUndefined();
    expect(none.p99_rounds_ms).toBeUndefined();
  });
});
