import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { authEvents } from "../../src/db/schema";
import { startTestApp, type TestApp } from "../helpers/app";
import { bearer, errorCode, issueToken } from "./support";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
}, 30_000);
afterAll(() => t.close());

interface EventBody {
  action: string;
  outcome: string;
  reason: string | null;
  actor_key_id: string | null;
  target_id: string | null;
  address: string | null;
  user_agent: string | null;
  request_id: string | null;
}
type Page = { data: EventBody[]; next_cursor: string | null };

const audit = async (query: string): Promise<Page> => {
  const res = await t.request(`/v1/audit/auth?${query}`, { as: "admin" });
  expect(res.status).toBe(200);
  return (await res.json()) as Page;
};

describe("auth audit", () => {
  test("failures, key and token changes are recorded with address, user agent and request id; successes are counted", async () => {
    const ok = await t.request("/v1/keys?limit=1", {
      as: "readonly",
      headers: { "User-Agent": "audit-probe/1.0", "X-Request-Id": "probe-1" },
    });
    expect(ok.status).toBe(403); // authenticated (audited as success), then refused
    await t.request("/v1/keys", { headers: { "X-API-Key": `${t.keys.service.slice(0, -1)}0` } });

    const created = (await (
      await t.request("/v1/keys", { as: "admin", method: "POST", json: { name: "audited", role: "service" } })
    ).json()) as {
      id: string;
      key: string;
    };
    await t.request(`/v1/keys/${created.id}/rotate`, { as: "admin", method: "POST", json: { grace_seconds: 60 } });
    await t.request(`/v1/keys/${created.id}/revoke`, { as: "admin", method: "POST" });
    const token = await issueToken(t, "service");
    await t.request("/v1/auth/revoke", { method: "POST", headers: bearer(token) });

    // A success is a per-minute count for its key, not a row of its own.
    expect((await audit(`action=authenticate&outcome=success&actor_key_id=${t.keyIds.readonly}`)).data).toHaveLength(0);
    const usage = await t.request(`/v1/audit/auth/usage?key_id=${t.keyIds.readonly}`, { as: "admin" });
    expect(usage.status).toBe(200);
    expect(((await usage.json()) as { data: { via: string; requests: number }[] }).data).toEqual([
      expect.objectContaining({ key_id: t.keyIds.readonly, via: "api_key", requests: 1 }),
    ]);

    await t.request("/v1/keys", {
      headers: {
        "X-API-Key": `${t.keys.service.slice(0, -1)}${t.keys.service.endsWith("1") ? "2" : "1"}`,
        "User-Agent": "audit-probe/1.0",
        "X-Request-Id": "probe-2",
      },
    });
    const failures = await audit("action=authenticate&outcome=failure");
    expect(failures.data.some((e) => e.reason === "invalid_key" && e.actor_key_id === null)).toBe(true);
    expect(failures.data.find((e) => e.request_id === "probe-2")).toMatchObject({ user_agent: "audit-probe/1.0", address: "127.0.0.1" });

    for (const action of ["key.create", "key.rotate", "key.revoke"]) {
      const page = await audit(`action=${action}&actor_key_id=${t.keyIds.admin}`);
      expect(page.data.map((e) => e.target_id)).toContain(created.id);
    }
    const issued = await audit(`action=token.issue&actor_key_id=${t.keyIds.service}`);
    const revoked = await audit(`action=token.revoke&actor_key_id=${t.keyIds.service}`);
    expect(revoked.data[0]!.target_id).toBe(issued.data[0]!.target_id);

    // Nothing secret is stored or logged.
    const rows = JSON.stringify(await t.deps.database.db.select().from(authEvents));
    for (const secret of [created.key, ...Object.values(t.keys), token]) {
      expect(rows).not.toContain(secret);
      expect(JSON.stringify(t.logs)).not.toContain(secret);
    }
    expect(t.logs.some((line) => line.msg === "auth event" && line.action === "key.create")).toBe(true);
  });

  test("pagination walks every event exactly once; time filters bound the range", async () => {
    const first = await audit("limit=3");
    expect(first.data).toHaveLength(3);
    const second = await audit(`limit=3&cursor=${first.next_cursor}`);
    const ids = [...first.data, ...second.data].map((e) => JSON.stringify(e));
    expect(new Set(ids).size).toBe(6);
    const future = new Date(Date.now() + 3_600_000).toISOString();
    expect((await audit(`since=${encodeURIComponent(future)}`)).data).toHaveLength(0);
    expect((await audit(`until=${encodeURIComponent(future)}&limit=1`)).data).toHaveLength(1);
  });

  test("needs audit:read; bad filters are 400", async () => {
    expect((await t.request("/v1/audit/auth", { as: "operator" })).status).toBe(403);
    expect((await t.request("/v1/audit/auth")).status).toBe(401);
    for (const query of ["outcome=maybe", "action=login", "since=yesterday", "actor_key_id=42", "cursor=%%%"]) {
      const res = await t.request(`/v1/audit/auth?${query}`, { as: "admin" });
      expect(res.status).toBe(400);
      expect(["validation_failed", "invalid_cursor"]).toContain((await errorCode(res))!);
    }
  });
});
