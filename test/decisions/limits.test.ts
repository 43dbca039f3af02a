import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { holdLimiterOf } from "../../src/decisions/holds";
import { waitFor } from "../foundation/support";
import { startTestApp, type TestApp } from "../helpers/app";
import { createDecision, type JsonBody } from "./helpers";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/** Held connections per key: long-polls and event streams are bounded, with a clear 429, and released when they end. */
const MAX = 2;
let t: TestApp;
const held = (role: "service" | "operator") => holdLimiterOf(t.deps).held(t.keyIds[role]);

beforeAll(async () => {
  t = await startTestApp({ env: { STREAMS_PER_KEY_MAX: String(MAX) } });
});
afterAll(() => t.close());

describe("STREAMS_PER_KEY_MAX", () => {
  test("streams and long-polls of one key share the bound; the next is 429 too_many_streams; other keys are unaffected", async () => {
    const decision = await createDecision(t);
    const controllers = [new AbortController(), new AbortController()];
    const stream = await t.request("/v1/decisions/stream", { as: "service", signal: controllers[0]?.signal });
    expect(stream.status).toBe(200);
    const poll = t
      .request(`/v1/decisions/${decision.id}?wait=30`, { as: "service", signal: controllers[1]?.signal })
      .catch(() => undefined);
    await waitFor(() => held("service") === MAX, "two holds counted");

    for (const path of ["/v1/decisions/stream", `/v1/decisions/${decision.id}?wait=5`]) {
      const refused = await t.request(path, { as: "service" });
      expect(refused.status).toBe(429);
      expect(refused.headers.get("retry-after")).toBe("1");
      const body = (await refused.json()) as JsonBody;
      expect(body.error.code).toBe("too_many_streams");
      expect(body.error.details).toEqual({ limit: MAX });
    }
    // A plain read is not a hold.
    expect((await t.request(`/v1/decisions/${decision.id}`, { as: "service" })).status).toBe(200);
    // Another key has its own bound.
    const other = new AbortController();
    expect((await t.request("/v1/decisions/stream", { as: "operator", signal: other.signal })).status).toBe(200);
    other.abort();

    // Closing a stream and ending a long-poll give their places back.
    for (const controller of controllers) controller.abort();
    await poll;
    // A closed stream is noticed when the request's signal aborts, or at the latest when the next
    // heartbeat (15 s) fails to write: the bound on a hold outliving its client.
    await waitFor(() => held("service") === 0 && held("operator") === 0, "holds released after the clients went away", 20_000);
    const again = new AbortController();
    expect((await t.request("/v1/decisions/stream", { as: "service", signal: again.signal })).status).toBe(200);
    again.abort();
  });

  test("a long-poll answered by the verdict releases its hold", async () => {
    const decision = await createDecision(t);
    const polls = [0, 1].map(() => t.request(`/v1/decisions/${decision.id}?wait=30`, { as: "service" }));
    // A poll that answers before the verdict would leave its place early: say what it answered.
    const early: string[] = [];
    for (const poll of polls) void poll.then(async (res) => early.push(`${res.status} ${await res.clone().text()}`));
    await waitFor(() => held("service") === MAX, "both long-polls held").catch((error: Error) => {
      throw new Error(`${error.message} (held ${held("service")}; answered early: ${early.join(" | ") || "none"})`);
    });
    expect((await t.request(`/v1/decisions/${decision.id}/approve`, { method: "POST", as: "operator", json: {} })).status).toBe(200);
    for (const res of await Promise.all(polls)) expect(((await res.json()) as JsonBody).status).toBe("approved");
    await waitFor(() => held("service") === 0, "holds released after the verdict");
  });

  test("a refused configuration value stops the start", async () => {
    await expect(startTestApp({ env: { STREAMS_PER_KEY_MAX: "0" } })).rejects.toThrow(/STREAMS_PER_KEY_MAX/);
  });
});
