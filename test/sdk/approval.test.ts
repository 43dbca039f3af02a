import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createApp } from "../../src/app";
import { latestEventId } from "../../src/decisions/event-stream";
import { notifierOf } from "../../src/decisions/service";
import { ArbiterClient, type DecisionEvent, type FetchLike, verifyReceipt } from "../../src/sdk";
import { samplePayload } from "../decisions/helpers";
import { startTestApp, type TestApp } from "../helpers/app";
import { clientAs } from "./support";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const request = (kind = `agent.${crypto.randomUUID().slice(0, 8)}`) => ({ kind, title: "Restart checkout", payload: samplePayload });
const jwks = async () => (await fetch(`${t.url}/.well-known/jwks.json`)).json();

/** Resolves once one more long-poll than before is parked on the server. */
async function parked(before: number) {
  const notifier = notifierOf(t.deps);
  while (notifier.waiting <= before) await Bun.sleep(5);
}

/** The decisions of a kind, as the operator sees them. */
const decisionsOfKind = async (kind: string) => (await clientAs(t, "admin").decisions.list({ kind })).data;

/**
 * The app served on a port that survives a restart: `restart` stops the server with its open
 * connections cut, waits, and serves a new app instance (over the same database) on the same port.
 */
function restartableServer() {
  let server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: createApp(t.deps).fetch, idleTimeout: 60 });
  const port = server.port;
  return {
    url: `http://127.0.0.1:${port}`,
    async restart(downMs: number) {
      await server.stop(true);
      await Bun.sleep(downMs);
      server = Bun.serve({ port, hostname: "127.0.0.1", fetch: createApp(t.deps).fetch, idleTimeout: 60 });
    },
    stop: () => server.stop(true),
  };
}

describe("requestApproval", () => {
  test("approved: the verdict, the verified receipt and the payload to act on", async () => {
    const kind = `agent.${crypto.randomUUID().slice(0, 8)}`;
    const before = notifierOf(t.deps).waiting;
    const asking = clientAs(t, "service").decisions.requestApproval(request(kind), { timeoutMs: 20_000 });
    await parked(before);
    const [decision] = await decisionsOfKind(kind);
    const id = decision!.id;
    await clientAs(t, "operator").decisions.approve(id, { reason: "go" });

    const result = await asking;
    expect(result.approved).toBe(true);
    expect(result.decision).toMatchObject({ id, status: "approved", resolution_reason: "go" });
    expect(result.payload).toEqual(samplePayload);
    const verified = await verifyReceipt(result.receipt!, { jwks: await jwks(), payload: samplePayload, decisionId: id });
    expect(verified.claims.decided_by).toEqual({
      type: "people",
      people: [{ key_id: t.keyIds.operator, person_id: t.keyIds.operator, name: "test-operator" }],
    });
  });

  test("an edited approval answers the edited payload, verified against the receipt", async () => {
    const kind = `agent.${crypto.randomUUID().slice(0, 8)}`;
    const before = notifierOf(t.deps).waiting;
    const asking = clientAs(t, "service").decisions.requestApproval(request(kind), { timeoutMs: 20_000 });
    await parked(before);
    const [decision] = await decisionsOfKind(kind);
    const edited = { ...samplePayload, rollout: { percent: 5, regions: ["eu-west-1"] } };
    await clientAs(t, "operator").decisions.approve(decision!.id, { payload: edited });
    const result = await asking;
    expect(result.approved).toBe(true);
    expect(result.payload).toEqual(edited);
  });

  test("rejected: not approved, with the receipt of the rejection", async () => {
    const kind = `agent.${crypto.randomUUID().slice(0, 8)}`;
    const before = notifierOf(t.deps).waiting;
    const asking = clientAs(t, "service").decisions.requestApproval(request(kind), { timeoutMs: 20_000 });
    await parked(before);
    const [decision] = await decisionsOfKind(kind);
    await clientAs(t, "operator").decisions.reject(decision!.id, "not during the sale");
    const result = await asking;
    expect(result.approved).toBe(false);
    expect(result.decision.status).toBe("rejected");
    const verified = await verifyReceipt(result.receipt!, { jwks: await jwks(), payload: samplePayload });
    expect(verified.claims.outcome).toBe("rejected");
  });

  test("expired: the default action decides (approve → approved by timeout, reject → not approved)", async () => {
    const service = clientAs(t, "service");
    const [byDefault, expired] = await Promise.all([
      service.decisions.requestApproval({ ...request(), expires_in: 1, on_timeout: "approve" }, { timeoutMs: 20_000 }),
      service.decisions.requestApproval({ ...request(), expires_in: 1, on_timeout: "reject" }, { timeoutMs: 20_000 }),
    ]);
    expect(byDefault.approved).toBe(true);
    expect(byDefault.decision.status).toBe("approved");
    expect((await verifyReceipt(byDefault.receipt!, { jwks: await jwks(), payload: samplePayload })).claims.decided_by).toEqual({
      type: "timeout",
    });
    expect(expired.approved).toBe(false);
    expect(expired.decision.status).toBe("expired");
    expect(expired.receipt).toBeString();
  });

  test("the caller's timeout: pending is not approved; asking again with the key continues the same decision", async () => {
    const kind = `agent.${crypto.randomUUID().slice(0, 8)}`;
    const idempotencyKey = `task-${crypto.randomUUID()}`;
    const service = clientAs(t, "service");
    const started = Date.now();
    const first = await service.decisions.requestApproval(request(kind), { idempotencyKey, timeoutMs: 1_500 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_400);
    expect(first).toMatchObject({ approved: false, receipt: null, decision: { status: "pending" } });

    // A restarted caller asks again with the same key: the same decision, now approved.
    await clientAs(t, "operator").decisions.approve(first.decision.id);
    const again = await service.decisions.requestApproval(request(kind), { idempotencyKey, timeoutMs: 5_000 });
    expect(again.approved).toBe(true);
    expect(again.decision.id).toBe(first.decision.id);
    expect(await decisionsOfKind(kind)).toHaveLength(1);

    // Once consumed, the approval is spent: asking again answers the decision, not approved.
    await service.decisions.consume(first.decision.id);
    const spent = await service.decisions.requestApproval(request(kind), { idempotencyKey, timeoutMs: 5_000 });
    expect(spent.approved).toBe(false);
    expect(spent.decision.consumed_at).not.toBeNull();
  });

  test("a dropped connection (the create's answer lost, then a long-poll cut) is retried without asking twice", async () => {
    const kind = `agent.${crypto.randomUUID().slice(0, 8)}`;
    let createsDropped = 0;
    let pollsCut = 0;
    const flaky: FetchLike = async (url, init) => {
      if (init.method === "POST" && createsDropped === 0) {
        createsDropped++;
        await fetch(url, init); // the server creates it; the answer never arrives
        throw new TypeError("connection reset by peer");
      }
      if (url.includes("wait=") && pollsCut === 0) {
        pollsCut++;
        const cut = new AbortController();
        const poll = fetch(url, { ...init, signal: cut.signal });
        await Bun.sleep(300);
        cut.abort();
        await poll.catch(() => {});
        throw new TypeError("socket closed unexpectedly");
      }
      return fetch(url, init);
    };
    const client = new ArbiterClient({ baseUrl: t.url, apiKey: t.keys.service, fetch: flaky });
    const asking = client.decisions.requestApproval(request(kind), { timeoutMs: 20_000 });
    while (pollsCut === 0) await Bun.sleep(5);
    // The cut long-poll failed with a network error: the verdict can only reach the call through its retry.
    const [decision] = await decisionsOfKind(kind);
    await clientAs(t, "operator").decisions.approve(decision!.id);
    const result = await asking;
    expect(result.approved).toBe(true);
    expect(createsDropped).toBe(1);
    expect(pollsCut).toBe(1);
    expect(await decisionsOfKind(kind)).toHaveLength(1);
  });

  test("a server restart mid-wait: the call reconnects to the restarted server and gets the verdict", async () => {
    const server = restartableServer();
    try {
      const kind = `agent.${crypto.randomUUID().slice(0, 8)}`;
      const client = new ArbiterClient({ baseUrl: server.url, apiKey: t.keys.service });
      const before = notifierOf(t.deps).waiting;
      const asking = client.decisions.requestApproval(request(kind), { timeoutMs: 20_000 });
      await parked(before);
      await server.restart(1_000);
      const [decision] = await decisionsOfKind(kind);
      await clientAs(t, "operator").decisions.approve(decision!.id);
      const result = await asking;
      expect(result.approved).toBe(true);
      expect(result.decision.id).toBe(decision!.id);
      expect(await decisionsOfKind(kind)).toHaveLength(1);
    } finally {
      await server.stop();
    }
  });

  test("an error that retrying cannot fix is thrown at once", async () => {
    const readonly = clientAs(t, "readonly");
    await expect(readonly.decisions.requestApproval(request(), { timeoutMs: 5_000 })).rejects.toMatchObject({
      status: 403,
      code: "forbidden",
    });
  });
});

describe("watch", () => {
  test("yields each change once, in order, and resumes after a server restart with Last-Event-ID", async () => {
    const server = restartableServer();
    const stop = new AbortController();
    try {
      const kind = `watch.${crypto.randomUUID().slice(0, 8)}`;
      const client = new ArbiterClient({ baseUrl: server.url, apiKey: t.keys.admin });
      const seen: DecisionEvent[] = [];
      const lastEventId = await latestEventId(t.deps);
      const watching = (async () => {
        for await (const event of client.decisions.watch({ lastEventId, signal: stop.signal })) {
          if (event.decision?.kind === kind) seen.push(event);
        }
      })();
      const service = clientAs(t, "service");
      const operator = clientAs(t, "operator");
      const first = await service.decisions.create(request(kind));
      while (seen.length < 1) await Bun.sleep(10);

      await server.restart(300);
      // Changes made while the watcher is disconnected arrive after it reconnects.
      await operator.decisions.approve(first.id);
      const second = await service.decisions.create(request(kind));
      await operator.decisions.reject(second.id, "no");
      while (seen.length < 4) await Bun.sleep(20);
      await Bun.sleep(200);
      stop.abort();
      await watching;

      expect(seen.map((event) => [event.decision_id, event.type])).toEqual([
        [first.id, "created"],
        [first.id, "approved"],
        [second.id, "created"],
        [second.id, "rejected"],
      ]);
      const ids = seen.map((event) => event.event_id);
      expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    } finally {
      stop.abort();
      await server.stop();
    }
  });

  test("a watcher without read permission gets the 403, not an endless retry", async () => {
    const limited = await clientAs(t, "admin").keys.create({ name: "no-read", role: "service", permissions: ["decisions:create"] });
    const client = new ArbiterClient({ baseUrl: t.url, apiKey: limited.key });
    await expect(client.decisions.watch().next()).rejects.toMatchObject({ status: 403 });
  });
});
