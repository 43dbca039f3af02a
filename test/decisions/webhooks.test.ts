import { afterAll, beforeAll, beforeEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { verifyWebhookSignature } from "../../src/crypto/webhook-signature";
import { callbackRefusal, classifyAddress, deliverDueWebhooks, deliveryAttempts } from "../../src/decisions/webhooks";
import { startTestApp, type TestApp } from "../helpers/app";
import { act, createDecision, manualClock } from "./helpers";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

const SECRET = "whsec-test-0123456789abcdef0123456789abcdef";
const clock = manualClock();
let t: TestApp;

/** A real HTTP receiver: records each request and answers with the next queued status (200 when none). */
const received: { headers: Headers; body: string }[] = [];
let answers: number[] = [];
const receiver = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  async fetch(req) {
    received.push({ headers: req.headers, body: await req.text() });
    return new Response(null, { status: answers.shift() ?? 200 });
  },
});
const hookUrl = `http://127.0.0.1:${receiver.port}/hook`;

beforeAll(async () => {
  t = await startTestApp({
    clock,
    env: {
      WEBHOOK_SIGNING_SECRET: SECRET,
      WEBHOOK_ALLOW_HTTP_LOOPBACK: "true",
      WEBHOOK_BACKOFF_BASE_MS: "1000",
      WEBHOOK_MAX_ATTEMPTS: "3",
    },
  });
}, 30_000);
afterAll(async () => {
  await t.close();
  await receiver.stop(true);
});
beforeEach(() => {
  received.length = 0;
  answers = [];
});

const nowSeconds = () => Math.floor(clock.now().getTime() / 1000);

describe("delivery", () => {
  test("the final outcome is POSTed once, signed over timestamp and body", async () => {
    const d = await createDecision(t, { callback_url: hookUrl });
    expect(await deliverDueWebhooks(t.deps)).toBe(0); // nothing to send while pending
    await act(t, d.id, "approve", "operator", { reason: "ship it" });
    expect(await deliverDueWebhooks(t.deps)).toBe(1);
    expect(received).toHaveLength(1);
    const [request] = received;
    const body = JSON.parse(request!.body);
    expect(body).toMatchObject({
      type: "decision.approved",
      attempt: 1,
      decision: { id: d.id, status: "approved", payload_hash: d.payload_hash },
    });
    expect(request!.headers.get("Arbiter-Event")).toBe("decision.approved");
    const signature = request!.headers.get("Arbiter-Signature");
    expect(signature).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(verifyWebhookSignature(SECRET, signature, request!.body, nowSeconds())).toBe(true);
    // Any change to the body, a wrong secret, or a stale timestamp fails verification.
    expect(verifyWebhookSignature(SECRET, signature, request!.body.replace("approved", "rejected"), nowSeconds())).toBe(false);
    expect(verifyWebhookSignature(`${SECRET}x`, signature, request!.body, nowSeconds())).toBe(false);
    expect(verifyWebhookSignature(SECRET, signature, request!.body, nowSeconds() + 301)).toBe(false);
    const attempts = await deliveryAttempts(t.deps, d.id);
    expect(attempts.map((a) => [a.attempt, a.statusCode, a.delivered, a.nextAttemptAt])).toEqual([[1, 200, true, null]]);
    expect(await deliverDueWebhooks(t.deps)).toBe(0); // delivered: never sent again
  });

  test("failures are retried with exponential backoff, every attempt recorded", async () => {
    answers = [500, 503];
    const d = await createDecision(t, { callback_url: hookUrl });
    await act(t, d.id, "reject", "operator", { reason: "no" });
    expect(await deliverDueWebhooks(t.deps)).toBe(1);
    expect(await deliverDueWebhooks(t.deps)).toBe(0); // the retry waits for its backoff
    clock.advance(1_300); // first backoff: 1 s ± 20 %
    expect(await deliverDueWebhooks(t.deps)).toBe(1);
    clock.advance(1_500); // second backoff is 2 s ± 20 %: not yet due
    expect(await deliverDueWebhooks(t.deps)).toBe(0);
    clock.advance(1_000);
    expect(await deliverDueWebhooks(t.deps)).toBe(1);
    const attempts = await deliveryAttempts(t.deps, d.id);
    expect(attempts.map((a) => [a.attempt, a.statusCode, a.delivered])).toEqual([
      [1, 500, false],
      [2, 503, false],
      [3, 200, true],
    ]);
    expect(attempts[0]!.error).toBe("HTTP 500");
    expect(received.map((r) => JSON.parse(r.body).attempt)).toEqual([1, 2, 3]);
  });

  test("after WEBHOOK_MAX_ATTEMPTS failures it stops", async () => {
    answers = [500, 500, 500, 500];
    const d = await createDecision(t, { callback_url: hookUrl });
    await act(t, d.id, "cancel", "service");
    for (let i = 0; i < 5; i++) {
      await deliverDueWebhooks(t.deps);
      clock.advance(3_600_000);
    }
    const attempts = await deliveryAttempts(t.deps, d.id);
    expect(attempts.map((a) => a.statusCode)).toEqual([500, 500, 500]);
    expect(attempts.every((a) => a.nextAttemptAt === null)).toBe(true);
  });

  test("an unreachable receiver is recorded as an error and retried", async () => {
    const closed = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
    const url = `http://127.0.0.1:${closed.port}/gone`;
    await closed.stop(true);
    const d = await createDecision(t, { callback_url: url });
    await act(t, d.id, "approve", "operator");
    await deliverDueWebhooks(t.deps);
    const [attempt, retry] = await deliveryAttempts(t.deps, d.id);
    expect(attempt).toMatchObject({ attempt: 1, statusCode: null, delivered: false });
    expect(attempt!.error).toBeTruthy();
    expect(retry).toMatchObject({ attempt: 2, delivered: false });
  });
});

describe("SSRF guard", () => {
  test("a target refused at delivery time is recorded and not retried", async () => {
    const d = await createDecision(t, { callback_url: hookUrl });
    await act(t, d.id, "approve", "operator");
    // The rules tightened (or the name now resolves elsewhere) between create and delivery.
    const strict = { ...t.deps, config: { ...t.deps.config, WEBHOOK_ALLOW_HTTP_LOOPBACK: false } };
    expect(await deliverDueWebhooks(strict)).toBe(1);
    expect(received).toHaveLength(0);
    const attempts = await deliveryAttempts(t.deps, d.id);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]).toMatchObject({ attempt: 1, delivered: false, statusCode: null, nextAttemptAt: null });
    expect(attempts[0]!.error).toBe("refused: only https URLs are allowed");
  });

  test("callback URLs to private, link-local, non-https or unresolvable targets are refused at create", async () => {
    const refused = [
      "https://10.0.0.5/hook",
      "https://169.254.169.254/latest/meta-data",
      "https://[fe80::1]/hook",
      "https://[::ffff:192.168.1.1]/hook",
      "https://[fd00::1]/hook",
      "http://192.0.2.10/hook",
      "https://0.0.0.0/hook",
      "ftp://127.0.0.1/hook",
      "https://user:pass@127.0.0.1/hook",
      "https://does-not-exist.invalid/hook",
    ];
    for (const url of refused) {
      const res = await t.request("/v1/decisions", {
        method: "POST",
        as: "service",
        json: { kind: "deploy", title: "x", payload: 1, callback_url: url },
      });
      expect({ url, status: res.status }).toEqual({ url, status: 422 });
      expect((await res.json()).error.code).toBe("callback_url_refused");
    }
  });

  test("the rules follow the configuration", async () => {
    const strict = { WEBHOOK_ALLOW_HTTP_LOOPBACK: false, WEBHOOK_ALLOW_PRIVATE_NETWORKS: false };
    expect(await callbackRefusal("http://127.0.0.1:9/x", strict)).toBe("only https URLs are allowed");
    expect(await callbackRefusal("https://127.0.0.1/x", strict)).toContain("loopback");
    expect(await callbackRefusal("https://10.1.2.3/x", strict)).toContain("private");
    expect(await callbackRefusal("https://10.1.2.3/x", { ...strict, WEBHOOK_ALLOW_PRIVATE_NETWORKS: true })).toBeUndefined();
    expect(await callbackRefusal("https://93.184.215.14/x", strict)).toBeUndefined();
    expect(await callbackRefusal("http://localhost:9/x", { ...strict, WEBHOOK_ALLOW_HTTP_LOOPBACK: true })).toBeUndefined();
    expect(
      await callbackRefusal("http://10.1.2.3/x", { WEBHOOK_ALLOW_HTTP_LOOPBACK: true, WEBHOOK_ALLOW_PRIVATE_NETWORKS: true }),
    ).toContain("loopback");
    expect(["100.64.0.1", "172.31.255.255", "192.168.0.1", "[64:ff9b::a00:1]".slice(1, -1)].map(classifyAddress)).toEqual([
      "private",
      "private",
      "private",
      "private",
    ]);
    expect(["8.8.8.8", "2606:4700::1111", "::1", "::", "ff02::1"].map(classifyAddress)).toEqual([
      "public",
      "public",
      "loopback",
      "forbidden",
      "forbidden",
    ]);
  });
});
