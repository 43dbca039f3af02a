import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { errorCode } from "../auth/support";
import { auditTrail, createDecision, type JsonBody, requestWithKey } from "../decisions/helpers";
import { startTestApp, type TestApp } from "../helpers/app";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

async function person(role: "admin" | "operator" = "operator") {
  const res = await t.request("/v1/operators", {
    method: "POST",
    as: "admin",
    json: { name: `Person ${crypto.randomUUID().slice(0, 6)}`, role },
  });
  return (await res.json()) as JsonBody;
}

async function keyOf(operatorId: string, role = "operator") {
  const res = await t.request("/v1/keys", {
    method: "POST",
    as: "admin",
    json: { name: `k-${crypto.randomUUID().slice(0, 6)}`, role, operator_id: operatorId },
  });
  expect(res.status).toBe(201);
  return (await res.json()) as JsonBody;
}

const approve = (key: string, id: string) => requestWithKey(t, key, `/v1/decisions/${id}/approve`, { method: "POST", json: {} });

describe("quorum counts people, not keys", () => {
  test("two keys of one person count once; a second person completes the quorum", async () => {
    const alice = await person();
    const [aliceLaptop, aliceCli] = [await keyOf(alice.id), await keyOf(alice.id)];
    const bob = await keyOf((await person()).id);
    const decision = await createDecision(t, { required_approvals: 2 });

    const first = await approve(aliceLaptop.key, decision.id);
    expect(first.status).toBe(200);
    expect(((await first.json()) as JsonBody).approver_people).toEqual([alice.id]);

    const again = await approve(aliceCli.key, decision.id);
    expect(again.status).toBe(409);
    expect(await errorCode(again)).toBe("already_approved");

    const done = await approve(bob.key, decision.id);
    expect(done.status).toBe(200);
    const approved = (await done.json()) as JsonBody;
    expect(approved.status).toBe("approved");
    expect(approved.approvals).toEqual([aliceLaptop.id, bob.id]);
    expect(approved.approver_people).toEqual([alice.id, bob.operator_id]);

    const recorded = (await auditTrail(t, decision.id)).filter((row) => row.type === "approval_recorded" || row.type === "approved");
    expect(recorded.map((row) => row.data.person_id)).toEqual([alice.id, bob.operator_id]);

    // The signed receipt names each approver's key and person, and counts people.
    const receipt = (await (await t.request(`/v1/decisions/${decision.id}/receipt`, { as: "admin" })).json()) as JsonBody;
    expect(receipt.claims.decided_by.people).toEqual([
      { key_id: aliceLaptop.id, person_id: alice.id, name: aliceLaptop.name },
      { key_id: bob.id, person_id: bob.operator_id, name: bob.name },
    ]);
    expect(receipt.claims.quorum).toEqual({ required: 2, approvals: 2 });
  });

  test("a person never approves their own request with another of their keys", async () => {
    const carol = await person("admin");
    const carolService = await keyOf(carol.id, "service");
    const carolOperator = await keyOf(carol.id, "operator");
    const res = await requestWithKey(t, carolService.key, "/v1/decisions", {
      method: "POST",
      json: { kind: "deploy", title: "Carol's own change", payload: { n: 1 } },
    });
    const decision = (await res.json()) as JsonBody;
    expect(decision.requester_person_id).toBe(carol.id);

    const self = await approve(carolOperator.key, decision.id);
    expect(self.status).toBe(403);
    expect(await errorCode(self)).toBe("self_approval_forbidden");
    const unchanged = (await (await t.request(`/v1/decisions/${decision.id}`, { as: "admin" })).json()) as JsonBody;
    expect(unchanged).toMatchObject({ status: "pending", approvals: [], approver_people: [] });
  });

  test("keys that are no person's are each their own approver, as before", async () => {
    const decision = await createDecision(t, { required_approvals: 2 });
    expect(decision.requester_person_id).toBe(t.keyIds.service);
    expect((await t.request(`/v1/decisions/${decision.id}/approve`, { method: "POST", as: "operator", json: {} })).status).toBe(200);
    const done = await t.request(`/v1/decisions/${decision.id}/approve`, { method: "POST", as: "admin", json: {} });
    expect(((await done.json()) as JsonBody).approver_people).toEqual([t.keyIds.operator, t.keyIds.admin]);
  });

  test("a key given to a person later approves as that person", async () => {
    const dave = await person();
    const daveKey = await keyOf(dave.id);
    const loose = (await (
      await t.request("/v1/keys", { method: "POST", as: "admin", json: { name: "dave-old", role: "operator" } })
    ).json()) as JsonBody;
    const decision = await createDecision(t, { required_approvals: 2 });
    expect((await approve(daveKey.key, decision.id)).status).toBe(200);
    await t.request(`/v1/operators/${dave.id}/keys`, { method: "POST", as: "admin", json: { key_id: loose.id } });
    const second = await approve(loose.key, decision.id);
    expect(second.status).toBe(409);
    expect(await errorCode(second)).toBe("already_approved");
  });
});
