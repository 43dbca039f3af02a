import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { notifierOf } from "../../src/decisions/service";
import { ArbiterError, verifyPayload } from "../../src/sdk";
import { samplePayload } from "../decisions/helpers";
import { startTestApp, type TestApp } from "../helpers/app";
import { clientAs, rejection } from "./support";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const request = (title = "Deploy checkout 2.4.1") => ({ kind: "deploy", title, payload: samplePayload });

describe("decision lifecycle through the SDK", () => {
  test("create is idempotent: the same key and body answer the first decision, another body is refused", async () => {
    const service = clientAs(t, "service");
    const key = `deploy-${crypto.randomUUID()}`;
    const first = await service.decisions.create(request(), { idempotencyKey: key });
    const again = await service.decisions.create(request(), { idempotencyKey: key });
    expect(first.status).toBe("pending");
    expect(again.id).toBe(first.id);
    const reused = await rejection(service.decisions.create(request("another title"), { idempotencyKey: key }));
    expect(reused).toBeInstanceOf(ArbiterError);
    expect(reused).toMatchObject({ status: 422, code: "idempotency_key_reused" });
  });

  test("waitFor long-polls until another client approves; the payload verifies; consume succeeds once", async () => {
    const service = clientAs(t, "service");
    const operator = clientAs(t, "operator");
    const decision = await service.decisions.create(request(), { idempotencyKey: crypto.randomUUID() });
    const notifier = notifierOf(t.deps);
    const parkedBefore = notifier.waiting;
    const verdict = service.decisions.waitFor(decision.id, { timeoutSeconds: 30 });
    // The waiter is parked on the server before anyone acts, so the approval is what releases it.
    while (notifier.waiting === parkedBefore) await Bun.sleep(5);
    const approved = await operator.decisions.approve(decision.id, { reason: "ship it" });
    expect(approved.status).toBe("approved");

    const settled = await verdict;
    expect(settled).toMatchObject({ id: decision.id, status: "approved", resolution_reason: "ship it" });
    // What the caller asked about verifies whatever its key order; anything else does not.
    const reordered = { rollout: { regions: ["eu-west-1", "us-east-1"], percent: 100 }, version: "2.4.1", service: "checkout" };
    expect(verifyPayload(settled, reordered)).toBe(true);
    expect(service.decisions.verifyPayload(settled, { ...samplePayload, version: "2.4.2" })).toBe(false);
    expect(verifyPayload(settled, { ...samplePayload, rollout: { ...samplePayload.rollout, percent: 50 } })).toBe(false);

    const consumed = await service.decisions.consume(decision.id);
    expect(consumed.consumed_at).not.toBeNull();
    const twice = await rejection(service.decisions.consume(decision.id));
    expect(twice).toMatchObject({ status: 409, code: "already_consumed" });
  });

  test("an edited approval verifies only against the edited payload", async () => {
    const service = clientAs(t, "service");
    const decision = await service.decisions.create(request());
    const edited = { ...samplePayload, rollout: { percent: 10, regions: ["eu-west-1"] } };
    await clientAs(t, "admin").decisions.approve(decision.id, { payload: edited });
    const settled = await service.decisions.waitFor(decision.id, { timeoutSeconds: 5 });
    expect(settled.status).toBe("approved");
    expect(verifyPayload(settled, samplePayload)).toBe(false);
    expect(verifyPayload(settled, edited)).toBe(true);
  });

  test("waitFor returns the still-pending decision at the caller's deadline", async () => {
    const service = clientAs(t, "service");
    const decision = await service.decisions.create(request());
    const waited = await service.decisions.waitFor(decision.id, { timeoutSeconds: 1 });
    expect(waited.status).toBe("pending");
    expect(waited.id).toBe(decision.id);
  });

  test("reject, escalate and cancel reach the API and answer the changed decision", async () => {
    const service = clientAs(t, "service");
    const operator = clientAs(t, "operator");
    const toReject = await service.decisions.create(request());
    expect(await operator.decisions.reject(toReject.id, "not today")).toMatchObject({ status: "rejected", resolution_reason: "not today" });
    const toEscalate = await service.decisions.create(request());
    expect((await operator.decisions.escalate(toEscalate.id, { reason: "needs an admin" })).escalation_level).toBe(1);
    const toCancel = await service.decisions.create(request());
    expect((await service.decisions.cancel(toCancel.id, { reason: "no longer needed" })).status).toBe("cancelled");
  });
});

describe("lists", () => {
  test("listAll follows next_cursor across pages, newest first, each decision once", async () => {
    const service = clientAs(t, "service");
    const kind = `paging.${crypto.randomUUID().slice(0, 8)}`;
    const created: string[] = [];
    for (let i = 0; i < 5; i++) created.push((await service.decisions.create({ ...request(`page ${i}`), kind })).id);

    const seen: string[] = [];
    for await (const decision of service.decisions.listAll({ kind, limit: 2 })) seen.push(decision.id);
    expect(seen).toEqual(created.toReversed());

    const pageSizes: number[] = [];
    for await (const page of service.decisions.pages({ kind, limit: 2 })) pageSizes.push(page.data.length);
    expect(pageSizes).toEqual([2, 2, 1]);

    const first = await service.decisions.list({ kind, limit: 2 });
    expect(first.next_cursor).not.toBeNull();
    expect(first.data.map((d) => d.id)).toEqual(seen.slice(0, 2));
  });

  test("pendingAll walks the operator queue; a status filter narrows the list", async () => {
    const operator = clientAs(t, "operator");
    const queued: string[] = [];
    for await (const item of operator.decisions.pendingAll({ limit: 3 })) queued.push(item.id);
    const pending = await clientAs(t, "admin").decisions.list({ status: "pending", limit: 500 });
    expect(queued.toSorted()).toEqual(pending.data.map((d) => d.id).toSorted());
    expect(queued.length).toBeGreaterThan(3);
  });
});

describe("errors are ArbiterError with the API's code", () => {
  test("401 invalid key, 403 missing permission, 404 unknown id, 409 not pending, 400 validation", async () => {
    const unknownKey = await rejection(clientAs(t, "service", { apiKey: `arb_${"x".repeat(49)}` }).decisions.list());
    expect(unknownKey).toBeInstanceOf(ArbiterError);
    expect(unknownKey).toMatchObject({ status: 401, code: "invalid_key" });
    expect((unknownKey as ArbiterError).requestId).toMatch(/\S+/);

    const service = clientAs(t, "service");
    const decision = await service.decisions.create(request());
    const forbidden = await rejection(clientAs(t, "readonly").decisions.approve(decision.id));
    expect(forbidden).toMatchObject({ status: 403, code: "forbidden" });

    const missing = await rejection(service.decisions.get(crypto.randomUUID()));
    expect(missing).toMatchObject({ status: 404, code: "not_found" });

    await clientAs(t, "operator").decisions.approve(decision.id);
    const notPending = (await rejection(clientAs(t, "operator").decisions.reject(decision.id, "late"))) as ArbiterError;
    expect(notPending).toMatchObject({ status: 409, code: "decision_not_pending" });
    expect(notPending.details).toMatchObject({ status: "approved", decision: { id: decision.id, status: "approved" } });

    const invalid = (await rejection(service.decisions.create({ ...request(), kind: "Not A Kind" }))) as ArbiterError;
    expect(invalid.status).toBe(400);
    expect(JSON.stringify(invalid.details)).toContain("kind");
  });

  test("422 from the API: a callback URL without webhook signing configured", async () => {
    const refused = await rejection(
      clientAs(t, "service").decisions.create({ ...request(), callback_url: "https://hooks.example.com/arbiter" }),
    );
    expect(refused).toBeInstanceOf(ArbiterError);
    expect((refused as ArbiterError).status).toBe(422);
  });

  test("an unreachable server is a network_error with status 0", async () => {
    const server = Bun.serve({ port: 0, fetch: () => new Response() });
    const url = server.url.toString();
    await server.stop(true);
    const error = await rejection(clientAs(t, "service", { baseUrl: url }).decisions.list());
    expect(error).toMatchObject({ status: 0, code: "network_error" });
  });
});

describe("telemetry, keys and tokens", () => {
  test("sendEvents splits 1,500 events into batches; sending them again counts only duplicates", async () => {
    const service = clientAs(t, "service");
    const source = `sdk-${crypto.randomUUID().slice(0, 8)}`;
    const events = Array.from({ length: 1_500 }, (_, i) => ({
      type: "request",
      source,
      severity: "info" as const,
      occurred_at: new Date(),
      attributes: { i },
    }));
    const batches: number[] = [];
    const counting = clientAs(t, "service", {
      fetch: async (url, init) => {
        if (url.endsWith("/v1/telemetry/events")) batches.push((JSON.parse(String(init.body)) as { events: unknown[] }).events.length);
        return fetch(url, init);
      },
    });
    expect(await counting.telemetry.sendEvents(events)).toEqual({ received: 1_500, accepted: 1_500, duplicates: 0 });
    expect(batches).toEqual([1_000, 500]);

    const withIds = events.slice(0, 3).map((event, i) => ({ ...event, id: `${source}-${i}` }));
    expect(await service.telemetry.sendEvents(withIds)).toEqual({ received: 3, accepted: 3, duplicates: 0 });
    expect(await service.telemetry.sendEvents(withIds)).toEqual({ received: 3, accepted: 0, duplicates: 3 });
  });

  test("a snapshot becomes the source's latest", async () => {
    const service = clientAs(t, "service");
    const source = `sdk-${crypto.randomUUID().slice(0, 8)}`;
    const written = await service.telemetry.snapshot({ source, metrics: { queue_depth: 7, error_rate: 0.02 } });
    const latest = await service.telemetry.latest(source);
    expect(latest).toMatchObject({ id: written.id, source, metrics: { queue_depth: 7, error_rate: 0.02 } });
    expect(await rejection(service.telemetry.latest("sdk-no-such-source"))).toMatchObject({ status: 404 });
  });

  test("keys: create, list, rotate, revoke; a token issued to a key works as a credential", async () => {
    const admin = clientAs(t, "admin");
    const created = await admin.keys.create({ name: "sdk-service", role: "service" });
    expect(created.key).toMatch(/^arb_/);
    const listed: string[] = [];
    for await (const key of admin.keys.listAll({ role: "service", limit: 1 })) listed.push(key.id);
    expect(listed).toContain(created.id);

    const holder = clientAs(t, "service", { apiKey: created.key });
    const token = await holder.tokens.issue({ ttl_seconds: 60 });
    expect(token.token_type).toBe("Bearer");
    const viaToken = clientAs(t, "service", { apiKey: undefined, token: token.access_token });
    const decision = await viaToken.decisions.create(request());
    expect(decision.requester_key_id).toBe(created.id);

    const rotated = await admin.keys.rotate(created.id, { grace_seconds: 0 });
    expect(rotated.previous.id).toBe(created.id);
    expect(rotated.key).not.toBe(created.key);
    const revoked = await admin.keys.revoke(rotated.id);
    expect(revoked.status).toBe("revoked");
    expect(await rejection(admin.keys.revoke(rotated.id))).toMatchObject({ status: 409 });
  });

  test("the constructor refuses neither or both credentials", () => {
    expect(() => clientAs(t, "service", { apiKey: undefined })).toThrow(TypeError);
    expect(() => clientAs(t, "service", { token: "x" })).toThrow(TypeError);
  });
});
