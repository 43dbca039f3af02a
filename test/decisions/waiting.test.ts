import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { decisionEvents } from "../../src/db/schema";
import { startDecisionWorkers } from "../../src/decisions/background";
import { latestEventId } from "../../src/decisions/event-stream";
import { CONTEXT_MAX_BYTES, EVENT_DECISION_MAX_BYTES } from "../../src/decisions/schemas";
import { startTestApp, type TestApp } from "../helpers/app";
import { usingRealPostgres } from "../helpers/db";
import { act, createDecision, readSse, sharedDatabase } from "./helpers";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
}, 30_000);
afterAll(() => t.close());

describe("long-poll", () => {
  test("?wait answers as soon as the decision is approved", async () => {
    const d = await createDecision(t);
    const waiting = t.request(`/v1/decisions/${d.id}?wait=30`, { as: "service" });
    await new Promise((resolve) => setTimeout(resolve, 200)); // let the request park as a waiter
    await act(t, d.id, "approve", "operator", { reason: "go" });
    const res = await waiting;
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id: d.id, status: "approved", resolution_reason: "go" });
  });

  test("?wait answers with the current (pending) state at the timeout", async () => {
    const d = await createDecision(t);
    const res = await t.request(`/v1/decisions/${d.id}?wait=1`, { as: "service" });
    expect(res.status).toBe(200);
    expect((await res.json()).status).toBe("pending");
  });

  test("?wait on a settled decision answers at once", async () => {
    const d = await createDecision(t);
    await act(t, d.id, "reject", "operator", { reason: "no" });
    const res = await t.request(`/v1/decisions/${d.id}?wait=55`, { as: "service" });
    expect((await res.json()).status).toBe("rejected");
  });
});

describe("across replicas", () => {
  test("a waiter on one app instance is released by an approval on another", async () => {
    const shared = await sharedDatabase();
    const replicaA = await startTestApp({ database: shared.first });
    const replicaB = await startTestApp({ database: shared.second });
    try {
      const d = await createDecision(replicaA);
      // Warm replica A's cache with the pending state: the verdict must still reach its readers.
      expect((await (await replicaA.request(`/v1/decisions/${d.id}`, { as: "operator" })).json()).status).toBe("pending");
      const waiting = replicaA.request(`/v1/decisions/${d.id}?wait=30`, { as: "service" });
      await new Promise((resolve) => setTimeout(resolve, 200)); // let the waiter park on replica A
      const approved = await act(replicaB, d.id, "approve", "operator");
      expect(approved.status).toBe(200);
      const res = await waiting;
      expect((await res.json()).status).toBe("approved");
      await waitUntil(
        async () => (await (await replicaA.request(`/v1/decisions/${d.id}`, { as: "operator" })).json()).status === "approved",
      );
    } finally {
      await replicaA.close();
      await replicaB.close();
      await shared.close();
    }
  });
});

describe("server-sent events across replicas", () => {
  test("a stream on one app instance carries the decisions changed on another", async () => {
    const shared = await sharedDatabase();
    const replicaA = await startTestApp({ database: shared.first });
    const replicaB = await startTestApp({ database: shared.second });
    try {
      const stream = await replicaB.request("/v1/decisions/stream", { as: "operator" });
      const reading = readSse(stream, 2);
      const d = await createDecision(replicaA);
      const approval = await act(replicaA, d.id, "approve", "operator");
      const approved = await approval.json();
      const events = await reading;
      expect(events.map((e) => e.event)).toEqual(["created", "approved"]);
      // Each event holds the decision as stored when B read it: at least as new as the event.
      expect(events[0]!.data.decision).toMatchObject({ id: d.id, payload: d.payload, created_at: d.created_at });
      expect(events[1]!.data.decision).toEqual(approved);
    } finally {
      await replicaA.close();
      await replicaB.close();
      await shared.close();
    }
  });
});

describe("across replicas, in a burst", () => {
  test("approvals committed together on one instance reach every waiter parked on another", async () => {
    const shared = await sharedDatabase();
    const replicaA = await startTestApp({ database: shared.first });
    const replicaB = await startTestApp({ database: shared.second });
    try {
      const decisions = await Promise.all(Array.from({ length: 12 }, () => createDecision(replicaA)));
      // B hears of A's changes only through the notifications A sends after each commit, batched
      // per turn of its event loop: none of these waiters can be settled by A directly.
      const waiting = decisions.map((d) => replicaB.request(`/v1/decisions/${d.id}?wait=30`, { as: "operator" }));
      await new Promise((resolve) => setTimeout(resolve, 300)); // let the waiters park on replica B
      const approvals = await Promise.all(decisions.map((d) => act(replicaA, d.id, "approve", "operator")));
      expect(approvals.map((res) => res.status)).toEqual(decisions.map(() => 200));
      const answers = await Promise.all(waiting.map(async (res) => (await (await res).json()).status));
      expect(answers).toEqual(decisions.map(() => "approved"));
    } finally {
      await replicaA.close();
      await replicaB.close();
      await shared.close();
    }
  });
});

describe("server-sent events", () => {
  test("streams changes and resumes from Last-Event-ID without gaps", async () => {
    const controller = new AbortController();
    const live = await t.request("/v1/decisions/stream", { as: "operator", signal: controller.signal });
    expect(live.status).toBe(200);
    expect(live.headers.get("content-type")).toContain("text/event-stream");
    const reading = readSse(live, 3);
    const d = await createDecision(t);
    await act(t, d.id, "escalate", "operator");
    await act(t, d.id, "approve", "admin");
    const events = await reading;
    controller.abort();
    expect(events.map((e) => e.event)).toEqual(["created", "escalated", "approved"]);
    expect(events.every((e) => e.data.decision_id === d.id)).toBe(true);
    const ids = events.map((e) => Number(e.id));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));

    // Changes while disconnected are replayed after the last event the client saw.
    const e = await createDecision(t);
    await act(t, e.id, "cancel", "service");
    const resumed = await t.request("/v1/decisions/stream", { as: "operator", headers: { "Last-Event-ID": events[0]!.id } });
    const replay = await readSse(resumed, 4);
    expect(replay.map((x) => [x.event, x.data.decision_id])).toEqual([
      ["escalated", d.id],
      ["approved", d.id],
      ["created", e.id],
      ["cancelled", e.id],
    ]);
  });

  test("a service key's stream carries only its own decisions", async () => {
    const foreign = await createDecision(t, {}, "admin");
    const own = await createDecision(t);
    const res = await t.request("/v1/decisions/stream?last_event_id=0", { as: "service" });
    const events = await readSse(res, 10_000, (seen) => seen.some((e) => e.data.decision_id === own.id));
    const decisionIds = new Set(events.map((e) => e.data.decision_id));
    expect(decisionIds.has(own.id)).toBe(true);
    expect(decisionIds.has(foreign.id)).toBe(false);
  });

  test("a created event carries the decision as GET answers it, and an approval the approved decision", async () => {
    const operatorStream = readSse(await t.request("/v1/decisions/stream", { as: "operator" }), 1);
    const serviceStream = readSse(await t.request("/v1/decisions/stream", { as: "service" }), 1);
    const d = await createDecision(t);
    const [[created], [seenByService]] = await Promise.all([operatorStream, serviceStream]);
    expect(created!.event).toBe("created");
    expect(created!.data.decision).toEqual(await (await t.request(`/v1/decisions/${d.id}`, { as: "operator" })).json());
    // The requesting service key is shown exactly what its GET shows it.
    expect(seenByService!.data.decision).toEqual(await (await t.request(`/v1/decisions/${d.id}`, { as: "service" })).json());

    const resumed = await t.request("/v1/decisions/stream", { as: "operator", headers: { "Last-Event-ID": created!.id } });
    const approval = await act(t, d.id, "approve", "operator", { reason: "ship it" });
    const [approved] = await readSse(resumed, 1);
    expect(approved!.event).toBe("approved");
    expect(approved!.data.decision).toEqual(await approval.json());
    expect(approved!.data.decision).toMatchObject({ status: "approved", resolution_reason: "ship it" });
  });

  test("a decision too large for an event is left out, and the event still comes", async () => {
    const stream = readSse(await t.request("/v1/decisions/stream", { as: "operator" }), 2);
    // Each within its own limit; presented together they exceed what an event carries.
    const large = await createDecision(t, {
      payload: { blob: "x".repeat(EVENT_DECISION_MAX_BYTES - 4_000) },
      context: { note: "y".repeat(CONTEXT_MAX_BYTES - 100) },
    });
    const small = await createDecision(t);
    const [first, second] = await stream;
    expect(first!.data).toMatchObject({ decision_id: large.id, type: "created", to_status: "pending", decision: null });
    expect(second!.data.decision).toMatchObject({ id: small.id, status: "pending" });
    // What the client then does: read it.
    expect((await (await t.request(`/v1/decisions/${large.id}`, { as: "operator" })).json()).payload_hash).toBe(large.payload_hash);
  });

  test("an id burned by a rolled-back transaction is stepped over after the grace period", async () => {
    const start = await latestEventId(t.deps);
    const d = await createDecision(t);
    const burned = await t.deps.database.db
      .transaction(async (tx) => {
        await tx.insert(decisionEvents).values({ decisionId: d.id, type: "escalated", toStatus: "pending" });
        throw new Error("roll back");
      })
      .catch((error: Error) => error.message);
    expect(burned).toBe("roll back");
    const after = await createDecision(t);
    const res = await t.request(`/v1/decisions/stream?last_event_id=${start}`, { as: "operator" });
    const events = await readSse(res, 2);
    expect(events.map((e) => e.data.decision_id)).toEqual([d.id, after.id]);
    // The hole between them is the rolled-back id: never delivered, and not waited for again.
    expect(Number(events[1]!.id) - Number(events[0]!.id)).toBe(2);
  }, 15_000);

  test("a malformed Last-Event-ID is a 400", async () => {
    const res = await t.request("/v1/decisions/stream", { as: "operator", headers: { "Last-Event-ID": "abc" } });
    expect(res.status).toBe(400);
    expect((await res.json()).error.code).toBe("invalid_last_event_id");
  });
});

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("server-sent events and commit order", () => {
  // Needs two connections: one transaction holds an event id open while another commits a later one.
  test.skipIf(!usingRealPostgres())("an event committed after a higher id is still delivered, in id order", async () => {
    const d = await createDecision(t);
    const stream = await t.request("/v1/decisions/stream", { as: "operator" });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let heldId = 0;
    const held = t.deps.database.db.transaction(async (tx) => {
      const [row] = await tx
        .insert(decisionEvents)
        .values({ decisionId: d.id, type: "escalated", fromStatus: "pending", toStatus: "pending", data: { note: "slow writer" } })
        .returning({ id: decisionEvents.id });
      heldId = row!.id;
      await gate;
    });
    await waitUntil(async () => heldId > 0);
    const later = await createDecision(t); // its event id is higher, and it commits first
    const reading = readSse(stream, 2);
    await new Promise((resolve) => setTimeout(resolve, 300));
    release();
    await held;
    const events = await reading;
    expect(events.map((e) => Number(e.id))).toEqual([heldId, heldId + 1]);
    expect(events[1]!.data.decision_id).toBe(later.id);
  });
});

test("shutdown answers parked long-polls and ends event streams, so the server can drain", async () => {
  const app = await startTestApp();
  try {
    const d = await createDecision(app);
    const waiting = app.request(`/v1/decisions/${d.id}?wait=55`, { as: "service" });
    const stream = await app.request("/v1/decisions/stream", { as: "operator" });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const workers = startDecisionWorkers(app.deps);
    await workers.stop();
    const res = await waiting;
    expect((await res.json()).status).toBe("pending");
    expect(await stream.text()).toContain("retry:"); // the body ends instead of hanging
  } finally {
    await app.close();
  }
});
