/**
 * Policy evaluation cost per decision with 1, 10 and 100 active rules: the CPU time of evaluating
 * every rule on one decision (converting its payload for CEL included), as at decision creation.
 * The rules are realistic (kinds, amounts, environments, list membership, a comprehension) and none
 * of them matches, so every rule runs: the worst case for a rule set of that size.
 *
 *   bun run bench:policies            # prints a table; --json for the figures
 */
import { type ActiveRule, compileRule, evaluateRules, type RuleInput } from "../src/policies/engine";

const TEMPLATES = [
  (i: number) => `decision.kind == "refund.${i}" && payload.amount < ${100 + i} && payload.env != "prod"`,
  (i: number) => `decision.kind == "deploy" && payload.service == "svc-${i}" && payload.rollout.percent <= ${i % 100}`,
  (i: number) => `payload.amount > ${1_000_000 + i} && decision.requester.role == "service"`,
  (i: number) => `"region-${i}" in payload.rollout.regions && decision.priority == "low"`,
  (i: number) => `payload.rollout.regions.exists(r, r.startsWith("zz-${i}"))`,
  (i: number) => `has(payload.ticket_${i}) && context.team == "t${i}"`,
];

function rules(count: number): ActiveRule[] {
  return Array.from({ length: count }, (_, i) => {
    const compiled = compileRule(TEMPLATES[i % TEMPLATES.length]!(i));
    if ("problem" in compiled) throw new Error(compiled.problem.message);
    return {
      id: `00000000-0000-7000-8000-${String(i).padStart(12, "0")}`,
      version: 1,
      name: `rule ${i}`,
      state: "enforce",
      position: i,
      outcome: i % 3 === 0 ? "deny" : i % 3 === 1 ? "approve" : "require",
      reason: "bench",
      requiredApprovals: null,
      priority: null,
      compiled: compiled.rule,
    } satisfies ActiveRule;
  });
}

const input: RuleInput = {
  decision: {
    kind: "deploy",
    priority: "medium",
    title: "Deploy checkout 2.4.1",
    required_approvals: 1,
    requester: { id: "0193a5b2-7c1e-7d3a-9f4e-2b6c8d0e1f2a", name: "deploy-bot", role: "service" },
  },
  payload: {
    service: "checkout",
    version: "2.4.1",
    amount: 250,
    env: "prod",
    rollout: { percent: 100, regions: ["eu-west-1", "us-east-1"] },
  },
  context: { team: "payments", ticket: "OPS-1042" },
  now: new Date(),
};

function measure(count: number) {
  const set = rules(count);
  const iterations = Math.max(2_000, Math.round(200_000 / count));
  for (let i = 0; i < Math.min(iterations, 2_000); i++) evaluateRules(set, input); // warm-up
  const samples = new Float64Array(iterations);
  for (let i = 0; i < iterations; i++) {
    const started = performance.now();
    const evaluation = evaluateRules(set, input);
    samples[i] = (performance.now() - started) * 1000;
    if (evaluation.matched) throw new Error("a bench rule matched: every rule must run");
  }
  samples.sort();
  const mean = samples.reduce((a, b) => a + b, 0) / iterations;
  const at = (q: number) => samples[Math.min(iterations - 1, Math.floor(q * iterations))]!;
  return { rules: count, iterations, mean_us: mean, p50_us: at(0.5), p99_us: at(0.99), per_rule_us: mean / count };
}

const results = [1, 10, 100].map(measure);
if (process.argv.includes("--json")) console.log(JSON.stringify(results, null, 2));
else {
  console.log(
    `policy evaluation per decision (${process.versions.bun ? `Bun ${Bun.version}` : "node"}, every rule evaluated, none matching)`,
  );
  console.log("rules  mean µs  p50 µs  p99 µs  µs/rule");
  for (const r of results) {
    console.log(
      `${String(r.rules).padStart(5)}  ${r.mean_us.toFixed(1).padStart(7)}  ${r.p50_us.toFixed(1).padStart(6)}  ${r.p99_us.toFixed(1).padStart(6)}  ${r.per_rule_us.toFixed(2).padStart(7)}`,
    );
  }
}
