import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { ArbiterError } from "../../src/sdk";
import { startTestApp, type TestApp } from "../helpers/app";
import { clientAs, rejection } from "./support";

setDefaultTimeout(30_000);

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

describe("SDK: policies", () => {
  test("create, list, update (a new version), versions, replay, preview, disable, delete", async () => {
    const admin = clientAs(t, "admin");
    const service = clientAs(t, "service");
    const since = new Date(Date.now() - 1000);
    const rule = await admin.policies.create({
      name: "small refunds",
      expression: 'decision.kind == "refund" && payload.amount < 100',
      outcome: "approve",
      state: "enforce",
    });
    expect(rule).toMatchObject({ version: 1, state: "enforce", outcome: "approve" });
    const approved = await service.decisions.create({ kind: "refund", title: "Refund 7", payload: { amount: 7 } });
    expect(approved).toMatchObject({ status: "approved", decided_by: "policy", policy_id: rule.id, policy_version: 1 });

    expect((await admin.policies.list()).map((p) => p.id)).toEqual([rule.id]);
    const updated = await admin.policies.update(rule.id, {
      expression: 'decision.kind == "refund" && payload.amount < 50',
      expected_version: 1,
    });
    expect(updated.version).toBe(2);
    expect((await admin.policies.versions(rule.id)).map((v) => v.version)).toEqual([2, 1]);
    expect((await admin.policies.version(rule.id, 1)).expression).toContain("< 100");

    const replay = await admin.policies.replay(rule.id, { from: since, to: new Date(Date.now() + 1000) });
    expect(replay).toMatchObject({ evaluated: 1, approve: 1 });
    const preview = await admin.policies.preview({ expression: "payload.amount > 5", outcome: "deny", reason: "x", from: since });
    expect(preview).toMatchObject({ evaluated: 1, deny: 1, differs: 1 });

    expect((await admin.policies.disable(rule.id)).state).toBe("disabled");
    await admin.policies.delete(rule.id);
    const gone = (await rejection(admin.policies.get(rule.id))) as ArbiterError;
    expect(gone).toBeInstanceOf(ArbiterError);
    expect(gone.status).toBe(404);
  });

  test("an invalid expression is an ArbiterError naming the position; non-admins are refused", async () => {
    const error = (await rejection(
      clientAs(t, "admin").policies.create({ name: "bad", expression: "payload.amount <", outcome: "approve" }),
    )) as ArbiterError;
    expect(error.code).toBe("invalid_expression");
    expect(error.details).toMatchObject({ code: "syntax_error", position: { start: 16 } });
    const forbidden = (await rejection(clientAs(t, "operator").policies.list())) as ArbiterError;
    expect(forbidden.status).toBe(403);
  });
});
