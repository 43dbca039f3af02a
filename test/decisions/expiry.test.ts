import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startDecisionWorkers } from "../../src/decisions/background";
import { settleOverdue } from "../../src/decisions/service";
import { startTestApp, type TestApp } from "../helpers/app";
import { act, auditTrail, createDecision, manualClock } from "./helpers";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

const clock = manualClock();
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ clock });
}, 30_000);
afterAll(() => t.close());

const read = async (id: string) => (await t.request(`/v1/decisions/${id}`, { as: "operator" })).json();

describe("on_timeout", () => {
  test("reject (the default): the decision expires", async () => {
    const d = await createDecision(t, { expires_in: 60 });
    clock.advance(61_000);
    expect(await settleOverdue(t.deps, {})).toBeGreaterThanOrEqual(1);
    const after = await read(d.id);
    expect(after.status).toBe("expired");
    expect(after.resolved_at).toBe(clock.now().toISOString());
    expect((await auditTrail(t, d.id)).map((e) => [e.type, e.actorKeyId])).toEqual([
      ["created", t.keyIds.service],
      ["expired", null],
    ]);
  });

  test("approve: the decision is approved by default and can be consumed", async () => {
    const d = await createDecision(t, { expires_in: 60, on_timeout: "approve" });
    clock.advance(61_000);
    await settleOverdue(t.deps, {});
    expect((await read(d.id)).status).toBe("approved");
    expect((await act(t, d.id, "consume", "service")).status).toBe(200);
  });

  test("escalate: one level up with another full window each time, expired after the top level", async () => {
    const d = await createDecision(t, { expires_in: 100, on_timeout: "escalate" });
    const created = new Date(d.created_at).getTime();
    for (let level = 1; level <= 3; level++) {
      clock.advance(100_000);
      await settleOverdue(t.deps, {});
      const after = await read(d.id);
      expect(after).toMatchObject({ status: "pending", escalation_level: level });
      expect(new Date(after.expires_at).getTime()).toBe(created + (level + 1) * 100_000);
    }
    clock.advance(100_000);
    await settleOverdue(t.deps, {});
    expect((await read(d.id)).status).toBe("expired");
  });
});

describe("before the sweeper runs", () => {
  test("a read of an overdue decision shows its timeout outcome", async () => {
    const d = await createDecision(t, { expires_in: 30 });
    expect((await read(d.id)).status).toBe("pending"); // now cached as pending
    clock.advance(31_000);
    expect((await read(d.id)).status).toBe("expired");
    const listed = await (await t.request(`/v1/decisions?status=pending&limit=500`, { as: "operator" })).json();
    expect(listed.data.some((x: { id: string }) => x.id === d.id)).toBe(false);
  });

  test("a verdict on an overdue decision is a 409 with the settled state", async () => {
    const d = await createDecision(t, { expires_in: 30, on_timeout: "reject" });
    clock.advance(30_000);
    const res = await act(t, d.id, "approve", "operator");
    expect(res.status).toBe(409);
    expect((await res.json()).error.details.status).toBe("expired");
  });
});

test("sweepers running in parallel settle each decision exactly once", async () => {
  const created = await Promise.all(Array.from({ length: 12 }, () => createDecision(t, { expires_in: 5 })));
  clock.advance(6_000);
  const counts = await Promise.all([settleOverdue(t.deps, {}), settleOverdue(t.deps, {}), settleOverdue(t.deps, {})]);
  expect(counts.reduce((a, b) => a + b, 0)).toBe(created.length);
  for (const d of created) {
    const trail = await auditTrail(t, d.id);
    expect(trail.filter((e) => e.type === "expired")).toHaveLength(1);
  }
});

test("the background sweeper settles overdue decisions on its own, and stops", async () => {
  const d = await createDecision(t, { expires_in: 5 });
  const workers = startDecisionWorkers({ ...t.deps, config: { ...t.deps.config, DECISION_SWEEP_INTERVAL_MS: 20 } });
  try {
    clock.advance(6_000);
    const deadline = Date.now() + 5_000;
    while ((await auditTrail(t, d.id)).length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect((await auditTrail(t, d.id)).map((e) => e.type)).toEqual(["created", "expired"]);
  } finally {
    await workers.stop();
  }
});
