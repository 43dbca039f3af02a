import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { exportJWK, generateKeyPair, type JSONWebKeySet, SignJWT } from "jose";
import { createApp } from "../../src/app";
import { rotateSigningKey } from "../../src/auth/tokens";
import { RECEIPT_TYPE } from "../../src/decisions/receipt-format";
import { ReceiptError, verifyReceipt } from "../../src/sdk";
import { startTestApp, type TestApp } from "../helpers/app";
import { act, createDecision, extraKey, type JsonBody, requestWithKey, samplePayload } from "./helpers";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const jwks = async (): Promise<JSONWebKeySet> => (await (await t.request("/.well-known/jwks.json")).json()) as JSONWebKeySet;
async function receiptOf(id: string, as: "service" | "operator" = "service"): Promise<JsonBody> {
  const res = await t.request(`/v1/decisions/${id}/receipt`, { as });
  expect(res.status).toBe(200);
  return (await res.json()) as JsonBody;
}
async function approved(body: Record<string, unknown> = {}) {
  const decision = await createDecision(t, body);
  expect((await act(t, decision.id, "approve", "operator", { reason: "ok" })).status).toBe(200);
  return decision;
}
async function refusal(promise: Promise<unknown>): Promise<ReceiptError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ReceiptError);
    return error as ReceiptError;
  }
  throw new Error("the receipt verified, but it should have been refused");
}

describe("decision receipts", () => {
  test("an approved decision's receipt verifies offline and names its approver, the hash, the quorum and the time", async () => {
    const decision = await approved();
    const body = await receiptOf(decision.id);
    expect(body.decision_id).toBe(decision.id);
    const [header] = body.receipt.split(".");
    expect(JSON.parse(atob(header.replace(/-/g, "+").replace(/_/g, "/")))).toMatchObject({
      alg: "EdDSA",
      typ: RECEIPT_TYPE,
      kid: body.kid,
    });

    const verified = await verifyReceipt(body.receipt, { jwks: await jwks(), payload: samplePayload, decisionId: decision.id });
    expect(verified.approved).toBe(true);
    const settled = (await (await t.request(`/v1/decisions/${decision.id}`, { as: "service" })).json()) as JsonBody;
    expect(verified.claims).toEqual({
      iss: t.deps.config.TOKEN_ISSUER,
      sub: decision.id,
      iat: Math.floor(Date.parse(settled.resolved_at) / 1000),
      kind: "deploy",
      outcome: "approved",
      payload_hash: decision.payload_hash,
      requested_payload_hash: decision.payload_hash,
      decided_by: { type: "people", people: [{ key_id: t.keyIds.operator, person_id: t.keyIds.operator, name: "test-operator" }] },
      quorum: { required: 1, approvals: 1 },
      requester_key_id: t.keyIds.service,
      decided_at: settled.resolved_at,
    });
    expect(body.claims).toEqual(verified.claims);
    // Signed from the stored row with a deterministic signature: asking again gives the same bytes.
    expect((await receiptOf(decision.id, "operator")).receipt).toBe(body.receipt);
  });

  test("a tampered payload, a tampered receipt and a forged signature are refused", async () => {
    const decision = await approved();
    const { receipt } = await receiptOf(decision.id);
    const keys = await jwks();
    const otherPayload = { ...samplePayload, version: "2.4.2" };
    expect((await refusal(verifyReceipt(receipt, { jwks: keys, payload: otherPayload }))).code).toBe("payload_mismatch");

    // Claims rewritten to the other payload's hash: the signature no longer covers them.
    const [header, claims, signature] = receipt.split(".");
    const forgedClaims = JSON.parse(Buffer.from(claims, "base64url").toString());
    forgedClaims.payload_hash = new Bun.CryptoHasher("sha256").update(JSON.stringify(otherPayload)).digest("hex");
    const tampered = `${header}.${Buffer.from(JSON.stringify(forgedClaims)).toString("base64url")}.${signature}`;
    expect((await refusal(verifyReceipt(tampered, { jwks: keys, payload: otherPayload }))).code).toBe("invalid_receipt");

    // Signed by someone else's key under Arbiter's kid: the published key does not verify it.
    const { privateKey } = await generateKeyPair("EdDSA");
    const kid = JSON.parse(Buffer.from(header, "base64url").toString()).kid;
    const forged = await new SignJWT(forgedClaims).setProtectedHeader({ alg: "EdDSA", kid, typ: RECEIPT_TYPE }).sign(privateKey);
    expect((await refusal(verifyReceipt(forged, { jwks: keys, payload: otherPayload }))).code).toBe("invalid_receipt");

    // The right receipt against a key set that is not Arbiter's: no key matches.
    const { publicKey } = await generateKeyPair("EdDSA", { extractable: true });
    const strangers = { keys: [{ ...(await exportJWK(publicKey)), kid: "someone-else", alg: "EdDSA" }] };
    expect((await refusal(verifyReceipt(receipt, { jwks: strangers, payload: samplePayload }))).code).toBe("unknown_key");
    expect((await refusal(verifyReceipt("not-a-jws", { jwks: keys, payload: samplePayload }))).code).toBe("invalid_receipt");
  });

  test("a receipt for another decision is refused; a service token is not a receipt", async () => {
    const first = await approved();
    const second = await approved();
    const { receipt } = await receiptOf(first.id);
    const error = await refusal(verifyReceipt(receipt, { jwks: await jwks(), payload: samplePayload, decisionId: second.id }));
    expect(error.code).toBe("wrong_decision");

    const issued = await t.request("/v1/auth/token", { method: "POST", as: "service", json: {} });
    const { token } = (await issued.json()) as JsonBody;
    expect((await refusal(verifyReceipt(token, { jwks: await jwks(), payload: samplePayload }))).code).toBe("invalid_receipt");
  });

  test("a receipt obtained before a key rotation still verifies while the previous key is published", async () => {
    const decision = await approved();
    const before = await receiptOf(decision.id);
    const newKid = await rotateSigningKey(t.deps.database.db, new Date());
    // A replica started after the rotation: it signs with the new key and publishes both.
    const replica = createApp(t.deps);
    const fetchReplica = async (path: string) =>
      (await replica.fetch(new Request(`http://replica${path}`, { headers: { "X-API-Key": t.keys.service } }))).json() as Promise<JsonBody>;
    const after = await fetchReplica(`/v1/decisions/${decision.id}/receipt`);
    expect(after.kid).toBe(newKid);
    expect(after.kid).not.toBe(before.kid);
    const published = (await fetchReplica("/.well-known/jwks.json")) as JSONWebKeySet;
    expect(published.keys.map((key) => key.kid)).toEqual(expect.arrayContaining([before.kid, newKid]));
    for (const receipt of [before.receipt, after.receipt]) {
      const verified = await verifyReceipt(receipt, { jwks: published, payload: samplePayload, decisionId: decision.id });
      expect(verified.approved).toBe(true);
    }
    // Once the old key is no longer published, its receipts no longer verify (and say why).
    const withoutOld = { keys: published.keys.filter((key) => key.kid !== before.kid) };
    expect((await refusal(verifyReceipt(before.receipt, { jwks: withoutOld, payload: samplePayload }))).code).toBe("unknown_key");
  });

  test("who decided: a quorum lists every approver, a rejection its rejecter, a timeout says timeout", async () => {
    const second = await extraKey(t, "operator", "second-operator");
    const quorum = await createDecision(t, { required_approvals: 2 });
    expect((await act(t, quorum.id, "approve", "operator")).status).toBe(200);
    expect((await requestWithKey(t, second.key, `/v1/decisions/${quorum.id}/approve`, { method: "POST", json: {} })).status).toBe(200);
    const quorumClaims = (await receiptOf(quorum.id)).claims;
    expect(quorumClaims.decided_by).toEqual({
      type: "people",
      people: [
        { key_id: t.keyIds.operator, person_id: t.keyIds.operator, name: "test-operator" },
        { key_id: second.id, person_id: second.id, name: "second-operator" },
      ],
    });
    expect(quorumClaims.quorum).toEqual({ required: 2, approvals: 2 });

    const rejected = await createDecision(t);
    expect((await act(t, rejected.id, "reject", "admin", { reason: "not today" })).status).toBe(200);
    const rejectedBody = await receiptOf(rejected.id);
    expect(rejectedBody.claims).toMatchObject({
      outcome: "rejected",
      decided_by: { type: "people", people: [{ key_id: t.keyIds.admin, person_id: t.keyIds.admin, name: "test-admin" }] },
    });
    const verifiedRejection = await verifyReceipt(rejectedBody.receipt, { jwks: await jwks(), payload: samplePayload });
    expect(verifiedRejection.approved).toBe(false);

    const byDefault = await createDecision(t, { expires_in: 1, on_timeout: "approve" });
    const expiring = await createDecision(t, { expires_in: 1 });
    await Bun.sleep(1_100);
    expect((await receiptOf(byDefault.id)).claims).toMatchObject({ outcome: "approved", decided_by: { type: "timeout" } });
    expect((await receiptOf(expiring.id)).claims).toMatchObject({ outcome: "expired", decided_by: { type: "timeout" } });
  });

  test("an edited approval's receipt is signed over the edited payload", async () => {
    const decision = await createDecision(t);
    const edited = { ...samplePayload, rollout: { percent: 10, regions: ["eu-west-1"] } };
    expect((await act(t, decision.id, "approve", "operator", { payload: edited })).status).toBe(200);
    const { receipt, claims } = await receiptOf(decision.id);
    expect(claims.requested_payload_hash).toBe(decision.payload_hash);
    expect((await verifyReceipt(receipt, { jwks: await jwks(), payload: edited })).approved).toBe(true);
    expect((await refusal(verifyReceipt(receipt, { jwks: await jwks(), payload: samplePayload }))).code).toBe("payload_mismatch");
  });

  test("no receipt while pending (409); another service's decision is not found; readers need decisions:read", async () => {
    const pending = await createDecision(t);
    const res = await t.request(`/v1/decisions/${pending.id}/receipt`, { as: "service" });
    expect(res.status).toBe(409);
    expect(((await res.json()) as JsonBody).error).toMatchObject({ code: "decision_not_final", details: { status: "pending" } });

    const decision = await approved();
    const stranger = await extraKey(t, "service");
    expect((await requestWithKey(t, stranger.key, `/v1/decisions/${decision.id}/receipt`)).status).toBe(404);
    expect((await t.request(`/v1/decisions/${decision.id}/receipt`)).status).toBe(401);
    expect((await t.request("/v1/decisions/not-a-uuid/receipt", { as: "service" })).status).toBe(400);
  });
});
