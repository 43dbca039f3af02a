import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { eq } from "drizzle-orm";
import { apiKeys } from "../../src/db/schema";
import { startTestApp, type TestApp } from "../helpers/app";
import { bearer, errorCode, type ManualClock, manualClock } from "./support";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

let t: TestApp;
let clock: ManualClock;
beforeAll(async () => {
  clock = manualClock();
  t = await startTestApp({ clock });
}, 30_000);
afterAll(() => t.close());

interface KeyBody {
  id: string;
  key: string;
  role: string;
  permissions: string[];
  status: string;
  revoked_at: string | null;
  previous?: KeyBody;
}

async function createKey(body: Record<string, unknown>, as: "admin" | { key: string } = "admin"): Promise<KeyBody> {
  const res =
    as === "admin"
      ? await t.request("/v1/keys", { as, method: "POST", json: body })
      : await t.request("/v1/keys", { method: "POST", json: body, headers: { "X-API-Key": as.key } });
  expect(res.status).toBe(201);
  return (await res.json()) as KeyBody;
}

const whoCanRead = (key: string) => t.request("/v1/keys?limit=1", { headers: { "X-API-Key": key } });

describe("happy path", () => {
  test("create returns the raw key once; it authenticates; reads never show it or its hash", async () => {
    const created = await createKey({ name: "ci pipeline", role: "readonly", metadata: { owner: "team-a" } });
    expect(created.key).toMatch(/^arb_/);
    expect(created.permissions).toEqual(["decisions:read", "telemetry:read", "metrics:read"]);
    expect((await t.request("/v1/keys", { headers: bearer(created.key) })).status).toBe(403); // authenticated, not allowed

    const one = await t.request(`/v1/keys/${created.id}`, { as: "admin" });
    expect(one.status).toBe(200);
    const text = await one.text();
    const [row] = await t.deps.database.db.select().from(apiKeys).where(eq(apiKeys.id, created.id));
    expect(text).not.toContain(created.key);
    expect(text).not.toContain(row!.keyHash);
    expect(JSON.parse(text)).toMatchObject({ name: "ci pipeline", role: "readonly", status: "active", metadata: { owner: "team-a" } });
    expect(row!.keyHash).toMatch(/^[0-9a-f]{64}$/);
  });

  test("both headers are accepted: X-API-Key and Authorization: Bearer", async () => {
    expect((await t.request("/v1/keys?limit=1", { headers: { "X-API-Key": t.keys.admin } })).status).toBe(200);
    expect((await t.request("/v1/keys?limit=1", { headers: bearer(t.keys.admin) })).status).toBe(200);
  });

  test("list paginates newest first and filters by role and status", async () => {
    for (const name of ["p1", "p2", "p3"]) await createKey({ name, role: "service" });
    const first = await t.request("/v1/keys?limit=2&role=service", { as: "admin" });
    const page1 = (await first.json()) as { data: KeyBody[]; next_cursor: string | null };
    expect(page1.data).toHaveLength(2);
    expect(page1.data.every((k) => k.role === "service")).toBe(true);
    expect(page1.next_cursor).not.toBeNull();
    const second = await t.request(`/v1/keys?limit=2&role=service&cursor=${page1.next_cursor}`, { as: "admin" });
    const page2 = (await second.json()) as { data: KeyBody[] };
    const ids = [...page1.data, ...page2.data].map((k) => k.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(JSON.stringify(page1) + JSON.stringify(page2)).not.toContain("key_hash");

    const revoked = await createKey({ name: "to revoke", role: "service" });
    await t.request(`/v1/keys/${revoked.id}/revoke`, { as: "admin", method: "POST" });
    const onlyRevoked = (await (await t.request("/v1/keys?status=revoked", { as: "admin" })).json()) as { data: KeyBody[] };
    expect(onlyRevoked.data.map((k) => k.id)).toContain(revoked.id);
    expect(onlyRevoked.data.every((k) => k.status === "revoked")).toBe(true);
  });

  test("revoke takes effect at once on this replica (cached key included)", async () => {
    const created = await createKey({ name: "short lived", role: "admin" });
    expect((await whoCanRead(created.key)).status).toBe(200); // now cached
    const res = await t.request(`/v1/keys/${created.id}/revoke`, { as: "admin", method: "POST" });
    expect(res.status).toBe(200);
    expect(((await res.json()) as KeyBody).status).toBe("revoked");
    const after = await whoCanRead(created.key);
    expect(after.status).toBe(401);
    expect(await errorCode(after)).toBe("key_revoked");
  });

  test("rotate with a grace period: both keys work until it ends, then only the new one", async () => {
    const old = await createKey({ name: "rotating", role: "admin" });
    const res = await t.request(`/v1/keys/${old.id}/rotate`, { as: "admin", method: "POST", json: { grace_seconds: 600 } });
    expect(res.status).toBe(201);
    const rotated = (await res.json()) as KeyBody & { rotated_from: string };
    expect(rotated.rotated_from).toBe(old.id);
    expect(rotated.previous?.status).toBe("rotating");
    expect((await whoCanRead(old.key)).status).toBe(200);
    expect((await whoCanRead(rotated.key)).status).toBe(200);

    clock.advance(601_000);
    const oldAfter = await whoCanRead(old.key);
    expect(oldAfter.status).toBe(401);
    expect(await errorCode(oldAfter)).toBe("key_revoked");
    expect((await whoCanRead(rotated.key)).status).toBe(200);
  });

  test("rotate without a grace period ends the old key at once", async () => {
    const old = await createKey({ name: "rotate now", role: "admin" });
    expect((await whoCanRead(old.key)).status).toBe(200);
    const res = await t.request(`/v1/keys/${old.id}/rotate`, { as: "admin", method: "POST" });
    expect(res.status).toBe(201);
    expect((await whoCanRead(old.key)).status).toBe(401);
    expect((await whoCanRead(((await res.json()) as KeyBody).key)).status).toBe(200);
  });

  test("an expired key answers key_expired", async () => {
    const created = await createKey({
      name: "expiring",
      role: "admin",
      expires_at: new Date(clock.now().getTime() + 3_600_000).toISOString(),
    });
    expect((await whoCanRead(created.key)).status).toBe(200);
    clock.advance(3_600_001);
    const res = await whoCanRead(created.key);
    expect(res.status).toBe(401);
    expect(await errorCode(res)).toBe("key_expired");
  });

  test("last_used_at is recorded off the request path", async () => {
    const created = await createKey({ name: "used", role: "admin" });
    expect((await whoCanRead(created.key)).status).toBe(200);
    let lastUsed: Date | null = null;
    for (let i = 0; i < 50 && !lastUsed; i++) {
      const [row] = await t.deps.database.db.select().from(apiKeys).where(eq(apiKeys.id, created.id));
      lastUsed = row!.lastUsedAt;
      if (!lastUsed) await Bun.sleep(20);
    }
    expect(lastUsed?.getTime()).toBe(clock.now().getTime());
  });
});

describe("errors", () => {
  test("validation failures are 400 with field paths", async () => {
    const cases: [unknown, string][] = [
      [{ name: "x", role: "root" }, "json.role"],
      [{ role: "admin" }, "json.name"],
      [{ name: "x", role: "admin", permissions: ["decisions:fly"] }, "json.permissions.0"],
      [{ name: "x", role: "admin", permissions: [] }, "json.permissions"],
      [{ name: "x", role: "admin", expires_at: "tomorrow" }, "json.expires_at"],
    ];
    for (const [body, path] of cases) {
      const res = await t.request("/v1/keys", { as: "admin", method: "POST", json: body });
      expect(res.status).toBe(400);
      const error = ((await res.json()) as { error: { code: string; details: { path: string }[] } }).error;
      expect(error.code).toBe("validation_failed");
      expect(error.details.map((d) => d.path)).toContain(path);
    }
  });

  test("narrowing outside the role is 400; an expiry in the past is 400", async () => {
    const outside = await t.request("/v1/keys", {
      as: "admin",
      method: "POST",
      json: { name: "x", role: "service", permissions: ["keys:create"] },
    });
    expect(outside.status).toBe(400);
    expect(await errorCode(outside)).toBe("permissions_not_in_role");
    const past = await t.request("/v1/keys", {
      as: "admin",
      method: "POST",
      json: { name: "x", role: "service", expires_at: new Date(clock.now().getTime() - 1000).toISOString() },
    });
    expect(past.status).toBe(400);
    expect(await errorCode(past)).toBe("invalid_expiry");
  });

  test("unknown ids are 404, malformed ids 400, repeated revocation 409, rotating a revoked key 409", async () => {
    const unknown = crypto.randomUUID();
    expect((await t.request(`/v1/keys/${unknown}`, { as: "admin" })).status).toBe(404);
    expect((await t.request(`/v1/keys/${unknown}/revoke`, { as: "admin", method: "POST" })).status).toBe(404);
    expect((await t.request(`/v1/keys/${unknown}/rotate`, { as: "admin", method: "POST" })).status).toBe(404);
    expect((await t.request("/v1/keys/not-a-uuid", { as: "admin" })).status).toBe(400);
    const created = await createKey({ name: "twice", role: "service" });
    expect((await t.request(`/v1/keys/${created.id}/revoke`, { as: "admin", method: "POST" })).status).toBe(200);
    const again = await t.request(`/v1/keys/${created.id}/revoke`, { as: "admin", method: "POST" });
    expect(again.status).toBe(409);
    expect(await errorCode(again)).toBe("key_revoked");
    const rotate = await t.request(`/v1/keys/${created.id}/rotate`, { as: "admin", method: "POST" });
    expect(rotate.status).toBe(409);
  });

  test("malformed, unknown and garbage credentials are 401 invalid_key with WWW-Authenticate", async () => {
    const real = t.keys.admin;
    const unknownButWellFormed = (await createKey({ name: "doomed", role: "admin" })).key;
    const [row] = await t.deps.database.db
      .select()
      .from(apiKeys)
      .where(eq(apiKeys.displayPrefix, unknownButWellFormed.slice(0, 12)));
    await t.deps.database.db.delete(apiKeys).where(eq(apiKeys.id, row!.id));
    for (const credential of [real.slice(0, -1), `${real}x`, "arb_", "hunter2", unknownButWellFormed]) {
      const res = await whoCanRead(credential);
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toContain("Bearer");
      expect(await errorCode(res)).toBe("invalid_key");
    }
  });
});

describe("security", () => {
  test("an operator cannot create keys at all", async () => {
    const res = await t.request("/v1/keys", { as: "operator", method: "POST", json: { name: "mine", role: "admin" } });
    expect(res.status).toBe(403);
  });

  test("a narrowed key cannot create a key with more than it holds, nor widen itself by rotation", async () => {
    const narrowed = await createKey({ name: "key manager", role: "admin", permissions: ["keys:create", "keys:read", "keys:revoke"] });
    const asNarrowed = { key: narrowed.key };

    const escalate = await t.request("/v1/keys", { method: "POST", json: { name: "full", role: "admin" }, headers: bearer(narrowed.key) });
    expect(escalate.status).toBe(403);
    const body = (await escalate.json()) as { error: { code: string; details: { missing: string[] } } };
    expect(body.error.code).toBe("privilege_escalation");
    expect(body.error.details.missing).toContain("decisions:resolve");

    const viaOperator = await t.request("/v1/keys", {
      method: "POST",
      json: { name: "op", role: "operator" },
      headers: bearer(narrowed.key),
    });
    expect(viaOperator.status).toBe(403);

    // Within its own permissions it may delegate.
    const delegated = await createKey({ name: "reader", role: "admin", permissions: ["keys:read"] }, asNarrowed);
    expect(delegated.permissions).toEqual(["keys:read"]);

    // Rotating itself yields the same narrowed set, never the role's full set.
    const self = await t.request(`/v1/keys/${narrowed.id}/rotate`, { method: "POST", headers: bearer(narrowed.key) });
    expect(self.status).toBe(201);
    const selfRotated = (await self.json()) as KeyBody;
    expect(selfRotated.permissions).toEqual(["keys:create", "keys:read", "keys:revoke"]);

    // Rotating a full admin key would hand it a full admin key: refused.
    const full = await createKey({ name: "full admin", role: "admin" });
    const steal = await t.request(`/v1/keys/${full.id}/rotate`, { method: "POST", headers: bearer(selfRotated.key) });
    expect(steal.status).toBe(403);
    expect(await errorCode(steal)).toBe("privilege_escalation");
  });

  test("rotation needs keys:revoke as well as keys:create", async () => {
    const creatorOnly = await createKey({ name: "creator", role: "admin", permissions: ["keys:create"] });
    const target = await createKey({ name: "target", role: "readonly" });
    const res = await t.request(`/v1/keys/${target.id}/rotate`, { method: "POST", headers: bearer(creatorOnly.key) });
    expect(res.status).toBe(403);
  });

  test("no raw key ever reaches a log line", async () => {
    await createKey({ name: "log probe", role: "service" });
    await whoCanRead("arb_definitelyNotAKeyButLooksSecret0000000000000000000");
    const logText = JSON.stringify(t.logs);
    const raw = /arb_[0-9A-Za-z]{20,}/;
    expect(raw.test(logText)).toBe(false);
    for (const key of Object.values(t.keys)) expect(logText).not.toContain(key);
  });
});
