import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { deliverDueWebhooks } from "../../src/decisions/webhooks";
import { verifyWebhook } from "../../src/sdk";
import { samplePayload } from "../decisions/helpers";
import { startTestApp, type TestApp } from "../helpers/app";
import { clientAs } from "./support";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/** verifyWebhook on callbacks the real app signs and delivers to a local receiver. */
const SECRET = "whsec-sdk-test-0123456789abcdef0123456789abcdef";
const received: { headers: Headers; body: string }[] = [];
const receiver = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  async fetch(req) {
    received.push({ headers: req.headers, body: await req.text() });
    return new Response(null, { status: 204 });
  },
});

let t: TestApp;
let delivery: { headers: Headers; body: string };
beforeAll(async () => {
  t = await startTestApp({ env: { WEBHOOK_SIGNING_SECRET: SECRET, WEBHOOK_ALLOW_HTTP_LOOPBACK: "true" } });
  const service = clientAs(t, "service");
  const decision = await service.decisions.create({
    kind: "deploy",
    title: "Deploy with a callback",
    payload: samplePayload,
    callback_url: `http://127.0.0.1:${receiver.port}/arbiter`,
  });
  await clientAs(t, "operator").decisions.approve(decision.id, { reason: "go" });
  expect(await deliverDueWebhooks(t.deps)).toBe(1);
  delivery = received[0]!;
});
afterAll(async () => {
  await t.close();
  await receiver.stop(true);
});

describe("verifyWebhook", () => {
  test("a delivered callback verifies, with Headers or a plain header record", () => {
    expect(JSON.parse(delivery.body)).toMatchObject({ type: "decision.approved", decision: { status: "approved" } });
    expect(verifyWebhook({ secret: SECRET, headers: delivery.headers, body: delivery.body })).toBe(true);
    const plain = Object.fromEntries([...delivery.headers.entries()]);
    expect(verifyWebhook({ secret: SECRET, headers: plain, body: delivery.body })).toBe(true);
    const arrays = { "Arbiter-Signature": [delivery.headers.get("arbiter-signature")!] };
    expect(verifyWebhook({ secret: SECRET, headers: arrays, body: delivery.body })).toBe(true);
  });

  test("a tampered body, a wrong secret or a missing signature fail", () => {
    const tampered = delivery.body.replace('"approved"', '"rejected"');
    expect(tampered).not.toBe(delivery.body);
    expect(verifyWebhook({ secret: SECRET, headers: delivery.headers, body: tampered })).toBe(false);
    expect(verifyWebhook({ secret: `${SECRET}-other`, headers: delivery.headers, body: delivery.body })).toBe(false);
    expect(verifyWebhook({ secret: SECRET, headers: {}, body: delivery.body })).toBe(false);
    const mangled = new Headers(delivery.headers);
    mangled.set("Arbiter-Signature", delivery.headers.get("arbiter-signature")!.replace(/v1=./, "v1=g"));
    expect(verifyWebhook({ secret: SECRET, headers: mangled, body: delivery.body })).toBe(false);
  });

  test("an old (or future) timestamp fails outside the tolerance, passes within it", () => {
    const signedAt = Number(/t=(\d+)/.exec(delivery.headers.get("arbiter-signature")!)![1]) * 1000;
    const at = (offsetSeconds: number) => new Date(signedAt + offsetSeconds * 1000);
    const check = (now: Date, toleranceSeconds?: number) =>
      verifyWebhook({ secret: SECRET, headers: delivery.headers, body: delivery.body, now, toleranceSeconds });
    expect(check(at(299))).toBe(true);
    expect(check(at(301))).toBe(false);
    expect(check(at(-301))).toBe(false);
    expect(check(at(301), 600)).toBe(true);
    expect(check(at(11), 10)).toBe(false);
  });
});
