import { describe, expect, test } from "bun:test";
import {
  type ActiveRule,
  compileRule,
  evaluateRule,
  evaluateRules,
  isBroad,
  prepareInput,
  type RuleInput,
} from "../../src/policies/engine";

/** The evaluator on its own (no database): what the HTTP tests rely on, case by case. */
const input = (payload: unknown, context: Record<string, unknown> = {}): RuleInput => ({
  decision: {
    kind: "refund",
    priority: "medium",
    title: "Refund 1042",
    required_approvals: 1,
    requester: { id: "0193a5b2-7c1e-7d3a-9f4e-2b6c8d0e1f2a", name: "support-bot", role: "service" },
  },
  payload,
  context,
  now: new Date("2026-11-02T10:00:00Z"),
});

function compiled(expression: string) {
  const result = compileRule(expression);
  if ("problem" in result) throw new Error(`${expression}: ${result.problem.message}`);
  return result.rule;
}
const run = (expression: string, payload: unknown, context: Record<string, unknown> = {}) =>
  evaluateRule(compiled(expression), prepareInput(input(payload, context)));

let position = 0;
const rule = (expression: string, outcome: ActiveRule["outcome"], state: ActiveRule["state"] = "enforce"): ActiveRule => ({
  id: `00000000-0000-7000-8000-${String(++position).padStart(12, "0")}`,
  version: 1,
  name: `rule ${position}`,
  state,
  position,
  outcome,
  reason: null,
  requiredApprovals: null,
  priority: null,
  compiled: compiled(expression),
});

describe("evaluation", () => {
  test("only a boolean true matches", () => {
    expect(run("payload.ok", { ok: true })).toEqual({ matched: true });
    expect(run("payload.ok", { ok: false })).toEqual({ matched: false });
    for (const value of ["true", 1, null, [true], { a: true }]) expect(run("payload.ok", { ok: value }).matched).toBe(false);
  });

  test("inherited properties are not fields: a payload cannot pretend to have constructor or toString", () => {
    expect(run("has(payload.constructor) || has(payload.toString)", { a: 1 }).matched).toBe(false);
    expect(run('"constructor" in payload', { a: 1 }).matched).toBe(false);
    expect(run("payload.constructor == null", { a: 1 })).toMatchObject({ matched: false, error: { code: "no_such_key" } });
  });

  test("ints and doubles: JSON integers are ints, fractions doubles; they compare as numbers", () => {
    expect(run("payload.n == 3 && payload.n < 3.5 && payload.f > 2 && payload.f < 3", { n: 3, f: 2.5 }).matched).toBe(true);
    expect(run("payload.big > 4294967296 && payload.big + 1 == 9007199254740992", { big: 9007199254740991 }).matched).toBe(true);
    expect(run("decision.required_approvals + 1 == 2", {}).matched).toBe(true);
    // int overflow is an error: no match
    expect(run("payload.big * payload.big > 0", { big: 9007199254740991 })).toMatchObject({ matched: false, error: {} });
  });

  test("the read budget covers nested lists and maps", () => {
    const rows = Array.from({ length: 200 }, (_, i) => ({ id: i, tags: ["a", "b"] }));
    expect(run("payload.rows.exists(r, r.id == 199)", { rows }).matched).toBe(true);
    expect(run("payload.rows.all(r, payload.rows.all(s, r.id + s.id >= 0))", { rows })).toMatchObject({
      matched: false,
      error: { code: "budget_exceeded" },
    });
    const wide = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`k${i}`, i]));
    expect(run("size(payload) > 0 && payload.all(k, k != 'zz')", wide)).toMatchObject({ matched: false, error: {} });
  });
});

describe("rule sets", () => {
  test("the first enforced match wins; shadow rules are all recorded and never applied", () => {
    const rules = [
      rule("payload.amount < 1000", "approve", "shadow"),
      rule("payload.amount > 10", "require"),
      rule("payload.amount > 5", "deny"),
      rule("payload.amount > 0", "deny", "shadow"),
    ];
    const evaluation = evaluateRules(rules, input({ amount: 50 }));
    expect(evaluation.matched).toMatchObject({ policy_id: rules[1]!.id, outcome: "require" });
    expect(evaluation.shadow.map((s) => s.outcome)).toEqual(["approve", "deny"]);
  });

  test("an enforced error other than a missing field suppresses every later approve", () => {
    const rules = [rule("payload.a / payload.b > 1", "deny"), rule("payload.amount < 100", "approve")];
    const broken = evaluateRules(rules, input({ a: 1, b: 0, amount: 1 }));
    expect(broken.matched).toBeNull();
    expect(broken.suppressed).toMatchObject({ policy_id: rules[1]!.id });
    const missing = evaluateRules(rules, input({ amount: 1 }));
    expect(missing.matched).toMatchObject({ outcome: "approve" });
    expect(missing.errors[0]).toMatchObject({ code: "no_such_key" });
    // A later deny still applies after a failed rule.
    const deny = evaluateRules(
      [rule("payload.a / payload.b > 1", "deny"), rule("payload.amount < 100", "deny")],
      input({ a: 1, b: 0, amount: 1 }),
    );
    expect(deny.matched).toMatchObject({ outcome: "deny" });
  });
});

describe("saving", () => {
  test("problems name their position", () => {
    const problem = (expression: string) => {
      const result = compileRule(expression);
      return "problem" in result ? result.problem : undefined;
    };
    expect(problem('decision.kind == "refund" &&')).toMatchObject({ code: "syntax_error", position: { start: 28 } });
    expect(problem("decision.amount > 1")).toMatchObject({ code: "type_error", position: { start: 9, end: 15 } });
    expect(problem("payloads.amount > 1")).toMatchObject({ code: "type_error", position: { start: 0, end: 8 } });
    expect(problem("decision.kind")).toMatchObject({ code: "not_boolean" });
    expect(problem("payload.a.join(',') == ''")).toMatchObject({ code: "forbidden_function" });
    expect(problem("cel.bind(x, payload.a, x == 1)")).toMatchObject({ code: "forbidden_function" });
    expect(problem("payload.a == 1")).toBeUndefined();
  });

  test("broad: a constant true or a condition unrelated decisions all meet", () => {
    for (const expression of ["true", "1 < 2", 'decision.kind != "x.y"', "size(decision.title) > 0", "!has(payload.nope) || true"]) {
      expect(isBroad(compiled(expression))).toBe(true);
    }
    for (const expression of [
      "false",
      'decision.kind == "refund"',
      "payload.amount < 100",
      "has(payload.amount)",
      'decision.requester.name == "support-bot"',
    ]) {
      expect(isBroad(compiled(expression))).toBe(false);
    }
  });
});
