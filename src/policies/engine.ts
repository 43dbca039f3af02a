import { Environment } from "@marcbachmann/cel-js";
import type { DecisionPriority, PolicyOutcome, PolicyState } from "../db/schema";

/**
 * Policy rules in CEL (Common Expression Language), with @marcbachmann/cel-js. A rule is checked
 * when it is saved (syntax, variables, fields of `decision`, functions, result type, size, nesting)
 * and evaluated fail-closed: any error, a missing field, a non-boolean result or an exhausted budget
 * is "no match", and a rule can never approve what it failed to evaluate.
 */

/** Longest expression saved, in characters. */
export const EXPRESSION_MAX_CHARS = 4096;
/** Structural bounds, enforced by the parser. */
const LIMITS = { maxAstNodes: 400, maxDepth: 24, maxListElements: 200, maxMapEntries: 100, maxCallArguments: 8 };
/** Comprehensions (exists, all, map, filter…) nested deeper than this are refused when saved. */
export const MAX_COMPREHENSION_NESTING = 2;
/** List elements and map entries a rule may read from `payload` and `context` per evaluation: the cost bound. */
export const EVALUATION_BUDGET = 10_000;
/**
 * Wall-clock bound of one rule's evaluation, checked as it reads the payload: work between reads is
 * bounded by the expression's size, so a rule that is slow is one that reads, and it is cut here.
 */
export const EVALUATION_TIME_LIMIT_MS = 50;
/**
 * Functions refused when saved. `matches` runs a regular expression with JavaScript's backtracking
 * engine (a pattern such as `(a+)+$` over a payload string can take minutes); `join` and `cel.bind`
 * can build strings whose size multiplies with the payload's.
 */
const FORBIDDEN_FUNCTIONS: Record<string, string> = {
  matches: "matches() is not available (JavaScript regular expressions can backtrack without bound); use contains, startsWith or endsWith",
  join: "join() is not available in rules (it builds strings as large as the payload allows)",
  bind: "cel.bind() is not available in rules",
};
const COMPREHENSIONS = new Set(["all", "exists", "exists_one", "map", "filter"]);
const VARIABLES = new Set(["decision", "payload", "context", "now"]);

/** The variables a rule sees. */
export const ENVIRONMENT_DEFINITIONS = {
  decision: "kind, priority, title, required_approvals (int) and requester { id, name, role }",
  payload: "the decision's payload (any JSON); integers arrive as int",
  context: "the decision's context (a map)",
  now: "the evaluation time (timestamp)",
} as const;

const environment = new Environment({ limits: LIMITS, homogeneousAggregateLiterals: false })
  .registerVariable({
    name: "decision",
    schema: {
      kind: "string",
      priority: "string",
      title: "string",
      required_approvals: "int",
      requester: { id: "string", name: "string", role: "string" },
    },
  })
  .registerVariable("payload", "dyn")
  .registerVariable("context", "map")
  .registerVariable("now", "google.protobuf.Timestamp");

/** Why an expression was refused: a message and the character range it names (0-based, end exclusive). */
export interface ExpressionProblem {
  code: string;
  message: string;
  position: { start: number; end: number } | null;
}

type Program = ReturnType<typeof environment.parse>;

export interface CompiledRule {
  program: Program;
  /** the expression reads no variable at all (its value is a constant) */
  constant: boolean;
}

interface AstNode {
  op: string;
  args: unknown;
  start?: number;
  end?: number;
}
const isNode = (value: unknown): value is AstNode =>
  typeof value === "object" && value !== null && typeof (value as AstNode).op === "string" && "args" in value;

function problem(code: string, message: string, node?: { start?: number; end?: number } | null): ExpressionProblem {
  return {
    code,
    message,
    position: node && typeof node.start === "number" ? { start: node.start, end: node.end ?? node.start } : null,
  };
}

/** The first line of a library error (the rest is a source excerpt with a caret). */
const summary = (error: unknown) =>
  String((error as { summary?: string }).summary ?? (error as Error).message ?? error)
    .split("\n")[0]!
    .slice(0, 300);

/** Walks the AST for what the type checker does not refuse: forbidden functions, nesting, variables read. */
function inspect(root: AstNode): { problem?: ExpressionProblem; readsVariables: boolean } {
  let readsVariables = false;
  let found: ExpressionProblem | undefined;
  const visit = (node: AstNode, nesting: number) => {
    if (found) return;
    let depth = nesting;
    if (node.op === "id" && typeof node.args === "string" && VARIABLES.has(node.args)) readsVariables = true;
    if ((node.op === "call" || node.op === "rcall") && Array.isArray(node.args) && typeof node.args[0] === "string") {
      const name = node.args[0];
      if (FORBIDDEN_FUNCTIONS[name]) {
        found = problem("forbidden_function", FORBIDDEN_FUNCTIONS[name], node);
        return;
      }
      if (node.op === "rcall" && COMPREHENSIONS.has(name)) {
        depth += 1;
        if (depth > MAX_COMPREHENSION_NESTING) {
          found = problem(
            "too_costly",
            `comprehensions (exists, all, map, filter) may nest at most ${MAX_COMPREHENSION_NESTING} deep`,
            node,
          );
          return;
        }
      }
    }
    const walk = (value: unknown) => {
      if (isNode(value)) visit(value, depth);
      else if (Array.isArray(value)) for (const item of value) walk(item);
    };
    walk(node.args);
  };
  visit(root, 0);
  return { problem: found, readsVariables };
}

/** Parses and type-checks an expression: the compiled rule, or the problem with its position. */
export function compileRule(expression: string): { rule: CompiledRule } | { problem: ExpressionProblem } {
  if (expression.trim() === "") return { problem: problem("empty_expression", "the expression is empty") };
  if (expression.length > EXPRESSION_MAX_CHARS) {
    return { problem: problem("expression_too_long", `the expression exceeds ${EXPRESSION_MAX_CHARS} characters`) };
  }
  let program: Program;
  try {
    program = environment.parse(expression);
  } catch (error) {
    const range = (error as { range?: { start: number; end: number } }).range;
    const code = String((error as { code?: string }).code ?? "syntax_error");
    const limit = /limit|exceed|too (many|deep)|maximum/i.test(summary(error));
    return { problem: problem(limit ? "expression_too_complex" : "syntax_error", `${summary(error)} (${code})`, range) };
  }
  const inspected = inspect(program.ast as unknown as AstNode);
  if (inspected.problem) return { problem: inspected.problem };
  const checked = program.check();
  if (!checked.valid) {
    const error = checked.error as { code?: string; range?: { start: number; end: number } };
    return { problem: problem("type_error", `${summary(checked.error)} (${error.code ?? "type_error"})`, error.range) };
  }
  const type = String(checked.type);
  if (type !== "bool" && type !== "dyn") {
    return {
      problem: problem("not_boolean", `the expression must be a condition (bool); it is ${type}`, { start: 0, end: expression.length }),
    };
  }
  return { rule: { program, constant: !inspected.readsVariables } };
}

// ── Evaluation ──────────────────────────────────────────────────────────────────────────────────
/** What a rule is evaluated against. */
export interface RuleInput {
  decision: {
    kind: string;
    priority: DecisionPriority;
    title: string;
    required_approvals: number;
    requester: { id: string; name: string; role: string };
  };
  payload: unknown;
  context: Record<string, unknown>;
  now: Date;
}

class BudgetExceeded extends Error {
  constructor(
    readonly code: "budget_exceeded" | "evaluation_timeout",
    message: string,
  ) {
    super(message);
  }
}

/** One evaluation's meter of list elements and map entries read, and its deadline; shared, reset per rule. */
interface Meter {
  used: number;
  deadline: number;
}

const charge = (meter: Meter) => {
  if (++meter.used > EVALUATION_BUDGET)
    throw new BudgetExceeded("budget_exceeded", `the rule read more than ${EVALUATION_BUDGET} elements`);
  if (performance.now() > meter.deadline) {
    throw new BudgetExceeded("evaluation_timeout", `the rule ran longer than ${EVALUATION_TIME_LIMIT_MS} ms`);
  }
};

/**
 * JSON as CEL sees it: integral numbers become int (BigInt) so `payload.amount < 100` compares ints,
 * other numbers stay double; arrays and objects are wrapped so each element read is charged to the meter.
 */
function toCel(value: unknown, meter: Meter): unknown {
  if (typeof value === "number") return Number.isSafeInteger(value) ? BigInt(value) : value;
  if (Array.isArray(value)) {
    const items = value.map((item) => toCel(item, meter));
    return new Proxy(items, {
      get(target, key, receiver) {
        if (typeof key === "string" && key !== "length" && /^\d+$/.test(key)) charge(meter);
        return Reflect.get(target, key, receiver);
      },
    });
  }
  if (value !== null && typeof value === "object") {
    const object: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) object[key] = toCel(item, meter);
    return new Proxy(object, {
      get(target, key, receiver) {
        if (typeof key === "string") charge(meter);
        return Reflect.get(target, key, receiver);
      },
      has(target, key) {
        charge(meter);
        return Reflect.has(target, key);
      },
      ownKeys(target) {
        const keys = Reflect.ownKeys(target);
        meter.used += keys.length - 1;
        charge(meter);
        return keys;
      },
    });
  }
  return value;
}

/** The evaluation context of one decision, converted once and shared by every rule evaluated on it. */
export interface PreparedInput {
  vars: Record<string, unknown>;
  meter: Meter;
}

export function prepareInput(input: RuleInput): PreparedInput {
  const meter: Meter = { used: 0, deadline: Number.POSITIVE_INFINITY };
  return {
    meter,
    vars: {
      decision: {
        kind: input.decision.kind,
        priority: input.decision.priority,
        title: input.decision.title,
        required_approvals: BigInt(input.decision.required_approvals),
        requester: input.decision.requester,
      },
      payload: toCel(input.payload, meter),
      context: toCel(input.context ?? {}, meter),
      now: input.now,
    },
  };
}

export type RuleResult = { matched: true } | { matched: false; error?: { code: string; message: string } };

/** Evaluates one compiled rule: matched only on a boolean `true`; every error is "no match". */
export function evaluateRule(rule: CompiledRule, input: PreparedInput): RuleResult {
  input.meter.used = 0;
  input.meter.deadline = performance.now() + EVALUATION_TIME_LIMIT_MS;
  let value: unknown;
  try {
    value = rule.program(input.vars);
  } catch (error) {
    const code = String((error as { code?: string }).code ?? "evaluation_error");
    return { matched: false, error: { code, message: summary(error) } };
  }
  if (value === true) return { matched: true };
  if (value === false) return { matched: false };
  return { matched: false, error: { code: "not_boolean", message: `the rule returned ${typeof value}, not a bool` } };
}

/** A missing field is an ordinary "no match"; other errors also stop later rules from approving. */
export const isMissingField = (error: { code: string } | undefined) => error?.code === "no_such_key";

/**
 * Whether an approve rule would match nearly any decision: it reads no variable, or it matches two
 * decisions with nothing in common (different kinds and requesters, empty payload and context).
 * Such a rule is saved only with `confirm_broad: true`, and logged.
 */
export function isBroad(rule: CompiledRule): boolean {
  if (rule.constant) {
    const result = evaluateRule(rule, prepareInput(probe("x", {})));
    return result.matched;
  }
  const probes = [probe("zz.unlikely-kind", {}), probe("a", null), probe("refund", { amount: 0 })];
  return probes.every((input) => evaluateRule(rule, prepareInput(input)).matched);
}

function probe(kind: string, payload: unknown): RuleInput {
  return {
    decision: {
      kind,
      priority: "medium",
      title: "probe",
      required_approvals: 1,
      requester: { id: "00000000-0000-7000-8000-000000000000", name: `probe-${kind}`, role: "service" },
    },
    payload,
    context: {},
    now: new Date(0),
  };
}

// ── Rule sets ───────────────────────────────────────────────────────────────────────────────────
/** A saved rule, compiled, as the evaluator uses it. */
export interface ActiveRule {
  id: string;
  version: number;
  name: string;
  state: Exclude<PolicyState, "disabled">;
  position: number;
  outcome: PolicyOutcome;
  reason: string | null;
  requiredApprovals: number | null;
  priority: DecisionPriority | null;
  compiled: CompiledRule;
}

export interface RuleRef {
  policy_id: string;
  version: number;
  name: string;
  outcome: PolicyOutcome;
}

/** What the policies said about one decision (stored on it as `policy_evaluation`). */
export interface Evaluation {
  /** the enforced rule that decides (approve, deny) or demands people (require); null when none matched */
  matched: (RuleRef & { reason: string | null; required_approvals: number | null; priority: DecisionPriority | null }) | null;
  /** an approve that matched but was not applied because an earlier enforced rule failed to evaluate */
  suppressed?: RuleRef;
  /** shadow rules: what each would have done (`none` when it did not match) */
  shadow: (Omit<RuleRef, "outcome"> & { outcome: PolicyOutcome | "none"; error?: string })[];
  /** enforced rules that failed to evaluate (counted as no match) */
  errors: (Omit<RuleRef, "outcome"> & { code: string; message: string })[];
}

const ref = (rule: ActiveRule): RuleRef => ({ policy_id: rule.id, version: rule.version, name: rule.name, outcome: rule.outcome });

/**
 * Evaluates the rules in order: the first enforced match wins; shadow rules are all evaluated and
 * recorded, never applied. Fail closed: an enforced rule that errors (other than on a missing field)
 * stops every later approve from applying, so a broken deny can never let an approval through.
 */
export function evaluateRules(rules: readonly ActiveRule[], input: RuleInput): Evaluation {
  const prepared = prepareInput(input);
  const evaluation: Evaluation = { matched: null, shadow: [], errors: [] };
  let blockApprove = false;
  for (const rule of rules) {
    const enforced = rule.state === "enforce";
    if (enforced && evaluation.matched) continue;
    const result = evaluateRule(rule.compiled, prepared);
    if (rule.state === "shadow") {
      evaluation.shadow.push({
        policy_id: rule.id,
        version: rule.version,
        name: rule.name,
        outcome: result.matched ? rule.outcome : "none",
        ...(!result.matched && result.error ? { error: `${result.error.code}: ${result.error.message}` } : {}),
      });
      continue;
    }
    if (!result.matched) {
      if (result.error) {
        evaluation.errors.push({ policy_id: rule.id, version: rule.version, name: rule.name, ...result.error });
        if (!isMissingField(result.error)) blockApprove = true;
      }
      continue;
    }
    if (rule.outcome === "approve" && blockApprove) {
      evaluation.suppressed ??= ref(rule);
      continue;
    }
    evaluation.matched = {
      ...ref(rule),
      reason: rule.reason,
      required_approvals: rule.requiredApprovals,
      priority: rule.priority,
    };
  }
  return evaluation;
}
