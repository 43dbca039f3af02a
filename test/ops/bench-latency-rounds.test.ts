import { describe, expect, test } from "bun:test";
import { adoptMedianRound, latencyResult } from "../../bench/lib/drive";
import type { LatencyResult } from "../../bench/lib/report";

const round = (p99: number | undefined, extra: Partial<LatencyResult> = {}): LatencyResult => ({
  ...latencyResult("B4-one", "5000 waiters", 5000, 1),
  ...(p99 === undefined ? {} : { p50_ms: p99 / 2, p99_ms: p99, max_ms: p99 + 1, extra_rss_mib: p99 / 10 }),
  ...extra,
});

describe("a latency scenario's rounds", () => {
  test("timings are the median round's by p99, with every round's p99 in round order; the scenario's errors stay its own", () => {
    const result = latencyResult("B4-one", "5000 waiters", 5000, 1);
    result.errors.push("round 4: refused");
    adoptMedianRound(result, [round(169), round(95, { errors: ["not copied"] }), round(240)]);
    expect(result).toMatchObject({ p50_ms: 84.5, p99_ms: 169, max_ms: 170, p99_rounds_ms: [169, 95, 240] });
    expect(result.errors).toEqual(["round 4: refused"]);
  });

  test("memory is the round's that grew the most, whichever its timings", () => {
    const result = latencyResult("B4-one", "5000 waiters", 5000, 1);
    const memory = (before: number, peak: number) => ({
      rss_before_mib: before,
      rss_peak_mib: peak,
      extra_rss_mib: peak - before,
      kib_per_client: ((peak - before) * 1024) / 5000,
    });
    // The first round starts from a small heap; the later ones after a burst had grown it.
    adoptMedianRound(result, [round(180, memory(120, 200)), round(170, memory(680, 690)), round(190, memory(690, 700))]);
    expect(result).toMatchObject({ p99_ms: 180, rss_before_mib: 120, rss_peak_mib: 200, extra_rss_mib: 80, kib_per_client: 16.384 });
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
