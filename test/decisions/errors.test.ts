import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { count } from "drizzle-orm";
import { decisionEvents, decisions } from "../../src/db/schema";
import { startTestApp, type TestApp } from "../helpers/app";
import { act, createDecision } from "./helpers";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ env: { DECISION_PAYLOAD_MAX_BYTES: "1024" } });
}, 30_000);
afterAll(() => t.close());

/** rows in decisions and decision_events: bad input must change neither */
async function storedCounts() {
  const [d] = await t.deps.database.db.select({ n: count() }).from(decisions);
  const [e] = await t.deps.database.db.select({ n: count() }).from(decisionEvents);
  return [d!.n, e!.n];
}

const create = (json: unknown, headers: Record<string, string> = {}) =>
  t.request("/v1/decisions", { method: "POST", as: "service", json, headers });
const valid = { kind: "deploy", title: "Deploy", payload: { a: 1 } };

describe("bad input is a 4xx with the error shape and changes nothing", () => {
  test("create", async () => {
    const before = await storedCounts();
    const cases: [unknown, number, string][] = [
      [{ ...valid, surprise: true }, 400, "validation_failed"],
      [{ ...valid, kind: "Deploy Now" }, 400, "validation_failed"],
      [{ ...valid, title: 42 }, 400, "validation_failed"],
      [{ ...valid, payload: undefined }, 400, "validation_failed"],
      [{ ...valid, priority: "urgent" }, 400, "validation_failed"],
      [{ ...valid, required_approvals: 6 }, 400, "validation_failed"],
      [{ ...valid, required_approvals: 0 }, 400, "validation_failed"],
      [{ ...valid, on_timeout: "ignore" }, 400, "validation_failed"],
      [{ ...valid, expires_in: 10 * 365 * 86_400 }, 400, "validation_failed"],
      [{ ...valid, payload: { blob: "x".repeat(2_000) } }, 413, "decision_payload_too_large"],
      [{ ...valid, context: { note: "x".repeat(17_000) } }, 413, "decision_context_too_large"],
      [{ ...valid, callback_url: "https://example.com/hook" }, 422, "webhooks_not_configured"],
      [[], 400, "validation_failed"],
    ];
    for (const [body, status, code] of cases) {
      const res = await create(body);
      const answer = await res.json();
      expect({ body, status: res.status, code: answer.error?.code }).toEqual({ body, status, code });
      expect(typeof answer.error.message).toBe("string");
    }
    const malformed = await t.request("/v1/decisions", {
      method: "POST",
      as: "service",
      headers: { "Content-Type": "application/json" },
      body: "{nope",
    });
    expect(malformed.status).toBe(400);
    const badKey = await create(valid, { "Idempotency-Key": "has spaces in it" });
    expect(badKey.status).toBe(400);
    expect(await storedCounts()).toEqual(before);
  });

  test("an expires_in over DECISION_MAX_TTL_SECONDS names the field as every validation error does", async () => {
    const res = await create({ ...valid, expires_in: 10 * 365 * 86_400 });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; details: { path: string }[] } };
    expect(body.error.code).toBe("validation_failed");
    expect(body.error.details.map((d) => d.path)).toEqual(["json.expires_in"]);
  });

  test("reads", async () => {
    const cases: [string, number, string][] = [
      ["/v1/decisions/not-a-uuid", 400, "validation_failed"],
      [`/v1/decisions/${crypto.randomUUID()}`, 404, "not_found"],
      ["/v1/decisions?cursor=%%%", 400, "invalid_cursor"],
      [`/v1/decisions?cursor=${btoa(JSON.stringify([1, "x"]))}`, 400, "invalid_cursor"],
      [`/v1/decisions/pending?cursor=${btoa(JSON.stringify([1, "9.x"]))}`, 400, "invalid_cursor"],
      ["/v1/decisions?limit=0", 400, "validation_failed"],
      ["/v1/decisions?status=maybe", 400, "validation_failed"],
      ["/v1/decisions?created_after=yesterday", 400, "validation_failed"],
      ["/v1/decisions?colour=red", 400, "validation_failed"],
    ];
    for (const [path, status, code] of cases) {
      const res = await t.request(path, { as: "operator" });
      expect({ path, status: res.status, code: (await res.json()).error?.code }).toEqual({ path, status, code });
    }
    const d = await createDecision(t);
    for (const wait of ["56", "-1", "1.5", "soon"]) {
      const res = await t.request(`/v1/decisions/${d.id}?wait=${wait}`, { as: "service" });
      expect({ wait, status: res.status }).toEqual({ wait, status: 400 });
    }
  });

  test("illegal transitions: 409 with the current state, stored state unchanged", async () => {
    const d = await createDecision(t);
    await act(t, d.id, "approve", "operator");
    const before = await storedCounts();
    for (const [verb, as, body] of [
      ["approve", "admin", {}],
      ["reject", "operator", { reason: "late" }],
      ["escalate", "operator", {}],
      ["cancel", "service", {}],
    ] as const) {
      const res = await act(t, d.id, verb, as, body);
      const answer = await res.json();
      expect({ verb, status: res.status, code: answer.error.code }).toEqual({ verb, status: 409, code: "decision_not_pending" });
      expect(answer.error.details.decision.status).toBe("approved");
    }
    const unknownField = await act(t, d.id, "approve", "admin", { reason: "x", extra: 1 });
    expect(unknownField.status).toBe(400);
    const missing = await act(t, crypto.randomUUID(), "approve", "operator");
    expect(missing.status).toBe(404);
    expect(await storedCounts()).toEqual(before);
    expect((await (await t.request(`/v1/decisions/${d.id}`, { as: "operator" })).json()).status).toBe("approved");
  });

  test("approving with an oversized edited payload is a 413 and the decision stays pending", async () => {
    const d = await createDecision(t);
    const before = await storedCounts();
    const res = await act(t, d.id, "approve", "operator", { payload: { blob: "x".repeat(2_000) } });
    expect(res.status).toBe(413);
    expect((await res.json()).error.code).toBe("decision_payload_too_large");
    expect(await storedCounts()).toEqual(before);
    const current = await (await t.request(`/v1/decisions/${d.id}`, { as: "operator" })).json();
    expect({ status: current.status, approvals: current.approvals }).toEqual({ status: "pending", approvals: [] });
  });
});
