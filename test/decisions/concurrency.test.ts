import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { startTestApp, type TestApp } from "../helpers/app";
import { act, auditTrail, createDecision, extraKey, requestWithKey } from "./helpers";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
}, 30_000);
afterAll(() => t.close());

test("operators racing on one decision: exactly one outcome, one audit row, the rest 409", async () => {
  const operators = await Promise.all(Array.from({ length: 8 }, () => extraKey(t, "operator")));
  const d = await createDecision(t);
  const responses = await Promise.all(
    operators.map((operator, i) =>
      requestWithKey(t, operator.key, `/v1/decisions/${d.id}/${i % 2 ? "reject" : "approve"}`, {
        method: "POST",
        json: { reason: `operator ${i}` },
      }),
    ),
  );
  const statuses = responses.map((r) => r.status);
  expect(statuses.filter((s) => s === 200)).toHaveLength(1);
  expect(statuses.filter((s) => s === 409)).toHaveLength(operators.length - 1);
  const winner = await responses.find((r) => r.status === 200)!.json();
  const trail = await auditTrail(t, d.id);
  expect(trail.filter((e) => e.fromStatus === "pending" && e.toStatus !== "pending")).toHaveLength(1);
  expect(trail.at(-1)!.toStatus).toBe(winner.status);
  const stored = await (await t.request(`/v1/decisions/${d.id}`, { as: "admin" })).json();
  expect(stored.status).toBe(winner.status);
});

test("a quorum reached by parallel approvals counts each distinct approver once", async () => {
  const operators = await Promise.all(Array.from({ length: 5 }, () => extraKey(t, "operator")));
  const d = await createDecision(t, { required_approvals: 3 });
  const responses = await Promise.all(
    operators.map((operator) => requestWithKey(t, operator.key, `/v1/decisions/${d.id}/approve`, { method: "POST", json: {} })),
  );
  expect(responses.filter((r) => r.status === 200)).toHaveLength(3);
  const stored = await (await t.request(`/v1/decisions/${d.id}`, { as: "admin" })).json();
  expect(stored.status).toBe("approved");
  expect(new Set(stored.approvals).size).toBe(3);
  const trail = await auditTrail(t, d.id);
  expect(trail.map((e) => e.type)).toEqual(["created", "approval_recorded", "approval_recorded", "approved"]);
});

test("parallel consumes of one approval: exactly one wins", async () => {
  const d = await createDecision(t);
  await act(t, d.id, "approve", "operator");
  const responses = await Promise.all(Array.from({ length: 10 }, () => act(t, d.id, "consume", "service")));
  expect(responses.filter((r) => r.status === 200)).toHaveLength(1);
  const losers = responses.filter((r) => r.status === 409);
  expect(losers).toHaveLength(9);
  for (const loser of losers) expect((await loser.json()).error.code).toBe("already_consumed");
  expect((await auditTrail(t, d.id)).filter((e) => e.type === "consumed")).toHaveLength(1);
});
