import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { ArbiterError } from "../../src/sdk";
import { parseRetryAfter } from "../../src/sdk/transport";
import { manualClock, samplePayload } from "../decisions/helpers";
import { startTestApp, type TestApp } from "../helpers/app";
import { clientAs, rejection } from "./support";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * Retries against the real app's rate limiter: a low limit and a clock the test moves, so a 429 comes
 * exactly when expected. The recording fetch opens the next window when it sees a 429 (as time would),
 * so a retry made after Retry-After succeeds.
 */
const WINDOW_MS = 1_000;
const clock = manualClock(new Date(Math.floor(Date.now() / WINDOW_MS) * WINDOW_MS));
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({
    clock,
    env: { RATE_LIMIT_WINDOW_MS: String(WINDOW_MS), RATE_LIMIT_READONLY: "2", RATE_LIMIT_SERVICE: "2" },
  });
});
afterAll(() => t.close());

interface Attempt {
  method: string;
  status: number;
  sentAt: number;
  answeredAt: number;
}

function recordingClient(role: "readonly" | "service", options: { maxRetryDelayMs?: number } = {}) {
  const attempts: Attempt[] = [];
  const client = clientAs(t, role, {
    ...options,
    fetch: async (url, init) => {
      const sentAt = performance.now();
      const response = await fetch(url, init);
      attempts.push({ method: init.method ?? "GET", status: response.status, sentAt, answeredAt: performance.now() });
      if (response.status === 429) clock.advance(WINDOW_MS);
      return response;
    },
  });
  return { client, attempts };
}

const nextWindow = () => clock.advance(WINDOW_MS);
const decisionRequest = { kind: "deploy", title: "Deploy checkout", payload: samplePayload };

describe("retries on 429 from the real rate limiter", () => {
  test("a GET refused with Retry-After is retried after that many seconds and succeeds", async () => {
    nextWindow();
    const { client, attempts } = recordingClient("readonly");
    await client.decisions.list();
    await client.decisions.list();
    const third = await client.decisions.list();
    expect(third.data).toBeArray();
    expect(attempts.map((a) => a.status)).toEqual([200, 200, 429, 200]);
    // Retry-After was 1 (the window's remainder): the retry waited at least that long.
    expect(attempts[3]!.sentAt - attempts[2]!.answeredAt).toBeGreaterThanOrEqual(990);
  });

  test("a POST without an Idempotency-Key is never retried: the 429 is thrown after one attempt", async () => {
    nextWindow();
    const { client, attempts } = recordingClient("service");
    await client.decisions.create(decisionRequest);
    await client.decisions.create(decisionRequest);
    const error = await rejection(client.decisions.create(decisionRequest));
    expect(error).toBeInstanceOf(ArbiterError);
    expect(error).toMatchObject({ status: 429, code: "rate_limited", retryAfterSeconds: 1 });
    expect(attempts.map((a) => a.status)).toEqual([201, 201, 429]);
  });

  test("a POST with an Idempotency-Key is retried, and the retry creates the decision once", async () => {
    nextWindow();
    const { client, attempts } = recordingClient("service");
    await client.decisions.create(decisionRequest);
    await client.decisions.create(decisionRequest);
    const key = crypto.randomUUID();
    const created = await client.decisions.create(decisionRequest, { idempotencyKey: key });
    expect(attempts.map((a) => a.status)).toEqual([201, 201, 429, 201]);
    nextWindow();
    expect((await client.decisions.create(decisionRequest, { idempotencyKey: key })).id).toBe(created.id);
  });

  test("a Retry-After longer than maxRetryDelayMs is not waited for", async () => {
    nextWindow();
    const { client, attempts } = recordingClient("readonly", { maxRetryDelayMs: 500 });
    await client.decisions.list();
    await client.decisions.list();
    const error = await rejection(client.decisions.list());
    expect(error).toMatchObject({ status: 429, code: "rate_limited", retryAfterSeconds: 1 });
    expect(attempts).toHaveLength(3);
  });
});

describe("transport behaviour the real app cannot produce on demand (a local stub)", () => {
  let answers: { status: number; body?: string; headers?: Record<string, string> }[] = [];
  const seen: { method: string; at: number }[] = [];
  const stub = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      seen.push({ method: req.method, at: performance.now() });
      if (new URL(req.url).pathname.endsWith("/hang")) return new Promise<Response>(() => {});
      const next = answers.shift() ?? { status: 200, body: '{"data":[],"next_cursor":null}' };
      return new Response(next.body ?? "", { status: next.status, headers: next.headers });
    },
  });
  afterAll(() => stub.stop(true));
  const stubClient = (options = {}) => clientAs(t, "readonly", { baseUrl: stub.url.toString(), retryBaseMs: 50, ...options });

  test("503 without Retry-After: exponential backoff (doubling, ±20 %) until success", async () => {
    seen.length = 0;
    answers = [{ status: 503 }, { status: 503 }];
    expect((await stubClient().decisions.list()).data).toEqual([]);
    expect(seen).toHaveLength(3);
    expect(seen[1]!.at - seen[0]!.at).toBeGreaterThanOrEqual(40);
    expect(seen[2]!.at - seen[1]!.at).toBeGreaterThanOrEqual(80);
  });

  test("503 on a POST without an Idempotency-Key is answered with the error after one attempt", async () => {
    seen.length = 0;
    answers = [{ status: 503, body: '{"error":{"code":"unavailable","message":"down"}}', headers: { "X-Request-Id": "req-1" } }];
    const error = await rejection(stubClient().decisions.approve("0193a5b2-7c1e-7d3a-9f4e-2b6c8d0e1f2a"));
    expect(error).toMatchObject({ status: 503, code: "unavailable", message: "down", requestId: "req-1" });
    expect(seen).toHaveLength(1);
  });

  test("retries stop after maxRetries; a body that is not Arbiter's error shape still maps to a code", async () => {
    seen.length = 0;
    answers = [{ status: 503 }, { status: 503 }, { status: 503, body: "<html>bad gateway</html>" }];
    const error = await rejection(stubClient({ maxRetries: 2 }).decisions.list());
    expect(error).toMatchObject({ status: 503, code: "http_503" });
    expect(seen).toHaveLength(3);
  });

  test("a JSON body that is not an error envelope (null) still maps to a code", async () => {
    seen.length = 0;
    answers = [{ status: 502, body: "null" }];
    const error = await rejection(stubClient().decisions.list());
    expect(error).toBeInstanceOf(ArbiterError);
    expect(error).toMatchObject({ status: 502, code: "http_502" });
  });

  test("no answer within timeoutMs is a timeout error", async () => {
    const error = await rejection(stubClient({ timeoutMs: 100 }).decisions.get("hang"));
    expect(error).toMatchObject({ status: 0, code: "timeout" });
  });

  test("Retry-After as seconds or an HTTP date", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter("7", now)).toBe(7);
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:00:30 GMT", now)).toBe(30);
    expect(parseRetryAfter("Wed, 31 Dec 2025 23:59:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});
