import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { inArray, sql } from "drizzle-orm";
import { decisions, policies } from "../../src/db/schema";
import { act, auditTrail, createDecision, type JsonBody, manualClock } from "../decisions/helpers";
import { startTestApp, type TestApp } from "../helpers/app";

setDefaultTimeout(30_000);

const clock = manualClock(new Date("2026-11-02T10:00:00Z"));
let t: TestApp;

beforeAll(async () => {
  t = await startTestApp({ clock });
});
afterAll(() => t.close());
// Every test starts with no rule: delete whatever the last one saved.
afterEach(async () => {
  await t.deps.database.db.update(policies).set({ deletedAt: clock.now() }).where(sql`deleted_at is null`);
});

async function savePolicy(body: Record<string, unknown>): Promise<JsonBody> {
  const res = await t.request("/v1/policies", { method: "POST", as: "admin", json: { state: "enforce", ...body } });
  if (res.status !== 201) throw new Error(`create policy answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as JsonBody;
}

const refund = (payload: unknown, extra: Record<string, unknown> = {}) =>
  createDecision(t, { kind: "refund", title: "Refund order 1042", payload, ...extra });

describe("outcomes", () => {
  test("approve: auto-approved with no human; decided_by policy with the rule id and version; the audit row says so", async () => {
    const rule = await savePolicy({
      name: "small refunds outside prod",
      expression: 'decision.kind == "refund" && payload.amount < 100 && payload.env != "prod"',
      outcome: "approve",
    });
    const decided = await refund({ amount: 40, env: "staging" });
    expect(decided.status).toBe("approved");
    expect(decided.decided_by).toBe("policy");
    expect(decided.policy_id).toBe(rule.id);
    expect(decided.policy_version).toBe(1);
    expect(decided.resolved_by).toBeNull();
    expect(decided.approvals).toEqual([]);
    expect(decided.policy_evaluation.matched).toMatchObject({ policy_id: rule.id, version: 1, outcome: "approve" });
    const trail = await auditTrail(t, decided.id);
    expect(trail.map((e) => e.type)).toEqual(["created", "approved"]);
    expect(trail[1]).toMatchObject({ actorKeyId: null, fromStatus: "pending", toStatus: "approved" });
    expect(trail[1]!.data).toMatchObject({ decided_by: "policy", policy_id: rule.id, policy_version: 1, policy_name: rule.name });

    // Not matched (prod, or too large): a human decides.
    expect((await refund({ amount: 40, env: "prod" })).status).toBe("pending");
    expect((await refund({ amount: 400, env: "dev" })).status).toBe("pending");
  });

  test("deny: rejected with the rule's reason", async () => {
    const rule = await savePolicy({
      name: "no prod database drops",
      expression: 'decision.kind == "db.drop" && payload.env == "prod"',
      outcome: "deny",
      reason: "dropping a production database is never approved here",
    });
    const decided = await createDecision(t, { kind: "db.drop", title: "Drop orders", payload: { env: "prod", db: "orders" } });
    expect(decided).toMatchObject({ status: "rejected", decided_by: "policy", policy_id: rule.id, policy_version: 1 });
    expect(decided.resolution_reason).toBe("dropping a production database is never approved here");
    const trail = await auditTrail(t, decided.id);
    expect(trail.at(-1)).toMatchObject({ type: "rejected", actorKeyId: null, reason: decided.resolution_reason });
  });

  test("a deny rule needs a reason", async () => {
    const res = await t.request("/v1/policies", {
      method: "POST",
      as: "admin",
      json: { name: "x", expression: "decision.kind == 'a'", outcome: "deny" },
    });
    expect(res.status).toBe(400);
  });

  test("require: a human decides; the quorum and priority are raised, never lowered", async () => {
    const rule = await savePolicy({
      name: "large refunds need two people",
      expression: "payload.amount >= 1000",
      outcome: "require",
      required_approvals: 2,
      priority: "high",
    });
    const raised = await refund({ amount: 5000 });
    expect(raised).toMatchObject({ status: "pending", required_approvals: 2, priority: "high", decided_by: null, policy_id: null });
    expect(raised.policy_evaluation.matched).toMatchObject({ policy_id: rule.id, outcome: "require", required_approvals: 2 });
    const created = (await auditTrail(t, raised.id))[0]!;
    expect(created.data).toMatchObject({ policy: { policy_id: rule.id, policy_version: 1, outcome: "require" } });
    // Asked for more than the rule demands: kept.
    const kept = await refund({ amount: 5000 }, { required_approvals: 3, priority: "critical" });
    expect(kept).toMatchObject({ required_approvals: 3, priority: "critical" });
    // Two people approve; decided_by human.
    expect((await act(t, raised.id, "approve", "operator")).status).toBe(200);
    const done = (await (await act(t, raised.id, "approve", "admin")).json()) as JsonBody;
    expect(done).toMatchObject({ status: "approved", decided_by: "human", policy_id: null });
  });

  test("no match: a human decides, and the decision records no verdict yet", async () => {
    await savePolicy({
      name: "only deploys",
      expression: 'decision.kind == "deploy" && payload.version == "0.0.0"',
      outcome: "deny",
      reason: "no",
    });
    const pending = await refund({ amount: 1 });
    expect(pending).toMatchObject({ status: "pending", decided_by: null, policy_id: null, policy_version: null });
    expect(pending.policy_evaluation).toMatchObject({ matched: null, shadow: [], errors: [] });
    const rejected = (await (await act(t, pending.id, "reject", "operator", { reason: "no" })).json()) as JsonBody;
    expect(rejected.decided_by).toBe("human");
  });

  test("rule order: the first enforced match wins; position decides, then a moved rule", async () => {
    const deny = await savePolicy({
      name: "deny vendor x",
      expression: 'payload.vendor == "x"',
      outcome: "deny",
      reason: "vendor x is blocked",
      position: 20,
    });
    const approve = await savePolicy({ name: "approve small", expression: "payload.amount < 100", outcome: "approve", position: 10 });
    const first = await refund({ amount: 5, vendor: "x" });
    expect(first).toMatchObject({ status: "approved", policy_id: approve.id });
    // Move the deny ahead: a new version, and it now wins.
    const moved = await t.request(`/v1/policies/${deny.id}`, { method: "PATCH", as: "admin", json: { position: 5 } });
    expect(moved.status).toBe(200);
    const second = await refund({ amount: 5, vendor: "x" });
    expect(second).toMatchObject({ status: "rejected", policy_id: deny.id, policy_version: 2 });
    const list = (await (await t.request("/v1/policies", { as: "admin" })).json()) as JsonBody;
    expect(list.data.map((p: JsonBody) => p.id)).toEqual([deny.id, approve.id]);
  });
});

describe("decided_by", () => {
  test("the timeout default records timeout; a cancelled decision records nobody", async () => {
    const approveOnTimeout = await refund({ amount: 1 }, { expires_in: 1, on_timeout: "approve" });
    const expireOnTimeout = await refund({ amount: 1 }, { expires_in: 1 });
    const cancelled = await refund({ amount: 1 });
    await act(t, cancelled.id, "cancel", "service");
    clock.advance(2000);
    for (const [id, status] of [
      [approveOnTimeout.id, "approved"],
      [expireOnTimeout.id, "expired"],
    ] as const) {
      const read = (await (await t.request(`/v1/decisions/${id}`, { as: "admin" })).json()) as JsonBody;
      expect(read).toMatchObject({ status, decided_by: "timeout", policy_id: null });
    }
    const read = (await (await t.request(`/v1/decisions/${cancelled.id}`, { as: "admin" })).json()) as JsonBody;
    expect(read).toMatchObject({ status: "cancelled", decided_by: null });
    const timeouts = (await (await t.request("/v1/decisions?decided_by=timeout", { as: "admin" })).json()) as JsonBody;
    expect(timeouts.data.map((d: JsonBody) => d.id).sort()).toEqual([approveOnTimeout.id, expireOnTimeout.id].sort());
  });
});

describe("migration 0005", () => {
  test("gives the decisions resolved before policies existed their decided_by: human, or timeout when no key resolved them", async () => {
    const migration = await Bun.file(new URL("../../drizzle/0005_policies.sql", import.meta.url)).text();
    const backfill = migration
      .split("--> statement-breakpoint")
      .find((statement) => statement.includes('UPDATE "decisions" SET "decided_by"'));
    expect(backfill).toBeDefined();
    const ids: Record<string, string> = {};
    for (const [name, verb] of [
      ["approved", "approve"],
      ["rejected", "reject"],
      ["cancelled", "cancel"],
      ["pending", ""],
    ] as const) {
      const created = await refund({ amount: 1 });
      if (verb === "approve") await act(t, created.id, verb, "operator");
      if (verb === "reject") await act(t, created.id, verb, "operator", { reason: "no" });
      if (verb === "cancel") await act(t, created.id, verb, "service");
      ids[name] = created.id;
    }
    const expiring = await refund({ amount: 1 }, { expires_in: 1 });
    clock.advance(2000);
    await t.request(`/v1/decisions/${expiring.id}`, { as: "admin" });
    ids.expired = expiring.id;
    // As they were before the migration: no decided_by anywhere.
    await t.deps.database.db.execute(sql`update decisions set decided_by = null`);
    await t.deps.database.db.execute(sql.raw(backfill!));
    const rows = await t.deps.database.db
      .select()
      .from(decisions)
      .where(inArray(decisions.id, Object.values(ids)));
    const decidedBy = Object.fromEntries(rows.map((row) => [Object.entries(ids).find(([, id]) => id === row.id)![0], row.decidedBy]));
    expect(decidedBy).toEqual({ approved: "human", rejected: "human", cancelled: null, pending: null, expired: "timeout" });
  });
});

describe("fail closed", () => {
  test("a missing field is no match; a rule never approves what it failed to evaluate", async () => {
    await savePolicy({ name: "small", expression: "payload.amount < 100", outcome: "approve" });
    const missing = await refund({ total: 5 });
    expect(missing.status).toBe("pending");
    expect(missing.policy_evaluation.errors[0]).toMatchObject({ code: "no_such_key" });
    // A type error at evaluation (a string where a number was expected) is no match either.
    expect((await refund({ amount: "5" })).status).toBe("pending");
    // null payload: no fields at all.
    expect((await refund(null)).status).toBe("pending");
  });

  test("a rule whose value is not a bool (a dyn field) is no match, never a truthy approval", async () => {
    await savePolicy({ name: "flag", expression: "payload.auto_ok", outcome: "approve" });
    const truthy = await refund({ auto_ok: "yes" });
    expect(truthy.status).toBe("pending");
    expect(truthy.policy_evaluation.errors[0].code).toBe("not_boolean");
    expect((await refund({ auto_ok: 1 })).status).toBe("pending");
    expect((await refund({ auto_ok: true })).status).toBe("approved");
  });

  test("an enforced rule that errors stops every later approve: a broken deny never lets an approval through", async () => {
    await savePolicy({
      name: "deny blocked countries",
      expression: 'payload.country in ["xx", "yy"] || payload.amount / payload.divisor > 10',
      outcome: "deny",
      reason: "blocked",
      position: 1,
    });
    await savePolicy({
      name: "approve refunds",
      expression: 'decision.kind == "refund" && payload.amount < 100',
      outcome: "approve",
      position: 2,
    });
    // divisor 0: the deny errors (division by zero) → the approve after it is suppressed, a human decides.
    const blocked = await refund({ country: "de", amount: 50, divisor: 0 });
    expect(blocked.status).toBe("pending");
    expect(blocked.policy_evaluation.suppressed).toMatchObject({ outcome: "approve", name: "approve refunds" });
    expect(blocked.policy_evaluation.errors[0].code).not.toBe("no_such_key");
    // With a sane divisor the deny evaluates (no match) and the approve applies.
    expect((await refund({ country: "de", amount: 50, divisor: 10 })).status).toBe("approved");
  });

  test("a rule that reads too much (the evaluation budget) counts as no match", async () => {
    await savePolicy({ name: "pairs", expression: "payload.items.exists(a, payload.items.exists(b, a + b == -1))", outcome: "approve" });
    const items = Array.from({ length: 1000 }, (_, i) => i);
    const started = performance.now();
    const decided = await refund({ items });
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(decided.status).toBe("pending");
    expect(decided.policy_evaluation.errors[0].code).toBe("budget_exceeded");
  });

  test("a slow rule is cut at the evaluation time limit and counts as no match", async () => {
    const concat = Array.from({ length: 12 }, () => "payload.s").join(" + ");
    await savePolicy({ name: "slow", expression: `payload.items.all(x, size(${concat}) > 0)`, outcome: "approve" });
    const started = performance.now();
    const decided = await refund({ s: "x".repeat(50_000), items: Array.from({ length: 700 }, (_, i) => i) });
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(decided.status).toBe("pending");
    expect(["evaluation_timeout", "budget_exceeded"]).toContain(decided.policy_evaluation.errors[0].code);
  });

  test("integers are compared as CEL ints (BigInt) whatever their size, and mixed with doubles", async () => {
    await savePolicy({
      name: "big",
      expression: "payload.amount > 4294967296 && payload.rate < 0.5 && decision.required_approvals == 1",
      outcome: "deny",
      reason: "too big",
    });
    expect((await refund({ amount: 4294967297, rate: 0.25 })).status).toBe("rejected");
    expect((await refund({ amount: 4294967296, rate: 0.25 })).status).toBe("pending");
    expect((await refund({ amount: 9007199254740991, rate: 0 })).status).toBe("rejected");
    expect((await refund({ amount: 4294967297.5, rate: 0.25 })).status).toBe("rejected");
    expect((await refund({ amount: 4294967297, rate: 0.25 }, { required_approvals: 2 })).status).toBe("pending");
  });
});

describe("versions", () => {
  test("an update is a new version; old versions are kept, immutable, and readable after delete", async () => {
    const rule = await savePolicy({ name: "v", expression: "payload.amount < 10", outcome: "approve" });
    const updated = (await (
      await t.request(`/v1/policies/${rule.id}`, {
        method: "PATCH",
        as: "admin",
        json: { expression: "payload.amount < 20", expected_version: 1 },
      })
    ).json()) as JsonBody;
    expect(updated).toMatchObject({ id: rule.id, version: 2, expression: "payload.amount < 20" });
    // A stale expected_version is a 409.
    const stale = await t.request(`/v1/policies/${rule.id}`, { method: "PATCH", as: "admin", json: { name: "w", expected_version: 1 } });
    expect(stale.status).toBe(409);
    expect(((await stale.json()) as JsonBody).error.code).toBe("version_mismatch");
    const decided = await refund({ amount: 15 });
    expect(decided).toMatchObject({ status: "approved", policy_version: 2 });

    const disabled = (await (await t.request(`/v1/policies/${rule.id}/disable`, { method: "POST", as: "admin" })).json()) as JsonBody;
    expect(disabled).toMatchObject({ version: 3, state: "disabled" });
    expect((await refund({ amount: 15 })).status).toBe("pending");

    const versions = (await (await t.request(`/v1/policies/${rule.id}/versions`, { as: "admin" })).json()) as JsonBody;
    expect(versions.data.map((v: JsonBody) => [v.version, v.expression, v.state])).toEqual([
      [3, "payload.amount < 20", "disabled"],
      [2, "payload.amount < 20", "enforce"],
      [1, "payload.amount < 10", "enforce"],
    ]);
    const first = (await (await t.request(`/v1/policies/${rule.id}/versions/1`, { as: "admin" })).json()) as JsonBody;
    expect(first.expression).toBe("payload.amount < 10");

    // The database refuses to rewrite a version.
    const refused = async (statement: ReturnType<typeof sql>) => {
      try {
        await t.deps.database.db.execute(statement);
        return false;
      } catch (error) {
        return /immutable/.test(String((error as Error).message) + String((error as { cause?: Error }).cause?.message));
      }
    };
    expect(await refused(sql`update policy_versions set expression = 'true' where policy_id = ${rule.id}`)).toBe(true);
    expect(await refused(sql`delete from policy_versions where policy_id = ${rule.id}`)).toBe(true);

    expect((await t.request(`/v1/policies/${rule.id}`, { method: "DELETE", as: "admin" })).status).toBe(204);
    const [deleted] = await t.deps.database.db.select().from(policies).where(sql`id = ${rule.id}`);
    expect(deleted).toMatchObject({ deletedBy: t.keyIds.admin });
    expect((await t.request(`/v1/policies/${rule.id}`, { as: "admin" })).status).toBe(404);
    expect((await t.request(`/v1/policies/${rule.id}`, { method: "DELETE", as: "admin" })).status).toBe(404);
    expect((await t.request(`/v1/policies/${rule.id}/versions/2`, { as: "admin" })).status).toBe(200);
    expect((await t.request(`/v1/policies/${rule.id}/versions/9`, { as: "admin" })).status).toBe(404);
  });

  test("GET /v1/decisions filters by decided_by and policy_id", async () => {
    const rule = await savePolicy({ name: "filter", expression: 'decision.kind == "filter.me"', outcome: "approve" });
    const decided = await createDecision(t, { kind: "filter.me", title: "x", payload: {} });
    const byPolicy = (await (await t.request(`/v1/decisions?policy_id=${rule.id}`, { as: "admin" })).json()) as JsonBody;
    expect(byPolicy.data.map((d: JsonBody) => d.id)).toEqual([decided.id]);
    const byDecider = (await (await t.request("/v1/decisions?decided_by=policy&kind=filter.me", { as: "admin" })).json()) as JsonBody;
    expect(byDecider.data.map((d: JsonBody) => d.id)).toEqual([decided.id]);
    expect((await t.request("/v1/decisions?decided_by=robot", { as: "admin" })).status).toBe(400);
  });
});

describe("shadow mode, replay and preview", () => {
  test("a shadow rule is evaluated and recorded on each decision, never enforced", async () => {
    const rule = await savePolicy({ name: "shadow approve", expression: "payload.amount < 100", outcome: "approve", state: "shadow" });
    const decided = await refund({ amount: 10 });
    expect(decided.status).toBe("pending");
    expect(decided.policy_evaluation.shadow).toEqual([{ policy_id: rule.id, version: 1, name: "shadow approve", outcome: "approve" }]);
    const other = await refund({ amount: 1000 });
    expect(other.policy_evaluation.shadow[0].outcome).toBe("none");
    // The metrics count outcomes per rule, by mode.
    const metrics = await (await t.request("/metrics", { as: "admin" })).text();
    const line = metrics.split("\n").find((l) => l.startsWith("arbiter_policy_outcomes_total{") && l.includes(rule.id));
    expect(line).toContain('mode="shadow"');
    expect(line).toContain('outcome="approve"');
  });

  test("replay answers how many it would have approved, denied or required, with the differing examples", async () => {
    clock.advance(1000);
    const from = clock.now();
    const small = await refund({ amount: 5 }); // people reject it: differs from a would-approve
    const small2 = await refund({ amount: 7 }); // people approve it: agrees
    const large = await refund({ amount: 500 }); // no match
    const broken = await refund({ total: 1 }); // missing field: no match
    await act(t, small.id, "reject", "operator", { reason: "fraud" });
    await act(t, small2.id, "approve", "operator");
    clock.advance(1000);
    const rule = await savePolicy({ name: "replay me", expression: "payload.amount < 100", outcome: "approve", state: "shadow" });
    const res = await t.request(`/v1/policies/${rule.id}/replay`, {
      method: "POST",
      as: "admin",
      json: { from: from.toISOString(), to: clock.now().toISOString() },
    });
    expect(res.status).toBe(200);
    const figures = (await res.json()) as JsonBody;
    expect(figures).toMatchObject({
      policy_id: rule.id,
      version: 1,
      evaluated: 4,
      approve: 2,
      deny: 0,
      require: 0,
      no_match: 2,
      errors: 0,
      differs: 1,
    });
    expect(figures.examples).toEqual([
      expect.objectContaining({
        decision_id: small.id,
        would: "approve",
        actual: { status: "rejected", decided_by: "human", policy_id: null },
      }),
    ]);
    expect([large.id, broken.id]).not.toContain(figures.examples[0].decision_id);

    // The same as a preview of an unsaved deny rule.
    const preview = (await (
      await t.request("/v1/policies/preview", {
        method: "POST",
        as: "admin",
        json: { expression: "payload.amount < 100", outcome: "deny", reason: "x", from: from.toISOString(), to: clock.now().toISOString() },
      })
    ).json()) as JsonBody;
    expect(preview).toMatchObject({ evaluated: 4, deny: 2, no_match: 2, differs: 1, broad: false });
    expect(preview.examples[0]).toMatchObject({ decision_id: small2.id, would: "deny" });
    // A limit: the newest decisions of the range, and the answer says it was cut.
    const cut = (await (
      await t.request(`/v1/policies/${rule.id}/replay`, {
        method: "POST",
        as: "admin",
        json: { from: from.toISOString(), to: clock.now().toISOString(), limit: 3 },
      })
    ).json()) as JsonBody;
    expect(cut).toMatchObject({ evaluated: 3, truncated: true });
    expect(figures.truncated).toBe(false);
    // from after to: 400.
    const backwards = await t.request(`/v1/policies/${rule.id}/replay`, {
      method: "POST",
      as: "admin",
      json: { from: clock.now().toISOString(), to: from.toISOString() },
    });
    expect(backwards.status).toBe(400);
  });
});

describe("edits are re-checked", () => {
  test("a deny on the edited payload refuses the approval, naming the rule", async () => {
    const rule = await savePolicy({
      name: "cap refunds",
      expression: "payload.amount > 1000",
      outcome: "deny",
      reason: "refunds over 1000 go to finance",
    });
    const asked = await refund({ amount: 10 });
    const res = await act(t, asked.id, "approve", "operator", { payload: { amount: 5000 } });
    expect(res.status).toBe(422);
    const body = (await res.json()) as JsonBody;
    expect(body.error).toMatchObject({
      code: "policy_denied_edit",
      details: { policy_id: rule.id, policy_version: 1, reason: "refunds over 1000 go to finance" },
    });
    const still = (await (await t.request(`/v1/decisions/${asked.id}`, { as: "admin" })).json()) as JsonBody;
    expect(still).toMatchObject({ status: "pending", approvals: [] });
    // An edit the rules accept goes through.
    const ok = (await (await act(t, asked.id, "approve", "operator", { payload: { amount: 20 } })).json()) as JsonBody;
    expect(ok).toMatchObject({ status: "approved", decided_by: "human", approved_payload: { amount: 20 } });
  });

  test("a require on the edit raises the quorum: the edit counts as one approval of the raised quorum", async () => {
    const rule = await savePolicy({
      name: "two for big",
      expression: "payload.amount >= 1000",
      outcome: "require",
      required_approvals: 2,
      priority: "critical",
    });
    const asked = await refund({ amount: 10 });
    expect(asked.required_approvals).toBe(1);
    const res = await act(t, asked.id, "approve", "operator", { payload: { amount: 2000 } });
    expect(res.status).toBe(200);
    const after = (await res.json()) as JsonBody;
    expect(after).toMatchObject({ status: "pending", required_approvals: 2, priority: "critical", approved_payload: { amount: 2000 } });
    const trail = await auditTrail(t, asked.id);
    expect(trail.at(-1)).toMatchObject({ type: "approval_recorded" });
    expect(trail.at(-1)!.data).toMatchObject({ policy: { policy_id: rule.id, outcome: "require", required_approvals: 2 } });
    const done = (await (await act(t, asked.id, "approve", "admin")).json()) as JsonBody;
    expect(done).toMatchObject({ status: "approved", decided_by: "human", approved_payload: { amount: 2000 } });
    expect(done.approvals).toHaveLength(2);
  });

  test("an edit never switches the decision's kind: rules see the decision's own kind", async () => {
    await savePolicy({
      name: "deny other kinds",
      expression: 'decision.kind == "refund" && payload.amount > 100',
      outcome: "deny",
      reason: "no",
    });
    const asked = await createDecision(t, { kind: "deploy", title: "Deploy", payload: { amount: 1 } });
    // The payload claims another kind; the decision stays a deploy and the refund rule does not apply.
    const ok = (await (await act(t, asked.id, "approve", "operator", { payload: { kind: "refund", amount: 500 } })).json()) as JsonBody;
    expect(ok).toMatchObject({ kind: "deploy", status: "approved" });
    // The approve body has no kind to send.
    const other = await createDecision(t, { kind: "deploy", title: "Deploy", payload: { amount: 1 } });
    expect((await act(t, other.id, "approve", "operator", { kind: "refund", payload: {} })).status).toBe(400);
  });
});

describe("bad input", () => {
  const post = (json: unknown) => t.request("/v1/policies", { method: "POST", as: "admin", json });
  const base = { name: "bad", outcome: "approve", state: "enforce" };

  test("syntax errors, unknown variables, unknown fields and unknown functions are 400s naming the position", async () => {
    for (const [expression, code, start] of [
      ["payload.amount <", "syntax_error", 16],
      ["amount < 100", "type_error", 0],
      ['decision.knd == "refund"', "type_error", 9],
      ["launch_missiles(payload)", "type_error", 0],
      ["decision.title", "not_boolean", 0],
      ['payload.note.matches("(a+)+$")', "forbidden_function", 0],
      ["payload.items.all(a, payload.items.all(b, payload.items.all(c, true)))", "too_costly", 42],
    ] as const) {
      const res = await post({ ...base, expression });
      expect(`${expression} → ${res.status}`).toBe(`${expression} → 400`);
      const body = (await res.json()) as JsonBody;
      expect(body.error.code).toBe("invalid_expression");
      expect(body.error.details.code).toBe(code);
      expect(body.error.details.position.start).toBe(start);
      expect(body.error.message).toContain(`at ${start}..`);
    }
  });

  test("huge or deeply nested expressions are 400s; so are bad bodies", async () => {
    const huge = await post({ ...base, expression: `payload.a == 1${" || payload.a == 1".repeat(300)}` });
    expect(huge.status).toBe(400);
    const deep = await post({ ...base, expression: `${"(".repeat(100)}payload.a == 1${")".repeat(100)}` });
    expect(deep.status).toBe(400);
    expect(((await deep.json()) as JsonBody).error.code).toBe("invalid_expression");
    const tooLong = await post({ ...base, expression: `payload.a == "${"x".repeat(5000)}"` });
    expect(tooLong.status).toBe(400);
    expect((await post({ ...base, expression: "" })).status).toBe(400);
    expect((await post({ ...base, expression: "true", outcome: "maybe" })).status).toBe(400);
    expect((await post({ ...base, expression: "payload.a == 1", required_approvals: 2 })).status).toBe(400);
    expect((await post({ ...base, expression: "payload.a == 1", extra: 1 })).status).toBe(400);
  });

  test("a rule that would approve everything needs confirm_broad: true, and is logged", async () => {
    for (const expression of ["true", "1 == 1", 'decision.kind != "deploy"', "!has(payload.nope) || true"]) {
      const res = await post({ ...base, expression });
      expect(res.status).toBe(422);
      expect(((await res.json()) as JsonBody).error.code).toBe("broad_rule");
    }
    // deny and require may be broad: they can only add caution.
    expect((await post({ ...base, expression: "true", outcome: "require", required_approvals: 2 })).status).toBe(201);
    const confirmed = await post({ ...base, expression: "true", confirm_broad: true });
    expect(confirmed.status).toBe(201);
    expect(((await confirmed.json()) as JsonBody).confirm_broad).toBe(true);
    expect(t.logs.some((line) => line.msg === "broad approve rule saved with confirm_broad")).toBe(true);
    // A require ordered first (position 10) still wins over the broad approve (position 20).
    expect((await refund({ amount: 1 })).status).toBe("pending");
  });

  test("only admins manage policies", async () => {
    for (const role of ["operator", "readonly", "service"] as const) {
      expect((await t.request("/v1/policies", { as: role })).status).toBe(403);
      expect((await t.request("/v1/policies", { method: "POST", as: role, json: { ...base, expression: "true" } })).status).toBe(403);
    }
    expect((await t.request("/v1/policies")).status).toBe(401);
  });
});

describe("docs/policies.md", () => {
  test("its three rules save as written and do what the page says", async () => {
    const page = await Bun.file(new URL("../../docs/policies.md", import.meta.url)).text();
    const rules = [...page.matchAll(/^```json\n([\s\S]*?)^```$/gm)].map((m) => JSON.parse(m[1]!) as Record<string, unknown>);
    expect(rules).toHaveLength(3);
    const saved: JsonBody[] = [];
    for (const rule of rules) saved.push(await savePolicy({ ...rule, state: "enforce" }));
    const small = await refund({ amount: 40, currency: "EUR", env: "staging" });
    expect(small).toMatchObject({ status: "approved", policy_id: saved[0]!.id });
    const drop = await createDecision(t, { kind: "db.drop", title: "Drop", payload: { env: "staging", database: "prod-orders" } });
    expect(drop).toMatchObject({ status: "rejected", policy_id: saved[1]!.id });
    const deploy = await createDecision(t, {
      kind: "deploy",
      title: "Deploy",
      payload: { service: "checkout", rollout: { percent: 50, regions: ["eu-west-1"] } },
    });
    expect(deploy).toMatchObject({ status: "pending", required_approvals: 2, priority: "high" });
    const quiet = await createDecision(t, { kind: "deploy", title: "Deploy", payload: { service: "search", rollout: { percent: 50 } } });
    expect(quiet).toMatchObject({ status: "pending", required_approvals: 1, priority: "medium" });
  });
});

describe("expression fuzz", () => {
  test("random token soup is a 201, 400 or 422, never a 5xx; what saves never breaks a decision's creation", async () => {
    let seed = 0x5eed;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const TOKENS = [
      "decision",
      "payload",
      "context",
      "now",
      ".",
      "kind",
      "amount",
      "env",
      "requester",
      "role",
      "items",
      "(",
      ")",
      "[",
      "]",
      "{",
      "}",
      ",",
      ":",
      "==",
      "!=",
      "<",
      ">=",
      "&&",
      "||",
      "!",
      "+",
      "-",
      "*",
      "/",
      "%",
      "?",
      "in",
      "has",
      "size",
      "exists",
      "all",
      "map",
      "filter",
      "x",
      "1",
      "0",
      "-9223372036854775808",
      "18446744073709551615u",
      "1e308",
      "1.5",
      '"refund"',
      "'prod'",
      'b"\\xff"',
      "true",
      "false",
      "null",
      "int",
      "double",
      "string",
      "timestamp",
      '"2026-01-01T00:00:00Z"',
      "duration",
      '"1h"',
      "dyn",
      "type",
      "startsWith",
      "contains",
      "matches",
      "getHours",
      "\u0000",
      "\ud83d\ude00",
      "\\",
      '"',
      "`",
      "#",
      "$",
      "@",
    ];
    const failures: string[] = [];
    let saved = 0;
    for (let i = 0; i < 300; i++) {
      const length = 1 + Math.floor(random() * 14);
      const expression = Array.from({ length }, () => TOKENS[Math.floor(random() * TOKENS.length)]).join(random() < 0.5 ? " " : "");
      const res = await t.request("/v1/policies", {
        method: "POST",
        as: "admin",
        json: { name: `fuzz ${i}`, expression, outcome: "approve", state: random() < 0.5 ? "enforce" : "shadow" },
      });
      if (![201, 400, 422].includes(res.status)) failures.push(`${res.status} ${expression}: ${await res.text()}`);
      if (res.status === 201) saved += 1;
      else await res.body?.cancel();
    }
    // Whatever was saved runs on a real decision: it is created (pending or approved), never a 5xx.
    const res = await t.request("/v1/decisions", {
      method: "POST",
      as: "service",
      json: { kind: "refund", title: "fuzz", payload: { amount: 5, env: "dev", items: [1, 2, 3] }, context: { x: 1 } },
    });
    expect(res.status).toBe(201);
    expect(failures).toEqual([]);
    expect(saved).toBeGreaterThanOrEqual(0);
  });
});
