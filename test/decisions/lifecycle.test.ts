import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { canonicalHash } from "../../src/decisions/canonical-json";
import { startTestApp, type TestApp } from "../helpers/app";
import { act, auditTrail, createDecision, extraKey, requestWithKey, samplePayload } from "./helpers";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
}, 30_000);
afterAll(() => t.close());

describe("create", () => {
  test("stores the decision with the hash of its canonical payload", async () => {
    const d = await createDecision(t, { priority: "high", context: { ticket: "OPS-1" } });
    expect(d.status).toBe("pending");
    expect(d.priority).toBe("high");
    expect(d.requester_key_id).toBe(t.keyIds.service);
    expect(d.payload_hash).toBe(canonicalHash(samplePayload));
    // Key order does not change the hash: it is over the canonical form.
    const reordered = { rollout: { regions: ["eu-west-1", "us-east-1"], percent: 100 }, version: "2.4.1", service: "checkout" };
    const again = await createDecision(t, { payload: reordered });
    expect(again.payload_hash).toBe(d.payload_hash);
    const trail = await auditTrail(t, d.id);
    expect(trail.map((e) => [e.type, e.fromStatus, e.toStatus])).toEqual([["created", null, "pending"]]);
  });

  test("Idempotency-Key: the same body returns the first result, a different body is a 422", async () => {
    const key = `idem-${crypto.randomUUID()}`;
    const body = { kind: "deploy", title: "once", payload: { n: 1 } };
    const first = await t.request("/v1/decisions", { method: "POST", as: "service", headers: { "Idempotency-Key": key }, json: body });
    expect(first.status).toBe(201);
    const firstBody = await first.json();
    const retry = await t.request("/v1/decisions", { method: "POST", as: "service", headers: { "Idempotency-Key": key }, json: body });
    expect(retry.status).toBe(200);
    expect(retry.headers.get("Idempotent-Replayed")).toBe("true");
    expect((await retry.json()).id).toBe(firstBody.id);
    const different = await t.request("/v1/decisions", {
      method: "POST",
      as: "service",
      headers: { "Idempotency-Key": key },
      json: { ...body, payload: { n: 2 } },
    });
    expect(different.status).toBe(422);
    expect((await different.json()).error.code).toBe("idempotency_key_reused");
    // Keys are per caller: another requester may use the same key for its own decision.
    const other = await t.request("/v1/decisions", { method: "POST", as: "admin", headers: { "Idempotency-Key": key }, json: body });
    expect(other.status).toBe(201);
    expect((await other.json()).id).not.toBe(firstBody.id);
  });

  test("parallel retries with one Idempotency-Key create exactly one decision", async () => {
    const key = `idem-${crypto.randomUUID()}`;
    const responses = await Promise.all(
      Array.from({ length: 8 }, () =>
        t.request("/v1/decisions", {
          method: "POST",
          as: "service",
          headers: { "Idempotency-Key": key },
          json: { kind: "deploy", title: "x", payload: 1 },
        }),
      ),
    );
    const bodies = await Promise.all(responses.map((r) => r.json()));
    expect(responses.filter((r) => r.status === 201)).toHaveLength(1);
    expect(new Set(bodies.map((b) => b.id)).size).toBe(1);
  });
});

describe("verdicts", () => {
  test("approve, then the requester consumes once and gets the approved hash", async () => {
    const d = await createDecision(t);
    const approved = await act(t, d.id, "approve", "operator", { reason: "looks fine" });
    expect(approved.status).toBe(200);
    const verdict = await approved.json();
    expect(verdict).toMatchObject({ status: "approved", resolved_by: t.keyIds.operator, resolution_reason: "looks fine" });
    expect(verdict.effective_payload_hash).toBe(d.payload_hash);
    const consumed = await act(t, d.id, "consume", "service");
    expect(consumed.status).toBe(200);
    expect((await consumed.json()).consumed_at).not.toBeNull();
    const twice = await act(t, d.id, "consume", "service");
    expect(twice.status).toBe(409);
    expect((await twice.json()).error.code).toBe("already_consumed");
    const trail = await auditTrail(t, d.id);
    expect(trail.map((e) => e.type)).toEqual(["created", "approved", "consumed"]);
    expect(trail[1]!.actorKeyId).toBe(t.keyIds.operator);
  });

  test("reject needs a reason; a rejected decision cannot be consumed or approved", async () => {
    const d = await createDecision(t);
    const noReason = await act(t, d.id, "reject", "operator", {});
    expect(noReason.status).toBe(400);
    const rejected = await act(t, d.id, "reject", "operator", { reason: "not during the freeze" });
    expect(rejected.status).toBe(200);
    expect((await rejected.json()).status).toBe("rejected");
    const consume = await act(t, d.id, "consume", "service");
    expect(consume.status).toBe(409);
    expect((await consume.json()).error.code).toBe("decision_not_approved");
    const approve = await act(t, d.id, "approve", "operator");
    expect(approve.status).toBe(409);
    const error = (await approve.json()).error;
    expect(error.code).toBe("decision_not_pending");
    expect(error.details.status).toBe("rejected");
  });

  test("approve with edits: the verdict carries the edited payload and hash; the trail keeps both", async () => {
    const d = await createDecision(t);
    const smaller = { ...samplePayload, rollout: { percent: 10, regions: ["eu-west-1"] } };
    const res = await act(t, d.id, "approve", "operator", { reason: "canary first", payload: smaller });
    expect(res.status).toBe(200);
    const verdict = await res.json();
    expect(verdict.approved_payload).toEqual(smaller);
    expect(verdict.approved_payload_hash).toBe(canonicalHash(smaller));
    expect(verdict.effective_payload_hash).toBe(canonicalHash(smaller));
    expect(verdict.payload).toEqual(samplePayload);
    expect(verdict.payload_hash).toBe(d.payload_hash);
    const trail = await auditTrail(t, d.id);
    const approval = trail.find((e) => e.type === "approved")!;
    expect(approval.data).toMatchObject({
      payload_hash: d.payload_hash,
      edited_payload: smaller,
      edited_payload_hash: canonicalHash(smaller),
    });
    const consumed = await (await act(t, d.id, "consume", "service")).json();
    expect(consumed.effective_payload_hash).toBe(canonicalHash(smaller));
  });

  test("quorum: distinct approvers, no self-approval, one rejection rejects", async () => {
    const second = await extraKey(t, "operator");
    const d = await createDecision(t, { required_approvals: 2 }, "admin");
    const self = await act(t, d.id, "approve", "admin");
    expect(self.status).toBe(403);
    expect((await self.json()).error.code).toBe("self_approval_forbidden");
    const first = await (await act(t, d.id, "approve", "operator")).json();
    expect(first).toMatchObject({ status: "pending", approvals: [t.keyIds.operator] });
    const repeat = await act(t, d.id, "approve", "operator");
    expect(repeat.status).toBe(409);
    expect((await repeat.json()).error.code).toBe("already_approved");
    const edits = await requestWithKey(t, second.key, `/v1/decisions/${d.id}/approve`, { method: "POST", json: { payload: { x: 1 } } });
    expect(edits.status).toBe(422);
    const done = await requestWithKey(t, second.key, `/v1/decisions/${d.id}/approve`, { method: "POST", json: {} });
    expect(done.status).toBe(200);
    expect(await done.json()).toMatchObject({ status: "approved", resolved_by: second.id, approvals: [t.keyIds.operator, second.id] });
    expect((await auditTrail(t, d.id)).map((e) => e.type)).toEqual(["created", "approval_recorded", "approved"]);

    const rejected = await createDecision(t, { required_approvals: 3 });
    await act(t, rejected.id, "approve", "operator");
    const no = await requestWithKey(t, second.key, `/v1/decisions/${rejected.id}/reject`, { method: "POST", json: { reason: "no" } });
    expect((await no.json()).status).toBe("rejected");
  });

  test("escalation hands the decision to admins, up to the top level", async () => {
    const d = await createDecision(t);
    const escalated = await act(t, d.id, "escalate", "operator", { reason: "needs a second look" });
    expect((await escalated.json()).escalation_level).toBe(1);
    const operatorApprove = await act(t, d.id, "approve", "operator");
    expect(operatorApprove.status).toBe(403);
    expect((await operatorApprove.json()).error.code).toBe("escalated_to_admin");
    await act(t, d.id, "escalate", "operator");
    await act(t, d.id, "escalate", "admin");
    const top = await act(t, d.id, "escalate", "admin");
    expect(top.status).toBe(409);
    expect((await top.json()).error.code).toBe("max_escalation_reached");
    const adminApprove = await act(t, d.id, "approve", "admin");
    expect((await adminApprove.json()).status).toBe("approved");
  });

  test("cancel: requester only, while pending", async () => {
    const d = await createDecision(t);
    const byOther = await act(t, d.id, "cancel", "admin");
    expect(byOther.status).toBe(403);
    const cancelled = await act(t, d.id, "cancel", "service", { reason: "no longer needed" });
    expect((await cancelled.json()).status).toBe("cancelled");
    const again = await act(t, d.id, "cancel", "service");
    expect(again.status).toBe(409);
  });
});

describe("reads", () => {
  test("filters and cursor pagination see every row once while rows are being inserted", async () => {
    const kind = `page.${crypto.randomUUID().slice(0, 8)}`;
    for (let i = 0; i < 7; i++) await createDecision(t, { kind, priority: i % 2 ? "low" : "critical" });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = `?kind=${kind}&limit=3${cursor ? `&cursor=${cursor}` : ""}`;
      const page = await (await t.request(`/v1/decisions${query}`, { as: "readonly" })).json();
      seen.push(...page.data.map((d: { id: string }) => d.id));
      // Inserts between pages land before the first page: never in a later page, never twice.
      await createDecision(t, { kind });
      cursor = page.next_cursor;
    } while (cursor);
    expect(seen).toHaveLength(7);
    expect(new Set(seen).size).toBe(7);
    const critical = await (await t.request(`/v1/decisions?kind=${kind}&priority=critical&limit=100`, { as: "readonly" })).json();
    expect(critical.data.every((d: { priority: string }) => d.priority === "critical")).toBe(true);
    expect(critical.data).toHaveLength(4);
    const since = new Date(Date.now() - 60_000).toISOString();
    const ranged = await t.request(`/v1/decisions?kind=${kind}&created_after=${since}&requester=${t.keyIds.service}&status=pending`, {
      as: "admin",
    });
    expect((await ranged.json()).data.length).toBe(7 + 3);
  });

  test("the pending queue: highest priority first, then oldest, paginated", async () => {
    const low = await createDecision(t, { priority: "low" });
    const critical = await createDecision(t, { priority: "critical" });
    const critical2 = await createDecision(t, { priority: "critical" });
    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await (await t.request(`/v1/decisions/pending?limit=2${cursor ? `&cursor=${cursor}` : ""}`, { as: "operator" })).json();
      ids.push(...page.data.map((d: { id: string }) => d.id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.indexOf(critical.id)).toBeLessThan(ids.indexOf(critical2.id));
    expect(ids.indexOf(critical2.id)).toBeLessThan(ids.indexOf(low.id));
  });

  test("a cached read is invalidated by the change", async () => {
    const d = await createDecision(t);
    expect((await (await t.request(`/v1/decisions/${d.id}`, { as: "operator" })).json()).status).toBe("pending");
    expect(await t.deps.cache.get(`decision:${d.id}`)).not.toBeNull();
    await act(t, d.id, "approve", "operator");
    // The old row is replaced by a marker that keeps a read which raced the change from storing it back.
    expect(await t.deps.cache.get(`decision:${d.id}`)).toBe("changed");
    expect((await (await t.request(`/v1/decisions/${d.id}`, { as: "operator" })).json()).status).toBe("approved");
  });

  test("metrics: created by kind and priority, resolved by outcome, pending gauge, time to decision", async () => {
    const d = await createDecision(t, { kind: "metrics.check", priority: "critical" });
    await act(t, d.id, "reject", "operator", { reason: "metrics" });
    const text = await t.deps.metrics.render();
    expect(text).toMatch(/arbiter_decisions_created_total\{[^}]*kind="metrics.check"[^}]*priority="critical"[^}]*\} 1/);
    expect(text).toMatch(/arbiter_decisions_resolved_total\{outcome="rejected"\} \d+/);
    expect(text).toMatch(/arbiter_decisions_pending \d+/);
    expect(text).toMatch(/arbiter_decision_duration_seconds_count\{outcome="rejected"\} \d+/);
  });
});
