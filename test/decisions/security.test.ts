import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startTestApp, type TestApp } from "../helpers/app";
import { act, createDecision, extraKey, requestWithKey } from "./helpers";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

let t: TestApp;
let otherService: { key: string; id: string };
beforeAll(async () => {
  t = await startTestApp();
  otherService = await extraKey(t, "service");
}, 30_000);
afterAll(() => t.close());

describe("object-level access for service keys (BOLA)", () => {
  test("another service's decision is a 404 for every read and action", async () => {
    const mine = await createDecision(t);
    await act(t, mine.id, "approve", "operator");
    const as = (path: string, method = "GET", json?: unknown) => requestWithKey(t, otherService.key, path, { method, json });
    for (const [path, method, json] of [
      [`/v1/decisions/${mine.id}`, "GET", undefined],
      [`/v1/decisions/${mine.id}?wait=1`, "GET", undefined],
      [`/v1/decisions/${mine.id}/consume`, "POST", undefined],
      [`/v1/decisions/${mine.id}/cancel`, "POST", {}],
    ] as const) {
      const res = await as(path, method, json);
      expect({ path, status: res.status }).toEqual({ path, status: 404 });
    }
    // Listings and the queue show a service only its own decisions, whatever filter it passes.
    const pending = await createDecision(t);
    const listed = await (await as(`/v1/decisions?requester=${t.keyIds.service}&limit=500`)).json();
    expect(listed.data).toEqual([]);
    const queue = await (await as("/v1/decisions/pending?limit=500")).json();
    expect(queue.data.some((d: { id: string }) => d.id === pending.id)).toBe(false);
    // The owner still consumes its approval: the failed attempts above changed nothing.
    expect((await act(t, mine.id, "consume", "service")).status).toBe(200);
  });

  test("operators and readonly keys see every decision", async () => {
    const d = await createDecision(t);
    for (const role of ["admin", "operator", "readonly"] as const) {
      expect((await t.request(`/v1/decisions/${d.id}`, { as: role })).status).toBe(200);
    }
  });
});

describe("permissions", () => {
  test("each action needs its permission", async () => {
    const d = await createDecision(t);
    const denied: [string, "service" | "readonly" | "operator", unknown][] = [
      ["approve", "service", {}],
      ["approve", "readonly", {}],
      ["reject", "readonly", { reason: "no" }],
      ["escalate", "service", {}],
      ["escalate", "readonly", {}],
      ["cancel", "operator", {}],
      ["consume", "operator", undefined],
    ];
    for (const [verb, role, body] of denied) {
      const res = await act(t, d.id, verb, role, body);
      expect({ verb, role, status: res.status }).toEqual({ verb, role, status: 403 });
      expect((await res.json()).error.code).toBe("forbidden");
    }
    const createAsOperator = await t.request("/v1/decisions", {
      method: "POST",
      as: "operator",
      json: { kind: "x", title: "x", payload: 1 },
    });
    expect(createAsOperator.status).toBe(403);
    const anonymous = await t.request(`/v1/decisions/${d.id}`);
    expect(anonymous.status).toBe(401);
    const anonymousStream = await t.request("/v1/decisions/stream");
    expect(anonymousStream.status).toBe(401);
  });

  test("only the requester consumes, and never before approval", async () => {
    const d = await createDecision(t, {}, "admin");
    const early = await act(t, d.id, "consume", "admin");
    expect(early.status).toBe(409);
    expect((await early.json()).error.code).toBe("decision_not_approved");
    await act(t, d.id, "approve", "operator");
    const bySomeoneElse = await requestWithKey(t, otherService.key, `/v1/decisions/${d.id}/consume`, { method: "POST" });
    expect(bySomeoneElse.status).toBe(404);
    expect((await act(t, d.id, "consume", "admin")).status).toBe(200);
  });

  test("no secret reaches the logs", async () => {
    const d = await createDecision(t);
    await act(t, d.id, "approve", "operator");
    const text = JSON.stringify(t.logs);
    for (const key of Object.values(t.keys)) expect(text).not.toContain(key);
  });
});
